"""The start of every chapter: plot style, settings, seeds and device in one call."""
from __future__ import annotations

import torch

from mmcourse.display import plots
from mmcourse.runtime import config, device


def start(seed: int | None = None) -> tuple[torch.Generator, torch.device]:
    """Apply the course's plot style, print the settings (:func:`config.print_settings`),
    seed Python, NumPy and PyTorch, pick the device (:func:`device.try_gpu`) and print
    what it is.

    Returns ``(generator, dev)``: a torch Generator seeded with ``seed`` (default: the
    ``MMCOURSE_SEED`` setting, :func:`config.seed`), for the
    notebook's own random draws, and the chosen device.
    """
    plots.use_course_style()
    config.print_settings()
    generator = config.seed_everything(seed)
    dev = device.try_gpu()
    print(device.describe(dev))
    return generator, dev
