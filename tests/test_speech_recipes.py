"""Chapter 08's recipes end to end on tiny settings, and their inference helpers on the
model's device."""
from __future__ import annotations

import pytest
import torch
import torch.fx.experimental._config  # noqa: F401  (the meta-device switch below)

from mmcourse import experiments
from mmcourse.experiments import connected_digits, speech_ctc
from mmcourse.tasks import asr
from mmcourse.tasks.transcripts import ALPHABETS

TINY_SPEECH = dict(per_language=60, epochs=1, seeds=1, conv_channels=(4, 8), hidden_size=16,
                   beam=2)
TINY_DIGITS = dict(per_class=20, train_utterances=64, eval_utterances=16, epochs=1,
                   conv_channels=(4, 8), hidden_size=16)


@pytest.fixture(scope="module")
def digits_setup():
    s = connected_digits.settings(**TINY_DIGITS)
    data = connected_digits.loaders(s)
    return s, data["task"], data


def test_joined_digits_hold_recordings_of_one_part(digits_setup):
    s, task, loaders = digits_setup
    test_set = loaders["test"].dataset
    for i in range(len(test_set)):
        sample = test_set[i]
        k = len(sample["targets"])
        assert s.min_digits <= k <= s.max_digits
        assert sample["targets"].min() >= 1                  # 0 is the blank
        assert test_set.digits(i) == "".join(str(int(t) - 1) for t in sample["targets"])
        assert len(sample["audio"]) == sum(len(test_set.features[j])
                                           for j in test_set.fixed[i])
    test_features, _ = task.part("test")
    assert len(test_set.features) == len(test_features)
    train_ids = {id(f) for f in task.part("train")[0]}
    assert not train_ids & {id(f) for f in test_features}
    # fixed utterances are the same on every read
    assert torch.equal(test_set[0]["audio"], test_set[0]["audio"])


def test_connected_digits_recipe_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    outcome = experiments.run("connected-digits-ctc",
                              s=connected_digits.settings(**TINY_DIGITS))
    assert outcome.name == "connected-digits-ctc" and outcome.seconds > 0
    assert 0 <= outcome.metrics["test digit error rate"]
    assert 0 <= outcome.metrics["test utterance accuracy"] <= 1
    assert outcome.details["recordings"] == 200


def test_speech_recipe_runs_end_to_end(tmp_path, monkeypatch):
    outcome = experiments.run("speech-ctc", s=speech_ctc.settings(**TINY_SPEECH))
    metrics = outcome.metrics
    for name in ("greedy", "beam", "beam + LM", "nearest neighbour",
                 "pooled log-mel neighbour"):
        assert metrics[f"{name} CER"] >= 0 and metrics[f"{name} WER"] >= 0
    transcripts = outcome.details["transcripts"]
    assert len(transcripts["reference"]) == outcome.details["test clips"] > 0
    assert set(transcripts) >= {"reference", "greedy", "beam", "beam + LM"}
    # the baseline copies training transcripts verbatim
    loaders = speech_ctc.loaders(speech_ctc.settings(**TINY_SPEECH))
    assert set(transcripts["nearest neighbour"]) <= set(loaders["reference"].dataset.texts)


def test_speech_task_is_split_by_stamp():
    task = speech_ctc.load_task("es", per_language=60)
    parts = {p: {task.stamp_names[i] for i in idx} for p, idx in task.split.items()}
    assert not parts["train"] & parts["test"] and not parts["train"] & parts["val"]
    # the inventory is the training captions' characters; every caption keeps only the
    # language's letters and the space
    train_chars = set("".join(task.texts[i] for i in task.split["train"]))
    assert train_chars == set(task.tokenizer.symbols[1:])
    assert all(set(t) <= set(ALPHABETS["es"] + " ") for t in task.texts)


def test_inference_helpers_feed_the_model_on_its_device(digits_setup, feeds_model_device):
    s, _, loaders = digits_setup
    feeds_model_device(connected_digits.evaluate, connected_digits.model(s), loaders)
    feeds_model_device(asr.transcribe, connected_digits.model(s), loaders["test"])
    # the masked batch norm selects valid frames by a boolean mask, which a meta tensor
    # cannot evaluate: let it assume every frame valid, so the batch reaches the modules
    with torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
        feeds_model_device(asr.utterance_embeddings, connected_digits.model(s),
                           loaders["test"])


def test_speech_evaluate_feeds_the_model_on_its_device(feeds_model_device):
    s = speech_ctc.settings(**TINY_SPEECH)
    loaders = speech_ctc.loaders(s)
    task = loaders["task"]
    feeds_model_device(speech_ctc.evaluate, speech_ctc.model(s, num_symbols=len(task.tokenizer)),
                       loaders, s)


def test_recogniser_keeps_time_and_strides():
    model = asr.CTCRecognizer(13, 11, time_stride=3, conv_channels=(4, 8), hidden_size=8)
    batch = {"audio": torch.randn(2, 10, 13), "audio_lengths": torch.tensor([10, 7])}
    model.eval()
    log_probs, lengths = model(batch)
    assert log_probs.shape == (2, 4, 11) and lengths.tolist() == [4, 3]
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 4))
    # padding, whatever it holds, never changes a valid output
    alone = {"audio": batch["audio"][1:, :7], "audio_lengths": torch.tensor([7])}
    torch.testing.assert_close(model(alone)[0][0], log_probs[1, :3])
    averaged, _ = model.average_frames(batch["audio"], batch["audio_lengths"])
    torch.testing.assert_close(averaged[1, 2], batch["audio"][1, 6])
    torch.testing.assert_close(averaged[0, 1], batch["audio"][0, 3:6].mean(0))
