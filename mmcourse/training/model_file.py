"""A fine-tuned model in one versioned file: its format and its writer.

:func:`save_finetuned` writes a model's weights with everything needed to rebuild it;
:func:`mmcourse.inference.load_finetuned` reads it back, refusing files of another
format or version with :class:`CheckpointError`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from mmcourse.runtime.cache import write_atomically

FORMAT = "mmcourse-finetuned"
"""The ``format`` entry of a fine-tuned model file."""
FORMAT_VERSION = 1
"""Files of another version are refused: their layout may differ."""


class CheckpointError(ValueError):
    """A model file that cannot be used: not a fine-tuned model, or another version."""


def save_finetuned(path: str | Path, net: nn.Module, s, modalities, categories: list,
                   language: str) -> Path:
    """Write ``net`` (trained with settings ``s`` on ``modalities``) to ``path``."""
    base = net.module if hasattr(net, "module") else net
    record = {"format": FORMAT, "version": FORMAT_VERSION,
              "settings": dataclasses.asdict(s), "modalities": list(modalities),
              "strategy": getattr(base, "strategy", "full"), "categories": list(categories),
              "audio_language": language,
              "model": {k: v.cpu() for k, v in base.state_dict().items()}}
    return write_atomically(Path(path), lambda tmp: torch.save(record, tmp))
