"""Course-wide settings: the fast switch, data and cache locations, and seeding.

Every setting is read from the environment when it is asked for, so a notebook, a test
or the command line can change it without reloading the package.

* ``MMCOURSE_FAST`` — ``1`` shrinks subsets and epochs so every notebook runs in minutes
  on two CPU cores; ``0`` gives the full runs. Unset, it is on when ``CI`` is set.
* ``MMCOURSE_DATA_ROOT`` — where the Debian data packages live (default ``/usr/share``):
  stamps under ``<root>/tuxpaint/stamps``, Fashion-MNIST under
  ``<root>/datasets/fashion-mnist``.
* ``MMCOURSE_CACHE`` — where derived files (rasterised SVGs, resized image arrays,
  checkpoints) are written (default ``~/.cache/mmcourse``).
* ``MMCOURSE_SEED`` — the seed of every training run (model initialisation, batch order,
  augmentation), default 0. Data splits and folds do not move with it, so a chapter run
  under another seed measures the same test sets; ``python -m mmcourse claims`` runs a
  chapter under several seeds to show which of its findings hold.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .device import try_gpu

SPLIT_SEED = 0
"""The seed of every data split, fold and subset. It is fixed, so that a run under another
``MMCOURSE_SEED`` (:func:`seed`) is measured on the same test examples."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def fast() -> bool:
    """Return True when the fast switch is on (``MMCOURSE_FAST``, else ``CI``)."""
    value = os.environ.get("MMCOURSE_FAST")
    if value is None:
        return os.environ.get("CI", "").strip().lower() not in _FALSE
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"MMCOURSE_FAST={value!r}: use 1 (fast) or 0 (full).")


def data_root() -> Path:
    """Root of the installed data packages (``MMCOURSE_DATA_ROOT``, default /usr/share)."""
    return Path(os.environ.get("MMCOURSE_DATA_ROOT", "/usr/share")).expanduser()


def cache_dir(*parts: str) -> Path:
    """A folder under the course cache (``MMCOURSE_CACHE``), created on first use."""
    base = Path(os.environ.get("MMCOURSE_CACHE", Path.home() / ".cache" / "mmcourse"))
    path = base.expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed() -> int:
    """The seed of training runs (``MMCOURSE_SEED``, a whole number ≥ 0; default 0)."""
    value = os.environ.get("MMCOURSE_SEED", "0").strip() or "0"
    if not value.isdigit():
        raise ValueError(f"MMCOURSE_SEED={value!r}: use a whole number such as 0, 1 or 2.")
    return int(value)


def seed_everything(value: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) with ``value`` (default:
    :func:`seed`); return a seeded torch Generator."""
    value = seed() if value is None else value
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return torch.Generator().manual_seed(value)


def settings() -> dict:
    """The active settings, as a notebook prints them in its first code cell."""
    return {
        "fast mode": fast(),
        "device": str(try_gpu()),
        "data root": str(data_root()),
        "cache": str(cache_dir()),
        "seed": seed(),
        "torch": torch.__version__,
    }


def print_settings() -> None:
    """Print :func:`settings` one per line."""
    for key, value in settings().items():
        print(f"{key:>10}: {value}")
