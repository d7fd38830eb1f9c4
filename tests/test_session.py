"""session.start: the first code cell of every chapter."""
from __future__ import annotations

import random

import matplotlib
import pytest
import numpy as np
import torch

from mmcourse import session


def test_start_styles_prints_seeds_and_picks_the_device(capsys, monkeypatch):
    from mmcourse.runtime import device

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


def test_the_seed_is_a_setting_read_when_asked(monkeypatch, capsys):
    from mmcourse.runtime import config

    monkeypatch.delenv("MMCOURSE_SEED", raising=False)
    assert config.seed() == 0
    monkeypatch.setenv("MMCOURSE_SEED", "2")
    assert config.seed() == 2 and config.settings()["seed"] == 2
    generator, _ = session.start()
    assert "seed: 2" in capsys.readouterr().out
    assert torch.equal(torch.randn(3, generator=generator),
                       torch.randn(3, generator=torch.Generator().manual_seed(2)))
    monkeypatch.setenv("MMCOURSE_SEED", "two")
    with pytest.raises(ValueError, match="MMCOURSE_SEED='two'"):
        config.seed()


def test_recipes_move_their_training_seeds_with_the_setting_but_not_their_splits(monkeypatch):
    from mmcourse.experiments import captioning, cnn, fusion, self_supervised, translation

    monkeypatch.setenv("MMCOURSE_FAST", "0")
    monkeypatch.setenv("MMCOURSE_SEED", "5")
    assert cnn.settings().seed == 5 and cnn.settings(seed=1).seed == 1, "overrides win"
    assert fusion.settings().seeds == (5, 6, 7)
    assert self_supervised.settings().label_seeds == (5, 6, 7)
    assert captioning.settings().fold_seed == captioning.Settings().fold_seed
    assert translation.settings().split_seed == translation.Settings().split_seed
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    assert fusion.settings().seeds == (5,)


def test_a_split_is_the_same_under_every_seed(monkeypatch):
    from mmcourse.experiments import spoken_digits

    splits = []
    for value in ("0", "3"):
        monkeypatch.setenv("MMCOURSE_SEED", value)
        task = spoken_digits.loaders(spoken_digits.settings(per_class=20))["task"]
        splits.append(task.split)
    assert all(np.array_equal(splits[0][p], splits[1][p]) for p in ("train", "val", "test"))
