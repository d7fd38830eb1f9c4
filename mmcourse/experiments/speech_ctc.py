"""Chapter 08's first recipe: spoken stamp captions transcribed to characters with CTC.

One language of the recorded stamp captions (Spanish by default: 888 clips with a
caption, a spelling close to its sounds). Captions are normalised to the
language's letters and the space (:func:`mmcourse.tasks.transcripts.normalize_transcript`);
the character inventory comes from the training captions. Stamps are split 70/15/15 %
by stamp (:func:`mmcourse.data.split_stamps`, as in chapter 03), so no test clip is
heard in training; identical captions of different stamps ("Una rana.") may still fall
on both sides, which helps the nearest-neighbour baseline more than the recogniser.

A CRNN (:class:`mmcourse.tasks.asr.CTCRecognizer`, chapter 03's encoder with a per-frame
output layer) is trained with the CTC loss, once per seed, and decoded greedily and by
prefix beam search, with and without a character n-gram language model of the training
captions. The baseline copies the transcript of the nearest training clip in the
recogniser's own encoder space (time-averaged per-frame outputs) and, weaker, in the
space of pooled log-mel statistics.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mmcourse import data
from mmcourse.nn.encoders import count_parameters
from mmcourse.nn.neighbours import nearest_neighbour
from mmcourse.runtime import config
from mmcourse.tasks.asr import (CTCRecognizer, TranscriptDataset, collate_transcripts, ctc_step,
                                mean_loss, transcribe, utterance_embeddings)
from mmcourse.tasks.ctc import CharNgramLM, lm_scorer
from mmcourse.tasks.transcripts import CharTokenizer
from mmcourse.training.metrics import cer, wer
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings
from .audio_tasks import SPEC_AUGMENT, STAMP_FRACTIONS, BucketBatchSampler

NAME = "speech-ctc"


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    language: str = "es"
    """Language of the spoken captions (a key of :data:`mmcourse.tasks.transcripts.ALPHABETS`)."""
    per_language: int | None = None
    """Clips kept, the first in stamp order (None: all)."""
    n_mels: int = 64
    time_stride: int = 3
    """Input frames averaged into one recogniser step (30 ms)."""
    conv_channels: tuple = (16, 32)
    hidden_size: int = 96
    """GRU units per direction."""
    epochs: int = 30
    lr: float = 5e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    batch_size: int = 32
    specaugment: bool = False
    """Train with SpecAugment (:data:`~mmcourse.experiments.audio_tasks.SPEC_AUGMENT`)?"""
    beam: int = 8
    """Prefixes kept by the beam search."""
    lm_order: int = 4
    """Order of the character n-gram language model."""
    lm_weight: float = 0.3
    insertion_bonus: float = 1.0
    """Shallow-fusion weight of the LM, and the bonus per character that offsets the LM's
    preference for short transcripts."""
    seeds: int = 3
    """Recognisers :func:`run` trains, with seeds ``seed``, ``seed + 1``, …"""
    seed: int = 0
    """Seed of the model's initialisation and of training (the split always uses
    :data:`mmcourse.runtime.config.SPLIT_SEED`)."""


FAST = dict(epochs=12, seeds=1)
"""What fast mode changes: 12 epochs instead of 30, one seed."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


@dataclass
class SpeechTask:
    """Spoken captions of one language with their transcripts and a split by stamp.

    ``features[i]`` float32 (T_i, n_mels); ``texts[i]`` the normalised caption;
    ``split`` maps ``train``/``val``/``test`` to index arrays; ``tokenizer`` was built
    from the training captions.
    """

    features: list
    texts: list
    split: dict
    tokenizer: CharTokenizer
    stamp_names: list

    def __len__(self) -> int:
        return len(self.texts)

    def part(self, name: str) -> tuple[list, list]:
        """Features and normalised transcripts of split part ``name``."""
        idx = self.split[name]
        return [self.features[i] for i in idx], [self.texts[i] for i in idx]


def load_task(language: str = "es", per_language: int | None = None, n_mels: int = 64,
              stamps=None) -> SpeechTask:
    """The spoken captions in ``language`` of every stamp with a caption in it, as log-mel
    frames (cached, :func:`mmcourse.data.load_spoken_captions`), split by stamp."""
    stamps = data.load_stamps() if stamps is None else stamps
    stamps = [s for s in stamps if language in s.spoken and language in s.captions]
    clips = data.load_spoken_captions(stamps, [language], n_mels=n_mels,
                                      per_language=per_language)
    caption = {s.name: s.captions[language] for s in stamps}
    part_of = {s.name: part for part, members in
               data.split_stamps(stamps, STAMP_FRACTIONS, seed=config.SPLIT_SEED).items()
               for s in members}
    names = np.array([part_of[n] for n in clips.stamp_names])
    split = {p: np.flatnonzero(names == p) for p in ("train", "val", "test")}
    raw = [caption[n] for n in clips.stamp_names]
    tokenizer = CharTokenizer.fit([raw[i] for i in split["train"]], language)
    return SpeechTask(clips.features, [tokenizer.normalize(t) for t in raw], split,
                      tokenizer, clips.stamp_names)


def loaders(s: Settings, stamps=None) -> dict:
    """The task and its loaders: ``train`` (random batches of similar length, SpecAugment
    if ``s.specaugment``), ``val``, ``test`` and ``reference`` (the training clips in
    order, unaugmented, for the nearest-neighbour baseline)."""
    task = load_task(s.language, s.per_language, s.n_mels, stamps)

    def dataset(part, augment=None):
        features, texts = task.part(part)
        return TranscriptDataset(features, [task.tokenizer.encode(t) for t in texts],
                                 augment, texts, task.tokenizer.symbols)

    train_set = dataset("train", SPEC_AUGMENT if s.specaugment else None)
    lengths = [len(f) for f in train_set.features]
    plain = dict(batch_size=2 * s.batch_size, collate_fn=collate_transcripts)
    return {"task": task,
        "train": DataLoader(train_set, batch_sampler=BucketBatchSampler(lengths, s.batch_size),
                            collate_fn=collate_transcripts),
        "val": DataLoader(dataset("val"), **plain),
        "test": DataLoader(dataset("test"), **plain),
        "reference": DataLoader(dataset("train"), **plain)}


def model(s: Settings, data: dict | None = None, num_symbols: int | None = None
          ) -> CTCRecognizer:
    """The recogniser for ``s.n_mels`` bands, initialised from ``s.seed``; its output
    layer has ``num_symbols`` units (default: the size of the training inventory of
    ``data["task"]``, what :func:`loaders` returns, or of the task ``s`` loads)."""
    if num_symbols is None:
        task = data["task"] if data is not None else load_task(s.language, s.per_language,
                                                                 s.n_mels)
        num_symbols = len(task.tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return CTCRecognizer(s.n_mels, num_symbols, time_stride=s.time_stride,
                             conv_channels=s.conv_channels, hidden_size=s.hidden_size)


def train(model: nn.Module, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train with the CTC loss (:func:`mmcourse.tasks.asr.ctc_step`), AdamW and a one-cycle
    schedule for ``s.epochs`` epochs; the epoch of lowest validation loss is kept.
    Load-or-train through a checkpoint."""
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, forward=ctc_step, loss_fn=mean_loss,
               monitor="val_loss", seed=s.seed, checkpoint=checkpoint(NAME, s),
               progress=progress, desc=NAME + (" + SpecAugment" if s.specaugment else ""))


def language_model(loaders: dict[str, DataLoader], order: int = 4) -> CharNgramLM:
    """The character n-gram LM of the training transcripts."""
    return CharNgramLM(order).fit(loaders["reference"].dataset.texts)


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    """``{"CER", "WER"}`` of transcripts."""
    return {"CER": cer(references, hypotheses), "WER": wer(references, hypotheses)}


def decode_all(model: nn.Module, loader: DataLoader, symbols: list[str], s: Settings,
               lm: CharNgramLM | None = None) -> dict[str, list[str]]:
    """Transcripts of every clip of ``loader`` by ``greedy`` decoding, ``beam`` search and
    (given ``lm``) ``beam + LM``."""
    def text(ids):
        return "".join(symbols[i] for i in ids)

    out = {"greedy": [text(h) for h in transcribe(model, loader)],
           "beam": [text(h) for h in transcribe(model, loader, "beam", beam=s.beam)]}
    if lm is not None:
        out["beam + LM"] = [text(h) for h in transcribe(
            model, loader, "beam", beam=s.beam, lm=lm_scorer(lm, symbols),
            lm_weight=s.lm_weight, insertion_bonus=s.insertion_bonus)]
    return out


def nearest_neighbour_transcripts(model: nn.Module, loaders: dict[str, DataLoader],
                                  part: str = "test") -> list[str]:
    """For each clip of ``loaders[part]``, the transcript of the training clip nearest
    to it in the recogniser's encoder space (cosine of time-averaged frame outputs)."""
    keys = utterance_embeddings(model, loaders["reference"])
    queries = utterance_embeddings(model, loaders[part])
    texts = loaders["reference"].dataset.texts
    return [texts[j] for j in nearest_neighbour(queries, keys)]


def pooled_neighbour_transcripts(loaders: dict[str, DataLoader], part: str = "test"
                                 ) -> list[str]:
    """The same baseline in the space of standardised pooled log-mel statistics
    (:func:`mmcourse.data.pooled_mfcc`), which needs no training."""
    keys = data.pooled_mfcc([f.numpy() for f in loaders["reference"].dataset.features])
    queries = data.pooled_mfcc([f.numpy() for f in loaders[part].dataset.features])
    mean, std = keys.mean(0), keys.std(0) + 1e-6
    texts = loaders["reference"].dataset.texts
    return [texts[j] for j in nearest_neighbour((queries - mean) / std, (keys - mean) / std)]


def transcripts(model: nn.Module, loaders: dict[str, DataLoader], s: Settings | None = None
                ) -> dict[str, list[str]]:
    """Every decoder's transcripts of the test clips (:func:`decode_all`, with the LM of
    :func:`language_model`) and the encoder-space nearest neighbour's."""
    s = s or settings()
    symbols = loaders["test"].dataset.symbols
    hypotheses = decode_all(model, loaders["test"], symbols, s,
                            language_model(loaders, s.lm_order))
    hypotheses["nearest neighbour"] = nearest_neighbour_transcripts(model, loaders)
    return hypotheses


def scores(references: list[str], hypotheses: dict[str, list[str]]) -> dict:
    """``{"<name> CER", "<name> WER"}`` for every transcript list in ``hypotheses``."""
    return {f"{name} {k}": v for name, h in hypotheses.items()
            for k, v in error_rates(references, h).items()}


def evaluate(model: nn.Module, loaders: dict[str, DataLoader], s: Settings | None = None
             ) -> dict:
    """Test CER and WER of ``model`` by every decoder and of the encoder-space
    nearest-neighbour baseline: ``{"greedy CER", "greedy WER", "beam CER", …,
    "nearest neighbour CER", "nearest neighbour WER"}``."""
    return scores(loaders["test"].dataset.texts, transcripts(model, loaders, s))


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """Train ``s.seeds`` recognisers and evaluate each (:func:`evaluate`); the metrics
    are means over seeds, with the pooled log-mel nearest neighbour (seed-free) added.
    ``details`` holds each seed's metrics, best epochs and the first seed's transcripts
    (with the references)."""
    s = s or settings()
    data_loaders = loaders(s)
    task = data_loaders["task"]
    references = data_loaders["test"].dataset.texts
    per_seed, best_epochs, first = [], [], None
    for k in range(s.seeds):
        sk = dataclasses.replace(s, seed=s.seed + k)
        net = model(sk, data_loaders)
        result = train(net, data_loaders, sk, progress=progress)
        hypotheses = transcripts(net, data_loaders, sk)
        per_seed.append(scores(references, hypotheses))
        best_epochs.append(result.best_epoch)
        first = first or {"reference": references, **hypotheses}
    metrics = {key: float(np.mean([m[key] for m in per_seed])) for key in per_seed[0]}
    metrics.update(scores(references, {"pooled log-mel neighbour":
                                       pooled_neighbour_transcripts(data_loaders)}))
    metrics["parameters"] = count_parameters(net)
    return Outcome(NAME, metrics, details={"per seed": per_seed, "best epochs": best_epochs,
                                           "transcripts": first, "clips": len(task),
                                           "test clips": len(references),
                                           "symbols": len(task.tokenizer)})
