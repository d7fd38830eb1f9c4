"""Chapter 08's second recipe: connected digits, transcribed with CTC.

The spoken digits (FSDD, 13 MFCCs per frame) are isolated recordings. Here 2–7 of them
are joined end to end into one utterance, and a CRNN with a CTC output layer spells the
digit string without ever being told where one digit ends. These are *joined real
recordings*, not natural connected speech: there is no coarticulation between digits and
each piece keeps its own recording's silence and loudness.

The recordings are split as in chapter 03 (:func:`~mmcourse.experiments.audio_tasks.
load_digits_task`: 72 % train, 8 % validation, 20 % test, stratified by digit), and every
utterance is built from recordings of one part only, so a test recording is never heard
in training. Training utterances are drawn afresh every epoch; validation and test
utterances are fixed by the seed. The score is the digit error rate: the edit distance
between the spoken and the transcribed digit strings over the number of spoken digits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmcourse.nn.encoders import count_parameters
from mmcourse.tasks.asr import CTCRecognizer, collate_transcripts, ctc_step, mean_loss, transcribe
from mmcourse.training.metrics import error_rate
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings
from .audio_tasks import N_MFCC, load_digits_task

NAME = "connected-digits-ctc"
SYMBOLS = ["_", *"0123456789"]
"""Output symbols: the blank, then digit d has id d + 1."""


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    per_class: int | None = None
    """Recordings kept per digit, the first in order (None: all 300)."""
    min_digits: int = 2
    max_digits: int = 7
    """Digits per utterance, drawn uniformly from min_digits..max_digits."""
    train_utterances: int = 2000
    """Training utterances per epoch, drawn afresh each epoch."""
    eval_utterances: int = 500
    """Fixed validation and test utterances (each)."""
    epochs: int = 12
    lr: float = 5e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    batch_size: int = 32
    conv_channels: tuple = (16, 32)
    hidden_size: int = 64
    """GRU units per direction."""
    seed: int = 0


FAST = dict(per_class=120, train_utterances=800, eval_utterances=200, epochs=8)
"""What fast mode changes: 120 recordings of each digit (1,200 in all), fewer utterances
and epochs."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


class JoinedDigits(Dataset):
    """Utterances of ``min_digits``–``max_digits`` recordings of ``features`` joined in
    time: samples ``{"audio": (ΣT_i, 13), "targets": (k,)}`` with targets digit + 1.

    With ``seed`` None every item is drawn afresh from PyTorch's global generator (which
    :func:`mmcourse.training.train.fit` reseeds per epoch); with a seed the utterances are drawn
    once and fixed. No recording appears twice in one utterance.
    """

    def __init__(self, features: list, labels: np.ndarray, size: int, min_digits: int = 2,
                 max_digits: int = 7, seed: int | None = None):
        self.features = [torch.as_tensor(f, dtype=torch.float32) for f in features]
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.size, self.min_digits, self.max_digits = size, min_digits, max_digits
        self.fixed = None
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
            self.fixed = [self._draw(generator) for _ in range(size)]

    def _draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        k = int(torch.randint(self.min_digits, self.max_digits + 1, (), generator=generator))
        return torch.randperm(len(self.features), generator=generator)[:k]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        chosen = self.fixed[i] if self.fixed is not None else self._draw()
        return {"audio": torch.cat([self.features[j] for j in chosen]),
                "targets": self.labels[chosen] + 1}

    def digits(self, i: int) -> str:
        """The digit string of fixed utterance ``i``."""
        return "".join(str(int(self.labels[j])) for j in self.fixed[i])


def loaders(s: Settings) -> dict:
    """{"task": the digit recordings split by recording, and loaders of joined utterances
    under "train", "val" and "test"}: training
    ones drawn afresh per epoch from the training recordings, fixed validation and test
    ones (``s.eval_utterances`` each, seeds ``s.seed + 1`` and ``s.seed + 2``)."""
    task = load_digits_task(s.per_class)

    def joined(part, size, seed):
        features, labels = task.part(part)
        return JoinedDigits(features, labels, size, s.min_digits, s.max_digits, seed)

    out = {"train": DataLoader(joined("train", s.train_utterances, None),
                               batch_size=s.batch_size, shuffle=False,
                               collate_fn=collate_transcripts)}
    for k, part in enumerate(("val", "test"), 1):
        out[part] = DataLoader(joined(part, s.eval_utterances, s.seed + k),
                               batch_size=2 * s.batch_size, collate_fn=collate_transcripts)
    return {"task": task, **out}


def model(s: Settings, data: dict | None = None) -> CTCRecognizer:
    """The CRNN with a CTC output layer over :data:`SYMBOLS` (no time stride: a digit
    can be as short as 6 frames), initialised from ``s.seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return CTCRecognizer(N_MFCC, len(SYMBOLS), conv_channels=s.conv_channels,
                             hidden_size=s.hidden_size)


def train(model: nn.Module, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train with the CTC loss (:func:`mmcourse.tasks.asr.ctc_step`), AdamW and a one-cycle
    schedule; the epoch of lowest validation loss is kept. Load-or-train through a
    checkpoint."""
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, forward=ctc_step, loss_fn=mean_loss,
               monitor="val_loss", seed=s.seed, checkpoint=checkpoint(NAME, s),
               progress=progress, desc=NAME)


def transcripts(model: nn.Module, loader: DataLoader) -> tuple[list[str], list[str]]:
    """Spoken and greedily transcribed digit strings of a fixed loader's utterances."""
    dataset = loader.dataset
    hypotheses = ["".join(SYMBOLS[i] for i in h) for h in transcribe(model, loader)]
    return [dataset.digits(i) for i in range(len(dataset))], hypotheses


def evaluate(model: nn.Module, loaders: dict[str, DataLoader]) -> dict:
    """``{"test digit error rate", "test utterance accuracy"}``: digit edits over spoken
    digits, and the share of utterances transcribed without an error."""
    refs, hyps = transcripts(model, loaders["test"])
    return {"test digit error rate": error_rate(refs, hyps),
            "test utterance accuracy": float(np.mean([r == h for r, h in zip(refs, hyps)]))}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: loaders, model, training, test digit error rate → Outcome."""
    s = s or settings()
    data_loaders = loaders(s)
    task = data_loaders["task"]
    net = model(s)
    result = train(net, data_loaders, s, progress=progress)
    return Outcome(NAME, {**evaluate(net, data_loaders), "parameters": count_parameters(net)},
                   details={"best epoch": result.best_epoch,
                            "val loss": result.best_score,
                            "recordings": len(task),
                            "training seconds": sum(result.history["epoch_seconds"])})
