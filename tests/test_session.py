"""session.start: the first code cell of every chapter."""
from __future__ import annotations

import random

import matplotlib
import numpy as np
import torch

from mmcourse import session


def test_start_styles_prints_seeds_and_picks_the_device(capsys, monkeypatch):
    from mmcourse import device

    monkeypatch.setattr(device, "try_gpu", lambda: torch.device("cpu"))
    monkeypatch.setattr(device, "describe", lambda d: f"picked {d}")
    matplotlib.rcParams["figure.dpi"] = 1
    generator, dev = session.start(seed=3)
    printed = capsys.readouterr().out
    assert "fast mode:" in printed and "seed:" in printed and dev.type in printed
    assert matplotlib.rcParams["figure.dpi"] == 100, "figures are drawn at the course's 100 dpi"
    # Every source of randomness is seeded with the given seed.
    assert torch.equal(torch.randn(4, generator=generator),
                       torch.randn(4, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(torch.rand(2), torch.rand(2, generator=torch.Generator().manual_seed(3)))
    assert np.random.rand() == np.random.RandomState(3).rand()
    assert random.random() == random.Random(3).random()
    assert dev == torch.device("cpu") and "picked cpu" in printed
