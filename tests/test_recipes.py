"""The recipe layer: every recipe has the one shape; chapter 01's recipe end to end."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from mmcourse import experiments
from mmcourse.experiments import RECIPES, cnn
from mmcourse.runtime import config
from mmcourse.training.train import FitResult

SHAPE = ("Settings", "FAST", "settings", "loaders", "model", "train", "evaluate", "run")

TINY = {
    "fashion-cnn": dict(epochs=1, train_limit=400, val_size=100, test_limit=100),
    "caption-language-rnn": dict(languages=("en", "de", "ja"), epochs=1, embed_dim=8,
                                 hidden_size=8, compare_languages=("en", "de"),
                                 compare_cells=("gru",), compare_epochs=1),
    "spoken-digits-crnn": dict(per_class=10, epochs=1, conv_channels=(4, 8), hidden_size=8),
    "spoken-language-crnn": dict(per_language=12, epochs=1, conv_channels=(4, 8),
                                 hidden_size=8, max_frames=100),
    "avdigits-fusion": dict(seeds=(0,), epochs=1, train_limit=64),
    "stamp-retrieval": dict(stamp_limit=480, epochs=1),
    "adversarial-alignment": dict(stamp_limit=480, epochs=1, strengths=(0.0, 1.0)),
    "self-supervised": dict(pretrain_epochs=1, labels_per_class=(5,), label_seeds=(0,),
                            finetune_epochs=1),
    "finetune-strategies": dict(limit=100, epochs=1, size=64, batch_size=8, folds=1,
                                rows=("probe/image+text", "full/all")),
    "image-captioning": dict(size=96, limit=60, test_folds=(1,), epochs=1, dim=32,
                             embed_dim=16, hidden_dim=32, attention_dim=16, grid_dim=16,
                             concepts=2, neighbours=2, beam_size=2, max_len=8,
                             variants=("full",)),
    "multimodal-translation": dict(stamp_limit=60, folds=3, run_folds=1, image_size=64,
                                   epochs=1, hidden_size=16, embed_dim=8, batch_size=16,
                                   max_len=12),
    "speech-ctc": dict(per_language=60, epochs=1, seeds=1, conv_channels=(4, 8),
                       hidden_size=16, beam=2),
    "connected-digits-ctc": dict(per_class=20, train_utterances=64, eval_utterances=16,
                                 epochs=1, conv_channels=(4, 8), hidden_size=16),
}
"""Settings small enough that every recipe's five parts run in seconds."""


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


def test_the_tiny_settings_name_every_recipe():
    assert set(TINY) == set(RECIPES)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_takes_and_returns_the_same_kinds_of_things(name, monkeypatch):
    """loaders(s) → dict; model(s, data) → Module; train(model, data, s) → FitResult;
    evaluate(model, data) → {name: number}; run(s) → Outcome of numbers: on tiny settings,
    for every recipe alike."""
    monkeypatch.delenv("MMCOURSE_SEED", raising=False)
    recipe = experiments.module(name)
    s = recipe.settings(**TINY[name])
    data = recipe.loaders(s)
    assert isinstance(data, dict) and data and all(isinstance(k, str) for k in data)
    net = recipe.model(s, data)
    assert isinstance(net, torch.nn.Module) and sum(p.numel() for p in net.parameters()) > 0
    fitted = recipe.train(net, data, s, progress=False)
    assert isinstance(fitted, FitResult) and fitted.history
    scores = recipe.evaluate(net, data)
    assert isinstance(scores, dict) and scores
    assert all(isinstance(k, str) and _number(v) for k, v in scores.items()), scores
    outcome = recipe.run(s, progress=False)
    assert isinstance(outcome, experiments.Outcome) and outcome.metrics
    assert all(_number(v) for v in outcome.metrics.values()), outcome.metrics


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
