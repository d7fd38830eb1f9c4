"""The helpers that several chapters share: nearest neighbours, standardising with
training statistics, mean ± SD over runs, the crop margin and EfficientNet's inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data import load_image, load_stamps
from mmcourse.nn.encoders import EFFICIENTNET_MEAN_STD, efficientnet_inputs
from mmcourse.nn.neighbours import nearest_neighbour, nearest_neighbours
from mmcourse.preprocessing import crop_margin, eval_transform, letterbox, standardize
from mmcourse.training.metrics import mean_sd


def test_nearest_neighbours_rank_by_cosine_and_leave_a_row_out():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    assert nearest_neighbour(x, x).tolist() == [0, 1, 2]
    alone = np.eye(3, dtype=bool)
    assert nearest_neighbour(x, x, exclude=alone).tolist() == [1, 0, 1]
    idx, sims = nearest_neighbours(5 * x, x, k=3, exclude=alone)  # the scale does not matter
    assert idx[:, :2].tolist() == [[1, 2], [0, 2], [1, 0]]
    assert sims.dtype == np.float32 and np.isneginf(sims[:, 2]).all()
    want = x[1] @ x[0] / np.linalg.norm(x[1]) / np.linalg.norm(x[0])
    assert sims[0, 0] == pytest.approx(want, rel=1e-6)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert nearest_neighbour(unit, unit, exclude=alone, unit=True).tolist() == [1, 0, 1]
    assert nearest_neighbour(x, 5 * x, unit=True).tolist() == [0, 0, 2]  # dot products as given


def test_nearest_neighbours_break_ties_towards_the_lower_index():
    keys = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
    assert nearest_neighbours(np.array([[1.0, 0.0]]), keys, k=2)[0].tolist() == [[1, 2]]


def test_standardize_uses_the_training_rows_only():
    x = np.array([[0.0, 5.0], [2.0, 5.0], [100.0, 7.0]])
    out = standardize(x, [0, 1])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:2, 0], [-1.0, 1.0])
    np.testing.assert_allclose(out[2], [99.0, 2.0])  # a constant training column keeps its scale


def test_mean_sd_is_the_population_spread():
    assert mean_sd([1.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([0.5]) == (0.5, 0.0)


def test_crop_margin_is_the_imagenet_ratio_rounded():
    assert crop_margin(224) == 256 and crop_margin(96) == 110 and crop_margin(160) == 183


def test_efficientnet_inputs_are_the_centre_crop_of_the_letterboxed_picture():
    stamps = load_stamps()[:3]
    batches = list(efficientnet_inputs(stamps, 64, batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 64, 64), (1, 3, 64, 64)]
    picture = letterbox(load_image(stamps[2]), crop_margin(64))
    want = eval_transform(64, mean=EFFICIENTNET_MEAN_STD, std=EFFICIENTNET_MEAN_STD)(
        torch.from_numpy(np.array(picture)).permute(2, 0, 1))
    torch.testing.assert_close(batches[1][0], want)
