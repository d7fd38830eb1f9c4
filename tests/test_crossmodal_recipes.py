"""Chapter 05's recipes (stamp retrieval, adversarial alignment, self-supervised
pretraining) and their shared stamp features, on real stamps and real AV-digits."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmcourse import experiments
from mmcourse.data import load_image
from mmcourse.experiments import adversarial, retrieval, self_supervised
from mmcourse.experiments import stamp_features as sf
from mmcourse.nn.encoders import EFFICIENTNET_MEAN_STD, ImageEncoder
from mmcourse.preprocessing import eval_transform, letterbox

SMALL = 120
"""Stamps of the small real split the tests share (about 84 train, 18 val, 18 test)."""


@pytest.fixture(scope="module")
def few_features(stamps, tmp_path_factory):
    """Frozen features of 4 real stamps with different captions (2 PNG, 2 SVG), computed
    into an empty cache, and read back from it."""
    cache = tmp_path_factory.mktemp("cache")
    distinct = list({s.caption: s for s in stamps}.values())
    chosen = [s for s in distinct if not s.is_svg][:2] + [s for s in distinct if s.is_svg][:2]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCOURSE_CACHE", str(cache))
        features = sf.stamp_features(chosen)
        cached = list((cache / "stamp-features").glob("*.npz"))
        again = sf.stamp_features(chosen)
    return chosen, features, cached, again


def test_stamp_features_shapes_and_cache(few_features):
    chosen, features, cached, again = few_features
    assert features["image"].shape == (4, 1280) and features["image"].dtype == np.float32
    assert features["text"].shape == (4, 384) and features["text"].dtype == np.float32
    assert np.allclose(np.linalg.norm(features["text"], axis=1), 1, atol=1e-4)
    assert len(cached) == 1
    assert all(np.array_equal(features[k], again[k]) for k in features)
    sims = features["text"] @ features["text"].T
    assert (sims[~np.eye(4, dtype=bool)] < 0.95).all(), "different captions look alike"


def test_stamp_pictures_reach_the_encoder_through_eval_transform(few_features):
    """The cached feature of a picture is EfficientNet-Lite0 on the picture letterboxed to
    256 px and passed through ``eval_transform(224)`` with the Lite0 normalisation."""
    chosen, features, _, _ = few_features
    transform = eval_transform(224, mean=EFFICIENTNET_MEAN_STD, std=EFFICIENTNET_MEAN_STD)
    x = torch.stack([transform(letterbox(load_image(s), 256)) for s in chosen[:2]])
    with torch.no_grad():
        expected = ImageEncoder(pretrained=True).eval()(x).numpy()
    assert np.allclose(features["image"][:2], expected, atol=1e-4)


@pytest.fixture(scope="module")
def small_split():
    return sf.stamp_split(limit=SMALL)


def test_stamp_split_is_stratified_and_standardised(small_split):
    split = small_split
    sizes = {part: len(i) for part, i in split.idx.items()}
    assert sum(sizes.values()) == len(split.stamps)
    assert abs(len(split.stamps) - SMALL) <= len(split.categories) / 2
    assert sizes["train"] == pytest.approx(0.7 * SMALL, abs=len(split.categories))
    assert not set(split.idx["train"]) & set(split.idx["test"])
    for x in split.features.values():
        train = x[split.idx["train"]]
        varying = train.std(0) > 0
        assert np.allclose(train.mean(0), 0, atol=1e-4)
        assert np.allclose(train.std(0)[varying], 1, atol=1e-3)
        assert abs(x[split.idx["test"]].mean()) > 1e-4  # the test rows are not refitted


def test_standardize_constant_dimension_becomes_zero():
    x = np.c_[np.arange(6.0), np.full(6, 7.0)]
    out = sf.standardize_each({"image": x}, np.arange(4))["image"]
    assert out.dtype == np.float32 and np.all(out[:, 1] == 0)
    assert abs(out[:4, 0].mean()) < 1e-6 and out[:4, 0].std() == pytest.approx(1)


def test_split_loaders(small_split):
    batch = next(iter(small_split.loader("train", 8)))
    assert batch["image"].shape == (8, 1280) and batch["text"].shape == (8, 384)
    assert batch["label"].dtype == torch.int64
    whole = next(iter(small_split.loader("val")))
    assert len(whole["label"]) == len(small_split.idx["val"])
    assert np.array_equal(whole["label"].numpy(), small_split.labels[small_split.idx["val"]])


# --- inference helpers run the model on its own device ----------------------------------

def test_embeddings_feed_the_model_device(feeds_model_device, small_split):
    feeds_model_device(sf.embeddings, retrieval.model(retrieval.settings()),
                       small_split.loader("test"))


def test_similarity_feeds_the_model_device(feeds_model_device, small_split):
    feeds_model_device(retrieval.similarity, retrieval.model(retrieval.settings()),
                       small_split.loader("test"))


def test_retrieval_feeds_the_model_device(feeds_model_device, small_split):
    feeds_model_device(retrieval.retrieval, retrieval.model(retrieval.settings()),
                       small_split.loader("test"))


def test_adversarial_evaluate_feeds_the_model_device(feeds_model_device, small_split):
    data = {"test": small_split.loader("test"), "probe": small_split.loader("train")}
    feeds_model_device(adversarial.evaluate, adversarial.model(adversarial.settings()), data)


@pytest.fixture(scope="module")
def av_data():
    return self_supervised.loaders(self_supervised.settings())


def test_encoder_embeddings_feed_the_model_device(feeds_model_device, av_data):
    feeds_model_device(self_supervised.encoder_embeddings,
                       self_supervised.model(self_supervised.settings()), av_data["test"])


def test_self_supervised_evaluate_feeds_the_model_device(feeds_model_device, av_data):
    feeds_model_device(self_supervised.evaluate,
                       self_supervised.model(self_supervised.settings()), av_data)


# --- retrieval ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_alignment(small_split, tmp_path_factory):
    s = retrieval.settings(stamp_limit=SMALL, epochs=80, lr=3e-3)  # one batch per epoch
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCOURSE_CACHE", str(tmp_path_factory.mktemp("checkpoints")))
        mp.setattr(retrieval, "stamp_split", lambda *args: small_split)
        data, model = retrieval.loaders(s), retrieval.model(s)
        result = retrieval.train(model, data, s, progress=False)
    return model, data, result


def test_trained_alignment_beats_chance_by_far(trained_alignment):
    model, data, result = trained_alignment
    scores = retrieval.evaluate(model, data)
    n = len(data["test"].dataset)
    assert scores["stamps"] == n and scores["chance R@1"] == pytest.approx(1 / n)
    for direction in ("image→caption", "caption→image"):
        assert scores[f"{direction} R@1"] >= 3 * scores["chance R@1"], direction
        assert scores[f"{direction} R@5"] >= 2 * scores["chance R@5"], direction
    untrained = retrieval.evaluate(retrieval.model(retrieval.settings()), data)
    assert scores["image→caption R@5"] > untrained["image→caption R@5"] + 0.2


def test_alignment_loss_starts_near_log_batch(trained_alignment):
    """The training stamps (fewer than 128) fit in one batch: the first InfoNCE is about
    the log of their number."""
    _, data, result = trained_alignment
    n = len(data["train"].dataset)
    assert n <= retrieval.settings().batch_size
    assert abs(result.history["train_loss"][0] - math.log(n)) < 0.5
    assert result.history["train_loss"][-1] < result.history["train_loss"][0] - 1


def test_similarity_diagonal_agrees_with_recall(trained_alignment):
    model, data, _ = trained_alignment
    sims = retrieval.similarity(model, data["test"])
    n = len(data["test"].dataset)
    assert sims.shape == (n, n) and sims.device.type == "cpu"
    assert sims.abs().max() <= 1 + 1e-5
    r1 = float((sims.argmax(1) == torch.arange(n)).float().mean())
    assert r1 == pytest.approx(retrieval.retrieval(model, data["test"])["image→caption R@1"])


def test_chance_recall_is_capped_at_one(small_split):
    eight = sf.StampSplit(small_split.stamps, small_split.features, small_split.labels,
                          small_split.categories, {"test": small_split.idx["test"][:8]})
    scores = retrieval.retrieval(retrieval.model(retrieval.settings()), eight.loader("test"))
    assert scores["chance R@10"] == 1.0 and scores["chance R@5"] == pytest.approx(5 / 8)
    assert scores["image→caption R@10"] == 1.0  # 8 candidates: everything is in the top 10


# --- adversarial alignment ---------------------------------------------------------------

@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_shared_space_forward_and_reversal(strength, small_split):
    model = adversarial.model(adversarial.settings(), strength=strength,
                              num_classes=len(small_split.categories))
    batch = next(iter(small_split.loader("train", 5)))
    (logits, extra), targets = model(batch)
    assert logits.shape == (10, len(small_split.categories)) and targets.shape == (10,)
    assert torch.equal(targets, torch.cat([batch["label"], batch["label"]]))
    assert extra.ndim == 0 and float(extra.detach()) > 0
    extra.backward()
    disc = model.discriminator.net[0].weight.grad
    proj = model.project["image"][1].weight.grad
    assert disc is not None and disc.abs().sum() > 0  # the discriminator always learns
    assert (proj.abs().sum() > 0) == (strength > 0)  # the projections only feel it when λ > 0


def test_modality_probes_see_an_offset_and_not_noise():
    g = np.random.default_rng(0)
    same = {m: g.normal(size=(100, 8)) for m in ("image", "text")}
    same_test = {m: g.normal(size=(100, 8)) for m in ("image", "text")}
    shifted = {"image": same["image"] + 3, "text": same["text"]}
    shifted_test = {"image": same_test["image"] + 3, "text": same_test["text"]}
    assert adversarial.modality_probes(shifted, shifted_test)["linear probe"] > 0.95
    assert adversarial.modality_probes(same, same_test)["linear probe"] < 0.6


def test_whitening_removes_a_difference_of_mean_and_covariance():
    """Two Gaussian modalities with different means and covariances are told apart by a
    linear probe, and by neither probe once each is whitened on its own."""
    g = np.random.default_rng(0)

    def part(n):
        features = {"image": g.normal(size=(n, 16)) @ g.normal(size=(16, 16)) + 2,
                    "text": 3 * g.normal(size=(n, 16)) - 2}
        features = {m: x.astype(np.float32) for m, x in features.items()}
        return sf.FeaturePairs(features, np.zeros(n, dtype=np.int64), np.arange(n))

    train, test = part(300), part(300)
    assert adversarial.modality_probes(train.features, test.features)["linear probe"] > 0.9
    loader = lambda data: torch.utils.data.DataLoader(data, len(data))  # noqa: E731
    whitened = adversarial.whitened_probe({"probe": loader(train), "test": loader(test)}, 8)
    assert whitened["linear probe"] < 0.6 and whitened["MLP probe"] < 0.65


# --- self-supervised pretraining ---------------------------------------------------------

def test_pretraining_model_pairs_image_and_audio(av_data, av_digits):
    model = self_supervised.model(self_supervised.settings())
    assert model.modalities == ["image", "audio"]
    z, labels = self_supervised.encoder_embeddings(model, av_data["test"])
    n = len(av_digits.test)
    assert z["image"].shape == (n, 64) and z["audio"].shape == (n, 64)
    assert np.array_equal(labels, av_digits.test.labels)


def test_few_label_loader_draws_per_class(av_data):
    loader = self_supervised.few_label_loader(av_data, 3, seed=1, batch_size=8)
    labels = torch.cat([b["label"] for b in loader]).numpy()
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, 3))
    again = self_supervised.few_label_loader(av_data, 3, seed=1, batch_size=8)
    assert list(loader.dataset.indices) == list(again.dataset.indices)
    other = self_supervised.few_label_loader(av_data, 3, seed=2, batch_size=8)
    assert list(loader.dataset.indices) != list(other.dataset.indices)


def test_neighbour_accuracy():
    g = np.random.default_rng(0)
    labels = (np.arange(200) // 2) % 4
    clustered = g.normal(size=(200, 5)) * 0.1 + labels[:, None]
    assert self_supervised.neighbour_accuracy(clustered, labels) == 1.0
    assert self_supervised.neighbour_accuracy(g.normal(size=(200, 5)), labels) < 0.5


# --- smoke runs of the three recipes -----------------------------------------------------

@pytest.fixture
def fresh_checkpoints(tmp_path, monkeypatch):
    """Checkpoints in an empty folder, the derived-array cache shared."""
    from mmcourse.runtime import config

    shared = config.cache_dir

    def cache_dir(*parts):
        return (tmp_path / parts[0]).resolve() if parts == ("checkpoints",) else shared(*parts)

    (tmp_path / "checkpoints").mkdir()
    monkeypatch.setattr(config, "cache_dir", cache_dir)


def test_stamp_retrieval_recipe_runs(fresh_checkpoints):
    outcome = experiments.run("stamp-retrieval",
                              s=retrieval.settings(stamp_limit=SMALL, epochs=1))
    assert 10 < outcome.metrics["stamps"] < 20
    for key in ("image→caption R@1", "caption→image R@5", "chance R@10"):
        assert 0 <= outcome.metrics[key] <= 1
    assert outcome.metrics["chance R@1"] == pytest.approx(1 / outcome.metrics["stamps"])


def test_adversarial_recipe_runs(fresh_checkpoints):
    outcome = experiments.run("adversarial-alignment", s=adversarial.settings(
        stamp_limit=SMALL, epochs=1, strengths=(0.0, 1.0)))
    columns = ("image category accuracy", "text category accuracy",
               "own discriminator accuracy", "linear probe", "MLP probe")
    expected = {f"λ={x} {c}" for x in (0, 1) for c in columns}
    assert set(outcome.metrics) == expected | {"whitened linear probe", "whitened MLP probe"}
    assert all(0 <= v <= 1 for v in outcome.metrics.values())
    assert list(outcome.details["sweep"].index) == [0.0, 1.0]


def test_self_supervised_recipe_runs(fresh_checkpoints):
    outcome = experiments.run("self-supervised", s=self_supervised.settings(
        pretrain_epochs=1, labels_per_class=(2,), label_seeds=(0,), finetune_epochs=1))
    assert set(outcome.metrics) == {"image 10-NN accuracy", "audio 10-NN accuracy",
                                    "2 labels/class, pretrained", "2 labels/class, scratch"}
    assert all(0 <= v <= 1 for v in outcome.metrics.values())
    assert outcome.details["first epoch loss"] > math.log(128) - 0.5
