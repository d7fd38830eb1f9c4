"""Chapter 04's fusion recipe: its pieces on small real AV-digits data, the device
discipline of every helper that runs a trained model, and a tiny end-to-end run."""
from __future__ import annotations

import pytest
import torch

from mmcourse import experiments
from mmcourse.experiments import fusion as recipe
from mmcourse.nn.fusion import FUSIONS
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import predict, to_device

TINY = dict(seeds=(0,), epochs=1, train_limit=64)


@pytest.fixture(scope="module")
def tiny():
    return recipe.settings(**TINY)


@pytest.fixture(scope="module")
def small_loaders(tiny):
    return recipe.loaders(tiny)


@pytest.fixture(scope="module")
def vocab_size():
    return len(recipe.tokenizer().vocab)


def fresh(tiny, vocab_size, fusion="sum", modalities=recipe.MODALITIES):
    return recipe.model(tiny, fusion=fusion, modalities=modalities, vocab_size=vocab_size).eval()


def test_settings_fast_and_full(monkeypatch):
    monkeypatch.setenv("MMCOURSE_FAST", "0")
    assert recipe.settings() == recipe.Settings()
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    fast = recipe.settings(epochs=1)
    assert fast.seeds == recipe.FAST["seeds"] and fast.epochs == 1
    assert fast.train_limit == recipe.Settings().train_limit


def test_configurations_cover_every_fusion():
    runs = recipe.configurations()
    assert set(FUSIONS) - {"lstm"} <= set(runs)  # lstm belongs to chapter 06
    assert {"image only", "text only", "audio only"} <= set(runs)
    assert runs["audio only"] == ("concat", ("audio",))


def test_loaders_keep_the_limit_and_reseedable_order(small_loaders):
    kept = len(small_loaders["train"].dataset)
    assert TINY["train_limit"] - 10 <= kept <= TINY["train_limit"], "one stratified subset"
    orders = []
    for _ in range(2):
        torch.manual_seed(3)
        orders.append(torch.cat([b["label"] for b in small_loaders["train"]]))
    assert torch.equal(*orders), "the training order must follow the global generator"


def test_model_is_seeded_and_leaves_the_global_state(tiny, vocab_size):
    state = torch.get_rng_state()
    a = recipe.model(tiny, fusion="gated", seed=0, vocab_size=vocab_size)
    b = recipe.model(tiny, fusion="gated", seed=0, vocab_size=vocab_size)
    c = recipe.model(tiny, fusion="gated", seed=1, vocab_size=vocab_size)
    assert torch.equal(torch.get_rng_state(), state)
    first = [p for p in a.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(first, b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(first, c.parameters()))
    assert set(recipe.model(tiny, fusion="concat", modalities=("audio",), vocab_size=vocab_size).encoders) == {"audio"}


def test_weights_at_test_time_match_the_model(small_loaders, tiny, vocab_size):
    model = fresh(tiny, vocab_size)
    embeddings, labels = recipe.embed_all(model, small_loaders["test"])
    assert embeddings["image"].shape[0] == len(labels) == len(small_loaders["test"].dataset)
    equal = {m: 1.0 for m in recipe.MODALITIES}
    assert recipe.accuracy_with_weights(model, embeddings, labels, equal) == pytest.approx(
        recipe.evaluate(model, small_loaders)["test accuracy"], abs=1e-6)
    assert torch.isnan(torch.tensor(recipe.accuracy_with_weights(
        model, embeddings, labels, {m: 0.0 for m in recipe.MODALITIES})))
    gates = recipe.gate_weights(model, small_loaders["test"])
    assert gates.shape == (len(labels), 3)
    assert torch.allclose(gates.sum(1), torch.ones(len(labels)))


def test_gate_weights_of_a_dropped_modality_are_zero(small_loaders, tiny, vocab_size):
    model = fresh(tiny, vocab_size, "gated")
    gates = recipe.gate_weights(model, small_loaders["test"],
                                lambda b: recipe.corrupt_batch(b, "audio", "dropped"))
    audio = model.fusion.modalities.index("audio")
    assert (gates[:, audio] == 0).all()
    assert torch.allclose(gates.sum(1), torch.ones(len(gates)))


def test_corruptions(small_loaders):
    batch = next(iter(small_loaders["train"]))
    dropped = recipe.corrupt_batch(batch, "audio", "dropped")
    assert not dropped["audio_present"].any()
    noised = recipe.corrupt_batch(batch, "image", "noised")
    assert not torch.equal(noised["image"], batch["image"])
    unk = recipe.corrupt_batch(batch, "text", "noised")["tokens"]
    assert torch.equal(unk > 0, batch["tokens"] > 0) and set(unk.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="dropped"):
        recipe.corrupt_batch(batch, "audio", "blurred")


def test_audio_noise_follows_each_coefficient_and_spares_padding(small_loaders):
    batch = next(iter(small_loaders["test"]))
    torch.manual_seed(0)
    noised = recipe.corrupt_batch(batch, "audio", "noised", noise=1.0)["audio"]
    valid = batch["audio_mask"]
    added = (noised - batch["audio"])
    assert torch.equal(added[~valid], torch.zeros_like(added[~valid]))
    signal_std, noise_std = batch["audio"][valid].std(0), added[valid].std(0)
    assert torch.allclose(noise_std, signal_std, rtol=0.1)
    assert torch.equal(recipe.corrupt_batch(batch, "audio", "noised", noise=0.0)["audio"],
                       batch["audio"])


def test_corruptions_stay_on_the_batch_device(small_loaders):
    batch = to_device(next(iter(small_loaders["test"])), torch.device("meta"))
    for modality in recipe.MODALITIES:
        for how in ("dropped", "noised"):
            out = recipe.corrupt_batch(batch, modality, how)
            devices = {v.device.type for v in out.values() if isinstance(v, torch.Tensor)}
            assert devices == {"meta"}, f"{modality} {how} left the batch's device"


def test_modality_dropout_drops_one_modality_on_the_batch_device(small_loaders, tiny,
                                                                  vocab_size):
    batch = next(iter(small_loaders["train"]))
    model = fresh(tiny, vocab_size, "concat").train()
    seen = {}

    def spy(b):
        seen.update({k: v for k, v in b.items() if k.endswith("_present")})
        return torch.zeros(len(b["label"]), 10)

    model.forward = spy
    torch.manual_seed(0)
    recipe.modality_dropout_forward(1.0)(model, batch)
    present = torch.stack([seen[f"{m}_present"] for m in model.encoders], dim=1)
    assert present.any(dim=1).all() and (present.sum(1) == 2).all()
    seen.clear()
    recipe.modality_dropout_forward(1.0)(model, to_device(batch, torch.device("meta")))
    assert {v.device.type for v in seen.values()} == {"meta"}


def test_robustness_drops_like_zero_weight(small_loaders, tiny, vocab_size):
    model = fresh(tiny, vocab_size, "sum")
    only_audio = fresh(tiny, vocab_size, "concat", ("audio",))
    table = recipe.robustness({"sum": model, "audio only": only_audio}, small_loaders["test"])
    assert list(table.index) == ["sum"] and list(table.columns) == list(recipe.CONDITIONS)
    assert ((table >= 0) & (table <= 1)).all().all()
    embeddings, labels = recipe.embed_all(model, small_loaders["test"])
    no_image = recipe.accuracy_with_weights(model, embeddings, labels,
                                            {"image": 0.0, "text": 1.0, "audio": 1.0})
    assert table.loc["sum", "image dropped"] == pytest.approx(no_image, abs=1e-6)
    assert table.loc["sum", "clean"] == pytest.approx(
        accuracy(*predict(model, small_loaders["test"])), abs=1e-6)


def test_train_loads_a_finished_run(small_loaders, tiny, vocab_size):
    first = recipe.model(tiny, fusion="late", vocab_size=vocab_size)
    result = recipe.train(first, small_loaders, tiny, "late", progress=False)
    assert len(result.history["train_loss"]) == tiny.epochs
    again = recipe.model(tiny, fusion="late", vocab_size=vocab_size)
    loaded = recipe.train(again, small_loaders, tiny, "late", progress=False)
    assert loaded.seconds == 0, "a finished run should be loaded, not trained again"
    assert all(torch.equal(p.cpu(), q.cpu())
               for p, q in zip(first.state_dict().values(), again.state_dict().values()))


# Device discipline: every helper that runs a model feeds it inputs on its device.

def test_embed_all_feeds_model_device(feeds_model_device, small_loaders, tiny, vocab_size):
    feeds_model_device(recipe.embed_all, fresh(tiny, vocab_size), small_loaders["test"])


def test_evaluate_feeds_model_device(feeds_model_device, small_loaders, tiny, vocab_size):
    feeds_model_device(recipe.evaluate, fresh(tiny, vocab_size), small_loaders)


def test_accuracy_with_weights_feeds_model_device(feeds_model_device, small_loaders, tiny,
                                                  vocab_size):
    model = fresh(tiny, vocab_size)
    embeddings, labels = recipe.embed_all(model, small_loaders["test"])
    feeds_model_device(recipe.accuracy_with_weights, model, embeddings, labels,
                       {m: 1.0 for m in recipe.MODALITIES})


@pytest.mark.parametrize("corruption", [None, "text noised", "audio noised", "image dropped"])
def test_gate_weights_feeds_model_device(feeds_model_device, small_loaders, tiny, vocab_size,
                                         corruption):
    corrupt = None if corruption is None else (
        lambda b: recipe.corrupt_batch(b, *corruption.split()))
    feeds_model_device(recipe.gate_weights, fresh(tiny, vocab_size, "gated"),
                       small_loaders["test"], corrupt)


def test_robustness_feeds_model_device(feeds_model_device, small_loaders, tiny, vocab_size):
    def robustness_of(model, loader):
        return recipe.robustness({"gated": model}, loader)

    feeds_model_device(robustness_of, fresh(tiny, vocab_size, "gated"), small_loaders["test"])


def test_modality_dropout_forward_feeds_model_device(feeds_model_device, small_loaders, tiny,
                                                     vocab_size):
    batch = to_device(next(iter(small_loaders["train"])), torch.device("meta"))
    feeds_model_device(recipe.modality_dropout_forward(0.5),
                       fresh(tiny, vocab_size, "gated").train(), batch)


def test_tiny_run():
    outcome = experiments.run("avdigits-fusion", s=recipe.settings(**TINY))
    assert set(outcome.metrics) == {f"{name} test accuracy" for name in recipe.configurations()}
    assert all(0.0 <= v <= 1.0 for v in outcome.metrics.values())
    table = outcome.details["table"]
    assert list(table.columns) == ["seed 0", "mean", "std"]
    assert outcome.details["best fusion"] in FUSIONS
    assert outcome.seconds > 0
