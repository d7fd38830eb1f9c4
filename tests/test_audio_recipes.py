"""Chapter 03's recipes: spoken digits and spoken-caption language with a CRNN."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mmcourse import data, experiments
from mmcourse.experiments import audio_tasks, spoken_digits, spoken_language
from mmcourse.nn.encoders import count_parameters

TINY_DIGITS = dict(per_class=10, epochs=1, conv_channels=(4, 8), hidden_size=8)
TINY_LANGUAGE = dict(per_language=12, epochs=1, conv_channels=(4, 8), hidden_size=8,
                     max_frames=100)


@pytest.fixture(scope="module")
def digits():
    return spoken_digits.loaders(spoken_digits.Settings(**TINY_DIGITS))


@pytest.fixture(scope="module")
def languages(stamps):
    return spoken_language.loaders(spoken_language.Settings(**TINY_LANGUAGE), stamps)


# --- device discipline: every helper that runs a trained model feeds its device --------

def test_predictions_feed_the_model_device(feeds_model_device, digits):
    loaders = digits
    feeds_model_device(audio_tasks.predictions,
                       spoken_digits.model(spoken_digits.Settings(**TINY_DIGITS)),
                       loaders["test"])


def test_embeddings_feed_the_model_device(feeds_model_device, digits):
    loaders = digits
    feeds_model_device(audio_tasks.embeddings,
                       spoken_digits.model(spoken_digits.Settings(**TINY_DIGITS)),
                       loaders["test"])


def test_digits_evaluate_feeds_the_model_device(feeds_model_device, digits):
    loaders = digits
    feeds_model_device(spoken_digits.evaluate,
                       spoken_digits.model(spoken_digits.Settings(**TINY_DIGITS)), loaders)


def test_language_evaluate_feeds_the_model_device(feeds_model_device, languages):
    loaders = languages
    feeds_model_device(spoken_language.evaluate,
                       spoken_language.model(spoken_language.Settings(**TINY_LANGUAGE)),
                       loaders)


def test_the_device_check_catches_cpu_batches(feeds_model_device, digits):
    loaders = digits

    def cpu_embeddings(model, loader):
        return [model.embed(batch)["audio"] for batch in loader]

    with pytest.raises(AssertionError, match="not on the model's device"):
        feeds_model_device(cpu_embeddings,
                           spoken_digits.model(spoken_digits.Settings(**TINY_DIGITS)),
                           loaders["test"])


# --- the recipes end to end, on tiny settings ------------------------------------------

@pytest.mark.parametrize("module, tiny", [(spoken_digits, TINY_DIGITS),
                                          (spoken_language, TINY_LANGUAGE)])
def test_recipe_runs_on_tiny_settings(module, tiny):
    outcome = experiments.run(module.NAME, s=module.settings(**tiny))
    assert outcome.name == module.NAME
    assert set(outcome.metrics) == {"test accuracy", "baseline test accuracy", "parameters"}
    for key in ("test accuracy", "baseline test accuracy"):
        assert 0.0 <= outcome.metrics[key] <= 1.0, key
    assert outcome.metrics["parameters"] > 0
    assert outcome.details["epochs"] == 1
    assert outcome.seconds > 0


# --- settings and models ---------------------------------------------------------------

@pytest.mark.parametrize("module", [spoken_digits, spoken_language])
def test_settings_follow_the_fast_switch(module, monkeypatch):
    monkeypatch.setenv("MMCOURSE_FAST", "0")
    assert module.settings() == module.Settings()
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    fast = module.settings(epochs=1)
    assert fast == dataclasses.replace(module.Settings(), **{**module.FAST, "epochs": 1})


def test_full_models_have_the_chapters_sizes():
    digits = spoken_digits.model(spoken_digits.Settings())
    languages = spoken_language.model(spoken_language.Settings())
    assert count_parameters(digits) == 268_804
    assert digits.encoders["audio"].out_dim == 256
    assert count_parameters(languages) == 227_960
    assert languages.encoders["audio"].out_dim == 128


def test_crnn_model_is_seeded_and_keeps_the_global_random_state():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = audio_tasks.crnn_model(13, 10, seed=5, conv_channels=(4, 8), hidden_size=8)
    after = torch.rand(1)
    second = audio_tasks.crnn_model(13, 10, seed=5, conv_channels=(4, 8), hidden_size=8)
    other = audio_tasks.crnn_model(13, 10, seed=6, conv_channels=(4, 8), hidden_size=8)
    assert torch.equal(before, after)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))
    assert not torch.equal(first.head[0].weight, other.head[0].weight)


def test_model_reads_dict_batches_and_embeds(digits):
    loaders = digits
    s = spoken_digits.Settings(**TINY_DIGITS)
    model = spoken_digits.model(s).eval()
    batch = next(iter(loaders["test"]))
    with torch.no_grad():
        logits = model(batch)
        embedded = model.embed(batch)["audio"]
    assert logits.shape == (len(batch["label"]), 10)
    assert embedded.shape == (len(batch["label"]), 2 * s.hidden_size)
    vectors, labels = audio_tasks.embeddings(model, loaders["test"])
    assert np.allclose(vectors[:len(embedded)], embedded.numpy(), atol=1e-5)
    assert np.array_equal(labels[:len(embedded)], batch["label"].numpy())
    predicted, true = audio_tasks.predictions(model, loaders["test"])
    assert np.array_equal(predicted[:len(logits)], logits.argmax(-1).numpy())
    assert len(predicted) == len(true) == len(vectors)


# --- tasks and loaders -----------------------------------------------------------------

def test_digit_split_keeps_the_plain_80_20_test_part():
    task = audio_tasks.load_digits_task()
    plain = data.stratified_split(task.labels, (0.8, 0.2), seed=0)
    assert np.array_equal(task.split["test"], plain[1])
    assert sorted(len(v) for v in task.split.values()) == [240, 600, 2160]
    assert task.n_features == audio_tasks.N_MFCC


def test_language_split_keeps_stamps_together(languages):
    task = languages["task"]
    parts = {part: {task.groups[i] for i in idx} for part, idx in task.split.items()}
    assert not parts["train"] & parts["val"]
    assert not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]
    assert sum(len(idx) for idx in task.split.values()) == len(task)
    assert task.n_features == 64


def test_loaders_crop_and_augment_training_clips_only(stamps):
    s = spoken_language.Settings(**{**TINY_LANGUAGE, "max_frames": 40, "specaugment": True})
    loaders = spoken_language.loaders(s, stamps)
    task = loaders["task"]
    assert loaders["train"].dataset.max_frames == 40
    assert loaders["train"].dataset.augment == audio_tasks.SPEC_AUGMENT
    for part in ("val", "test"):
        assert loaders[part].dataset.max_frames is None
        assert loaders[part].dataset.augment is None
    batch = next(iter(loaders["train"]))
    assert batch["audio"].shape[1] <= 40
    whole = next(iter(loaders["val"]))
    first = task.features[task.split["val"][0]]
    assert torch.equal(whole["audio"][0, :len(first)], torch.as_tensor(first))


def test_bucket_sampler_covers_every_clip_once_in_similar_lengths():
    torch.manual_seed(0)
    lengths = [int(n) for n in torch.randint(1, 200, (103,))]
    sampler = audio_tasks.BucketBatchSampler(lengths, batch_size=10, pool=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 11
    assert sorted(i for b in batches for i in b) == list(range(103))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 80  # random batches of 10 span about 160 frames


def test_pooled_statistics_and_baseline(digits):
    task = digits["task"]
    clips = [np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]], dtype=np.float32),
             np.array([[4.0, 0.0]], dtype=np.float32)]
    stats = audio_tasks.pooled_statistics(clips)
    assert stats.shape == (2, 16)
    assert np.allclose(stats[0, :2], [2.0, 3.0])  # mean of the frames
    assert np.allclose(stats[1, 8:], 0.0)  # one frame: no differences
    score, predicted = audio_tasks.baseline(task)
    assert predicted.shape == task.split["test"].shape
    assert score == pytest.approx(float((predicted == task.part("test")[1]).mean()))
    assert score > 0.3  # 10 digits: chance is 0.1
