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
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

SEED = 0
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


def seed_everything(seed: int = SEED) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a seeded torch Generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def settings() -> dict:
    """The active settings, as a notebook prints them in its first code cell."""
    from .device import try_gpu

    return {
        "fast mode": fast(),
        "device": str(try_gpu()),
        "data root": str(data_root()),
        "cache": str(cache_dir()),
        "seed": SEED,
        "torch": torch.__version__,
    }


def print_settings() -> None:
    """Print :func:`settings` one per line."""
    for key, value in settings().items():
        print(f"{key:>10}: {value}")
