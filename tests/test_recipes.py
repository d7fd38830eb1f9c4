"""The recipe layer: every recipe has the one shape; chapter 01's recipe end to end."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from mmcourse import experiments
from mmcourse.experiments import RECIPES, cnn
from mmcourse.runtime import config

SHAPE = ("Settings", "FAST", "settings", "loaders", "model", "train", "evaluate", "run")


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_has_the_one_shape(name, monkeypatch):
    recipe = experiments.module(name)
    missing = [part for part in SHAPE if not hasattr(recipe, part)]
    assert not missing, f"{name} lacks {missing}"
    assert dataclasses.is_dataclass(recipe.Settings)
    assert recipe.Settings.__dataclass_params__.frozen
    fields = {f.name for f in dataclasses.fields(recipe.Settings)}
    assert set(recipe.FAST) <= fields, f"FAST names unknown fields {set(recipe.FAST) - fields}"
    monkeypatch.delenv("MMCOURSE_SEED", raising=False)
    monkeypatch.setenv("MMCOURSE_FAST", "0")
    assert recipe.settings() == recipe.Settings()
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    assert recipe.settings() == dataclasses.replace(recipe.Settings(), **recipe.FAST)
    assert recipe.FAST, f"{name}: fast mode changes nothing"
    assert list(inspect.signature(recipe.run).parameters)[:2] == ["s", "progress"]


def test_unknown_recipe():
    with pytest.raises(KeyError, match="unknown recipe"):
        experiments.run("no-such-recipe")


def test_settings_are_frozen_and_overridable():
    s = cnn.settings(epochs=1)
    assert s.epochs == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.epochs = 2


def test_checkpoints_of_other_settings_never_share_a_file():
    full, fast = cnn.Settings(), dataclasses.replace(cnn.Settings(), **cnn.FAST)
    assert experiments.checkpoint("fashion-cnn", full) != experiments.checkpoint("fashion-cnn", fast)
    assert experiments.checkpoint("fashion-cnn", full) == experiments.checkpoint("fashion-cnn",
                                                                               cnn.Settings())


TINY_CNN = dict(epochs=2, train_limit=800, val_size=100, test_limit=200, batch_size=32)


def test_fashion_recipe_runs_end_to_end_on_tiny_settings():
    outcome = experiments.run("fashion-cnn", s=cnn.settings(**TINY_CNN))
    assert outcome.name == "fashion-cnn" and outcome.seconds > 0
    assert outcome.metrics["parameters"] == 74_922
    # two epochs on 700 images already beat the 10 % of guessing by far
    assert 0.3 < outcome.metrics["test accuracy"] <= 1.0
    assert outcome.details["epochs"] == 2


def test_fashion_model_is_a_one_modality_model_called_with_images():
    from mmcourse.nn.models import MultimodalModel

    model = cnn.model(cnn.settings())
    assert isinstance(model, MultimodalModel) and list(model.encoders) == ["image"]
    images = torch.randn(3, 1, 28, 28)
    model.eval()
    assert torch.equal(model(images), model({"image": images}))


def test_fashion_evaluate_feeds_the_model_on_its_device(feeds_model_device):
    s = cnn.settings(**TINY_CNN)
    loaders = cnn.loaders(s)
    feeds_model_device(cnn.evaluate, cnn.model(s), loaders)


def test_device_probe_catches_a_helper_that_leaves_batches_on_the_cpu(feeds_model_device):
    def careless(model, batch):
        model.eval()
        return model(batch)

    with pytest.raises(AssertionError, match="not on the model's device"):
        feeds_model_device(careless, cnn.model(cnn.settings()), torch.randn(2, 1, 28, 28))


def test_fast_mode_is_the_default_under_ci(monkeypatch):
    monkeypatch.delenv("MMCOURSE_FAST", raising=False)
    monkeypatch.setenv("CI", "true")
    assert config.fast() and cnn.settings().epochs == cnn.FAST["epochs"]
