"""Chapter 05's recipe pieces on a few real stamps and small real feature sets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.experiments import alignment


@pytest.fixture(scope="module")
def few_features(stamps, tmp_path_factory):
    """Frozen features of 6 real stamps with different captions (3 PNG, 3 SVG), computed
    into an empty cache."""
    cache = tmp_path_factory.mktemp("cache")
    distinct = list({s.caption: s for s in stamps}.values())
    chosen = [s for s in distinct if not s.is_svg][:3] + [s for s in distinct if s.is_svg][:3]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCOURSE_CACHE", str(cache))
        features = alignment.stamp_features(chosen)
        cached = list((cache / "arrays").glob("stamp-features-*.npz"))
        again = alignment.stamp_features(chosen)
    return chosen, features, cached, again


def test_stamp_features_shapes_and_cache(few_features):
    chosen, features, cached, again = few_features
    assert features["image"].shape == (6, 1280) and features["image"].dtype == np.float32
    assert features["text"].shape == (6, 384) and features["text"].dtype == np.float32
    assert np.isfinite(features["image"]).all()
    assert np.allclose(np.linalg.norm(features["text"], axis=1), 1, atol=1e-4)
    assert len(cached) == 1
    assert all(np.array_equal(features[k], again[k]) for k in features)


def test_captions_are_told_apart(few_features):
    """Different captions get clearly different MiniLM embeddings."""
    _, features, _, _ = few_features
    sims = features["text"] @ features["text"].T
    assert (sims[~np.eye(6, dtype=bool)] < 0.95).all()


def _toy_features(n=40, seed=0):
    """Real-shaped features: pictures and captions of n items of 4 categories, the
    caption a noisy linear image of the picture, so the pairs can be aligned."""
    g = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    image = g.normal(size=(n, 1280)).astype(np.float32) + labels[:, None]
    text = (image[:, :384] + 0.1 * g.normal(size=(n, 384))).astype(np.float32)
    idx = {"train": np.arange(0, 24), "val": np.arange(24, 32), "test": np.arange(32, 40)}
    return alignment.standardize({"image": image, "text": text}, idx["train"]), labels, idx


def test_standardize_uses_training_statistics():
    features, _, idx = _toy_features()
    for x in features.values():
        assert np.allclose(x[idx["train"]].mean(0), 0, atol=1e-5)
        assert np.allclose(x[idx["train"]].std(0), 1, atol=1e-4)


def test_feature_loader_batches():
    features, labels, idx = _toy_features()
    batch = next(iter(alignment.feature_loader(features, idx["train"], 8, labels=labels)))
    assert batch["image"].shape == (8, 1280) and batch["text"].shape == (8, 384)
    assert batch["label"].dtype == torch.int64
    whole = next(iter(alignment.feature_loader(features, idx["val"])))
    assert whole["image"].shape[0] == len(idx["val"]) and "label" not in whole


def test_retrieval_keys_and_chance():
    features, _, idx = _toy_features()
    torch.manual_seed(0)
    result = alignment.retrieval(alignment.alignment_model(), features, idx["test"])
    n = len(idx["test"])
    assert result["test stamps"] == n
    for k in (1, 5, 10):
        assert result[f"chance R@{k}"] == pytest.approx(k / n)
        for direction in ("image→caption", "caption→image"):
            assert 0 <= result[f"{direction} R@{k}"] <= 1
    assert result["image→caption R@10"] == 1.0  # 8 test items: everything is in the top 10


def test_similarity_matrix_matches_retrieval():
    features, _, idx = _toy_features()
    torch.manual_seed(0)
    model = alignment.alignment_model()
    sims = alignment.similarity(model, features, idx["test"])
    assert sims.shape == (8, 8) and sims.abs().max() <= 1 + 1e-5
    r1 = float((sims.argmax(1) == torch.arange(8)).float().mean())
    result = alignment.retrieval(model, features, idx["test"])
    assert r1 == pytest.approx(result["image→caption R@1"])


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_shared_space_forward_and_reversal(strength):
    features, labels, idx = _toy_features()
    torch.manual_seed(0)
    model = alignment.SharedSpace(num_classes=4, dim=16, adversarial=strength)
    batch = next(iter(alignment.feature_loader(features, idx["train"][:5], labels=labels)))
    (logits, extra), targets = model(batch)
    assert logits.shape == (10, 4) and targets.shape == (10,)
    assert torch.equal(targets, torch.cat([batch["label"], batch["label"]]))
    assert extra.ndim == 0 and float(extra.detach()) > 0
    extra.backward()
    disc = model.discriminator.net[0].weight.grad
    proj = model.project["image"][1].weight.grad
    assert disc is not None and disc.abs().sum() > 0  # the discriminator always learns
    assert (proj.abs().sum() > 0) == (strength > 0)  # the projections only feel it when λ > 0


def test_shared_space_report_keys():
    features, labels, idx = _toy_features()
    torch.manual_seed(0)
    model = alignment.SharedSpace(num_classes=4, dim=16)
    report = alignment.shared_space_report(model, features, labels, idx)
    assert set(report) == {"image category accuracy", "text category accuracy",
                           "own discriminator accuracy", "linear probe", "MLP probe"}
    assert all(0 <= v <= 1 for v in report.values())


def test_modality_probes_see_an_offset_and_not_noise():
    g = np.random.default_rng(0)
    same = {m: g.normal(size=(100, 8)) for m in ("image", "text")}
    same_test = {m: g.normal(size=(100, 8)) for m in ("image", "text")}
    shifted = {"image": same["image"] + 3, "text": same["text"]}
    shifted_test = {"image": same_test["image"] + 3, "text": same_test["text"]}
    assert alignment.modality_probes(shifted, shifted_test)["linear probe"] > 0.95
    assert alignment.modality_probes(same, same_test)["linear probe"] < 0.6


def test_neighbour_accuracy():
    g = np.random.default_rng(0)
    labels = (np.arange(200) // 2) % 4
    clustered = g.normal(size=(200, 5)) * 0.1 + labels[:, None]
    assert alignment.neighbour_accuracy(clustered, labels) == 1.0
    assert alignment.neighbour_accuracy(g.normal(size=(200, 5)), labels) < 0.5


def test_pretraining_model_pairs_image_and_audio(av_digits):
    model = alignment.pretraining_model()
    assert model.modalities == ["image", "audio"]
    embeddings, labels = alignment.av_test_embeddings(model)
    n = len(av_digits.test)
    assert embeddings["image"].shape == (n, 64) and embeddings["audio"].shape == (n, 64)
    assert np.array_equal(labels, av_digits.test.labels)
