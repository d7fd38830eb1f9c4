"""Chapter 02's recipe (caption language): data, model, inference helpers, a tiny run."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mmcourse import experiments
from mmcourse.experiments import rnn
from mmcourse.nn.encoders import count_parameters

TINY = dict(languages=("en", "de", "ja"), epochs=1, batch_size=64, embed_dim=8,
            hidden_size=8, compare_languages=("en", "de"), compare_cells=("rnn", "gru"),
            compare_epochs=1)
"""Three languages, a small encoder, one epoch: a run of a few seconds."""


@pytest.fixture(scope="module")
def tiny(stamps):
    """(settings, dataset, tokenizer, loaders) of the tiny settings."""
    s = rnn.settings(**TINY)
    dataset = rnn.caption_language_data(s, stamps)
    tokenizer = rnn.fit_tokenizer(dataset)
    return s, dataset, tokenizer, rnn.language_loaders(dataset, tokenizer, s)


@pytest.fixture
def tiny_model(tiny):
    s, dataset, tokenizer, _ = tiny
    return rnn.language_model(s, len(tokenizer.vocab), len(dataset.languages))


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """Checkpoints go to a fresh folder, so a test trains instead of loading."""
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))


def test_settings_fast_and_full(monkeypatch):
    monkeypatch.setenv("MMCOURSE_FAST", "0")
    full = rnn.settings()
    assert full == rnn.Settings() and full.languages is None
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    fast = rnn.settings(lr=1e-3)
    assert fast.languages == rnn.FAST_LANGUAGES and fast.lr == 1e-3
    assert fast.epochs == rnn.FAST["epochs"] < full.epochs
    # fast mode's main run is the comparison's GRU run, so both share one checkpoint
    assert dataclasses.replace(fast, languages=fast.compare_languages,
                               epochs=fast.compare_epochs) == fast


def test_checkpoints_differ_by_settings():
    s = rnn.Settings()
    names = {experiments.checkpoint(rnn.run_name(t), t)
             for t in (s, dataclasses.replace(s, languages=("en", "de")),
                       dataclasses.replace(s, cell="lstm"), dataclasses.replace(s, epochs=2))}
    assert len(names) == 4


def test_data_split_by_stamp_and_labelled_by_language(tiny, stamps):
    _, dataset, _, _ = tiny
    assert dataset.languages == ["en", "de", "ja"]
    parts = [set(names) for names in dataset.stamps.values()]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    koala = next(s for s in stamps if s.name.endswith("/koala"))
    part = next(p for p, names in dataset.stamps.items() if koala.name in names)
    captions = {t: int(label) for t, label, name in zip(
        dataset.texts[part], dataset.labels[part], dataset.stamps[part]) if name == koala.name}
    assert captions == {koala.caption_in("en"): 0, koala.caption_in("de"): 1,
                        koala.caption_in("ja"): 2}


def test_every_language_with_enough_captions(stamps):
    dataset = rnn.caption_language_data(rnn.Settings(), stamps)
    assert len(dataset.languages) == 60 and dataset.languages == sorted(dataset.languages)
    fewer = rnn.caption_language_data(rnn.Settings(min_captions=900), stamps)
    assert set(fewer.languages) < set(dataset.languages)
    with pytest.raises(ValueError, match="no stamp has a caption"):
        rnn.caption_language_data(rnn.Settings(languages=("en", "xx")), stamps)


def test_loaders_give_padded_dict_batches(tiny):
    s, _, _, loaders = tiny
    batch = next(iter(loaders["train"]))
    assert set(batch) == {"tokens", "tokens_lengths", "tokens_mask", "label"}
    assert batch["tokens"].shape[0] == s.batch_size
    assert batch["tokens"].shape[1] == int(batch["tokens_lengths"].max()) <= s.max_len
    assert torch.equal(batch["tokens_mask"].sum(1), batch["tokens_lengths"])


def test_model_is_seeded_and_one_modality(tiny, tiny_model):
    s, dataset, tokenizer, loaders = tiny
    state = torch.random.get_rng_state()
    again = rnn.language_model(s, len(tokenizer.vocab), len(dataset.languages))
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.parameters(), again.parameters()))
    batch = next(iter(loaders["val"]))
    assert tiny_model(batch).shape == (len(batch["label"]), 3)
    assert tiny_model.embed(batch)["text"].shape == (len(batch["label"]), 2 * s.hidden_size)
    # the chapter's full model: 2,250 characters, 60 languages
    assert count_parameters(rnn.language_model(rnn.Settings(), 2250, 60)) == 201_660


def test_predictions_and_embeddings_follow_the_loader(tiny, tiny_model):
    _, dataset, _, loaders = tiny
    predicted = rnn.rnn_predictions(tiny_model, loaders["test"])
    assert predicted.shape == dataset.labels["test"].shape
    assert set(np.unique(predicted)) <= {0, 1, 2}
    vectors = rnn.embeddings(tiny_model, loaders["test"])
    assert vectors.shape == (len(predicted), tiny_model.encoders["text"].out_dim)
    head = tiny_model.head(torch.from_numpy(vectors))
    assert np.array_equal(head.argmax(-1).numpy(), predicted)


def test_language_probabilities(tiny, tiny_model):
    s, _, tokenizer, _ = tiny
    p = rnn.language_probabilities(tiny_model, tokenizer, ["A koala.", "Ein Koala."], s.max_len)
    assert p.shape == (2, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="no characters"):
        rnn.language_probabilities(tiny_model, tokenizer, ["A koala.", "?!"], s.max_len)


def test_predictions_feed_the_model_device(feeds_model_device, tiny, tiny_model):
    feeds_model_device(rnn.rnn_predictions, tiny_model, tiny[3]["test"])


def test_embeddings_feed_the_model_device(feeds_model_device, tiny, tiny_model):
    feeds_model_device(rnn.embeddings, tiny_model, tiny[3]["test"])


def test_language_probabilities_feed_the_model_device(feeds_model_device, tiny, tiny_model):
    s, _, tokenizer, _ = tiny
    feeds_model_device(rnn.language_probabilities, tiny_model, tokenizer, ["A koala."],
                       s.max_len)


def test_evaluate_feeds_the_model_device(feeds_model_device, tiny, tiny_model):
    feeds_model_device(rnn.evaluate, tiny_model, tiny[3])


def test_accuracy_ceiling(tiny):
    _, dataset, _, _ = tiny
    # en, de and ja captions differ almost always: close to, but not above, 1
    ceiling = rnn.accuracy_ceiling(dataset.texts["test"], dataset.labels["test"])
    assert 0.95 < ceiling <= 1.0
    # "A koala." is the same string in en, en_GB and en_AU: one of three can be right
    texts = ["A koala.", "A koala.", "a koala", "Ein Koala."]
    assert rnn.accuracy_ceiling(texts, np.array([0, 1, 2, 3])) == pytest.approx(0.5)


def test_confused_pairs():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([1, 1, 0, 0, 1, 2, 2, 0])
    table = rnn.confused_pairs(labels, predicted, ["en", "en_GB", "de"], top=2)
    assert table[["a", "b"]].values.tolist() == [["en", "en_GB"], ["en", "de"]]
    assert table[["a→b", "b→a", "total"]].values.tolist() == [[2, 1, 3], [0, 1, 1]]


def test_ngram_baseline_tells_scripts_apart(tiny):
    s, dataset, _, _ = tiny
    pipeline, predicted = rnn.ngram_baseline(dataset, s)
    truth = dataset.labels["test"]
    assert predicted.shape == truth.shape
    assert (predicted[truth == 2] == 2).mean() > 0.95          # Japanese
    assert (predicted == truth).mean() > 0.8


def test_run_tiny(own_cache):
    outcome = experiments.run("caption-language-rnn", s=rnn.settings(**TINY))
    metrics = outcome.metrics
    assert {"rnn test accuracy", "rnn macro-F1", "n-gram test accuracy", "n-gram macro-F1",
            "accuracy ceiling"} <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in ("rnn test accuracy", "rnn macro-F1",
                                              "n-gram test accuracy", "n-gram macro-F1",
                                              "accuracy ceiling"))
    assert metrics["languages"] == 3 and metrics["test captions"] > 0
    assert metrics["n-gram test accuracy"] > 0.8
    assert metrics["rnn test accuracy"] <= metrics["accuracy ceiling"]
    assert outcome.seconds > 0


def test_compare_cells_tiny(own_cache):
    rows = rnn.compare_cells(rnn.settings(**TINY))
    assert list(rows) == ["rnn", "gru", "n-grams"]
    assert all(0 <= row["accuracy"] <= 1 for row in rows.values())
    assert rows["gru"]["parameters"] > rows["rnn"]["parameters"]
    assert rows["rnn"]["s / epoch"] > 0
