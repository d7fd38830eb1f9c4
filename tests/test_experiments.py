"""The recipe registry and chapter 04's fusion recipe pieces (no long training here)."""
from __future__ import annotations

import importlib

import pytest
import torch

from mmcourse.experiments import RECIPES, run
from mmcourse.experiments import fusion as recipe
from mmcourse.fusion import FUSIONS
from mmcourse.models import build_model
from mmcourse.train import evaluate


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_registered_in_its_module(name):
    module = importlib.import_module(f"mmcourse.experiments.{RECIPES[name][0]}")
    assert callable(module.RUNS[name])


def test_unknown_recipe():
    with pytest.raises(KeyError, match="unknown recipe"):
        run("no-such-recipe")


def test_configurations_cover_every_fusion():
    runs = recipe.configurations()
    assert set(FUSIONS) <= set(runs)
    assert {"image only", "text only", "audio only"} <= set(runs)


@pytest.fixture(scope="module")
def small_loaders():
    loaders, tokenizer = recipe.av_loaders(train_limit=100)
    return loaders, len(tokenizer.vocab)


def test_weights_at_test_time_match_the_model(small_loaders):
    loaders, vocab = small_loaders
    torch.manual_seed(0)
    model = build_model(recipe.model_config("sum", vocab_size=vocab)).eval()
    embeddings, labels = recipe.embed_all(model, loaders["test"])
    equal = {m: 1.0 for m in recipe.MODALITIES}
    assert recipe.accuracy_with_weights(model, embeddings, labels, equal) == pytest.approx(
        evaluate(model, loaders["test"])["accuracy"], abs=1e-6)
    gates = recipe.gate_weights(model, loaders["test"])
    assert gates.shape == (len(labels), 3)
    assert torch.allclose(gates.sum(1), torch.ones(len(labels)))


def test_corruptions_and_modality_dropout(small_loaders):
    loaders, vocab = small_loaders
    batch = next(iter(loaders["train"]))
    dropped = recipe.corrupt_batch(batch, "audio", "dropped")
    assert not dropped["audio_present"].any()
    noised = recipe.corrupt_batch(batch, "image", "noised")
    assert not torch.equal(noised["image"], batch["image"])
    unk = recipe.corrupt_batch(batch, "text", "noised")["tokens"]
    assert set(unk.unique().tolist()) <= {0, 1}
    torch.manual_seed(0)
    model = build_model(recipe.model_config("concat", vocab_size=vocab)).train()
    seen = {}

    def spy(b):
        seen.update({k: v for k, v in b.items() if k.endswith("_present")})
        return torch.zeros(len(b["label"]), 10)

    model.forward = spy
    recipe.modality_dropout_forward(1.0)(model, batch)
    present = torch.stack([seen[f"{m}_present"] for m in model.encoders], dim=1)
    assert present.any(dim=1).all() and (present.sum(1) == 2).all()
