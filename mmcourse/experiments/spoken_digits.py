"""Chapter 03's first recipe: a CRNN on the spoken digits' MFCC frames.

The Free Spoken Digit Dataset (3,000 clips of 13 MFCCs per frame, 10 digits) is split,
stratified and seeded, 72/8/20 % into training, validation and test parts
(:func:`~mmcourse.experiments.audio_tasks.load_digits_task`). A CRNN
(:class:`~mmcourse.nn.encoders.AudioCRNNEncoder` and a linear head) is trained on it and
compared on the test part with a logistic regression on MFCC statistics pooled over time.
Fast mode keeps a share of the clips and a narrower CRNN, trained for more epochs.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.data import DataLoader

from mmcourse import data
from mmcourse.nn.encoders import count_parameters
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings
from .audio_tasks import (N_MFCC, baseline, crnn_model, load_digits_task, predictions,
                          task_loaders)

NAME = "spoken-digits-crnn"


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    per_class: int | None = None
    """Clips kept per digit (None: all 300), before the split."""
    epochs: int = 15
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    """AdamW's decoupled weight decay."""
    batch_size: int = 64
    """Training clips per batch; evaluation uses twice as many."""
    conv_channels: tuple = (32, 64)
    """Channels of the CRNN's convolution blocks (one frequency pooling each)."""
    hidden_size: int = 128
    """GRU units per direction; the embedding has twice as many dimensions."""
    seed: int = 0


FAST = dict(per_class=120, epochs=20, lr=5e-3, conv_channels=(16, 32), hidden_size=64)
"""What fast mode changes: 120 clips per digit (864 for training) and a CRNN half as
wide (68,372 parameters), trained for 20 epochs at a higher peak learning rate."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def loaders(s: Settings) -> dict:
    """{"task": the spoken-digits task (``s.per_class`` clips per digit, split with
    :data:`mmcourse.runtime.config.SPLIT_SEED`) and
    its train, validation and test loaders of dict batches
    (:func:`~mmcourse.experiments.audio_tasks.task_loaders`, ``s.batch_size``) under
    "train", "val" and "test"}."""
    task = load_digits_task(per_class=s.per_class)
    return {"task": task, **task_loaders(task, s.batch_size)}


def model(s: Settings, data: dict | None = None) -> nn.Module:
    """The CRNN for 13 MFCCs per frame and 10 digits, initialised from ``s.seed``:
    batch dict → logits (B, 10), embedding (B, 2 · ``s.hidden_size``). With the full
    settings it has 268,804 parameters. ``data`` (what :func:`loaders` returns) is not
    needed."""
    return crnn_model(N_MFCC, 10, s.seed, conv_channels=s.conv_channels,
                      hidden_size=s.hidden_size)


def train(model: nn.Module, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]``, validating on ``loaders["val"]``.

    AdamW with a one-cycle schedule for ``s.epochs`` epochs; the best validation epoch's
    weights are kept. Load-or-train: a finished run's checkpoint is loaded instead of
    training again.
    """
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, seed=s.seed, checkpoint=checkpoint(NAME, s),
               progress=progress, desc=NAME)


def evaluate(model: nn.Module, loaders: dict[str, DataLoader]) -> dict:
    """``{"test accuracy": float in [0, 1]}`` of ``model`` on ``loaders["test"]``."""
    predicted, labels = predictions(model, loaders["test"])
    return {"test accuracy": accuracy(predicted, labels)}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: task and loaders, model, training, test accuracy of the CRNN and
    of the pooled-MFCC logistic regression → :class:`Outcome`."""
    s = s or settings()
    data_loaders = loaders(s)
    task = data_loaders["task"]
    net = model(s)
    result = train(net, data_loaders, s, progress=progress)
    base, _ = baseline(task, data.pooled_mfcc)
    return Outcome(NAME, {**evaluate(net, data_loaders), "baseline test accuracy": base,
                          "parameters": count_parameters(net)},
                   details={"best epoch": result.best_epoch, "val accuracy": result.best_score,
                            "epochs": len(result.history["train_loss"]),
                            "clips": len(task),
                            "training seconds": sum(result.history["epoch_seconds"])})
