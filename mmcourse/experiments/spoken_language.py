"""Chapter 03's second recipe: which language is spoken in a stamp caption? A CRNN on
log-mel frames.

Eight languages of the spoken stamp captions (:data:`~mmcourse.experiments.audio_tasks.
LANGUAGES`), 64 log-mel bands per frame, split by stamp 70/15/15 % so that no test
sentence is heard in training, in any language
(:func:`~mmcourse.experiments.audio_tasks.load_language_task`). A narrow CRNN is trained on
it, optionally with SpecAugment, and compared on the test part with a logistic regression
on log-mel statistics pooled over time. Fast mode keeps the first clips of each language.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.data import DataLoader

from mmcourse.nn.encoders import count_parameters
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings
from .audio_tasks import (LANGUAGES, SPEC_AUGMENT, baseline, crnn_model,
                          load_language_task, pooled_statistics, predictions, task_loaders)

NAME = "spoken-language-crnn"


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    per_language: int | None = None
    """Clips kept per language, the first in stamp order (None: all, 657–925 each)."""
    languages: tuple = LANGUAGES
    """The classes: language codes of the spoken captions."""
    n_mels: int = 64
    """Log-mel bands per frame."""
    epochs: int = 5
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    """AdamW's decoupled weight decay."""
    batch_size: int = 32
    """Training clips per batch; evaluation uses twice as many."""
    max_frames: int = 300
    """Training clips longer than this (3 s) are cut to a random window of it."""
    conv_channels: tuple = (16, 32)
    """Channels of the CRNN's convolution blocks, narrower than the encoder's default to
    keep an epoch over ~4,800 clips of 64 bands affordable on a CPU."""
    hidden_size: int = 64
    """GRU units per direction; the embedding has twice as many dimensions."""
    specaugment: bool = False
    """Train with SpecAugment (:data:`~mmcourse.experiments.audio_tasks.SPEC_AUGMENT`)?
    No: in chapter 03's comparison it lowered the validation accuracy."""
    seed: int = 0


FAST = dict(per_language=80, epochs=10, lr=5e-3, max_frames=200, conv_channels=(8, 16),
            hidden_size=32)
"""What fast mode changes: the first 80 clips of each language, training clips cut to
2 s, and a CRNN half as wide (57,600 parameters) trained for ten epochs at a higher peak
learning rate."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def loaders(s: Settings, stamps=None) -> dict:
    """{"task": the spoken-language task (``s.per_language`` clips of each of ``s.languages``,
    ``s.n_mels`` bands, stamps split with
    :data:`mmcourse.runtime.config.SPLIT_SEED`; ``stamps`` default to
    :func:`mmcourse.data.load_stamps`), and its train, validation and test loaders
    (:func:`~mmcourse.experiments.audio_tasks.task_loaders`) under "train", "val" and
    "test"}: training clips are cut to ``s.max_frames`` and, if ``s.specaugment``, masked
    by SpecAugment."""
    task = load_language_task(stamps, s.languages, s.per_language, s.n_mels)
    return {"task": task, **task_loaders(task, s.batch_size,
                                         SPEC_AUGMENT if s.specaugment else None,
                                         s.max_frames)}


def model(s: Settings, data: dict | None = None) -> nn.Module:
    """The CRNN for ``s.n_mels`` bands and ``len(s.languages)`` classes, initialised from
    ``s.seed``: batch dict → logits (B, 8), embedding (B, 2 · ``s.hidden_size``). With the
    full settings it has 227,960 parameters. ``data`` (what :func:`loaders` returns) is not
    needed."""
    return crnn_model(s.n_mels, len(s.languages), s.seed, conv_channels=s.conv_channels,
                      hidden_size=s.hidden_size)


def train(model: nn.Module, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]``, validating on ``loaders["val"]`` (whole
    clips, no augmentation).

    AdamW with a one-cycle schedule for ``s.epochs`` epochs; the best validation epoch's
    weights are kept. Load-or-train: a finished run's checkpoint is loaded instead of
    training again.
    """
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, seed=s.seed, checkpoint=checkpoint(NAME, s),
               progress=progress, desc=NAME + (" + SpecAugment" if s.specaugment else ""))


def evaluate(model: nn.Module, loaders: dict[str, DataLoader]) -> dict:
    """``{"test accuracy": float in [0, 1]}`` of ``model`` on ``loaders["test"]``."""
    predicted, labels = predictions(model, loaders["test"])
    return {"test accuracy": accuracy(predicted, labels)}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: task and loaders, model, training, test accuracy of the CRNN and
    of the pooled log-mel logistic regression → :class:`Outcome`."""
    s = s or settings()
    data_loaders = loaders(s)
    task = data_loaders["task"]
    net = model(s)
    result = train(net, data_loaders, s, progress=progress)
    base, _ = baseline(task, pooled_statistics)
    return Outcome(NAME, {**evaluate(net, data_loaders), "baseline test accuracy": base,
                          "parameters": count_parameters(net)},
                   details={"best epoch": result.best_epoch, "val accuracy": result.best_score,
                            "epochs": len(result.history["train_loss"]),
                            "clips": len(task), "specaugment": s.specaugment,
                            "training seconds": sum(result.history["epoch_seconds"])})
