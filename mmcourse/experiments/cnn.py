"""Chapter 01's recipe: a small CNN (under 100 K parameters) on Fashion-MNIST.

The training images are split, stratified and seeded, into training and validation
parts (55,000 and 5,000 in full mode); the 10,000 test images are only used once, at the
end. The training images are augmented lightly (a random 28×28 crop of the image padded
by 2 pixels, and a left–right flip). Fast mode keeps a few thousand images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from mmcourse.data import FASHION_CLASSES, FashionMNIST, stratified_split
from mmcourse.nn.encoders import count_parameters
from mmcourse.nn.models import build_model
from mmcourse.runtime import config
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import FitResult, fit, predict

from . import Outcome, checkpoint, mode_settings


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    batch_size: int = 128
    """Mini-batch size for training; evaluation uses twice as many images per batch."""
    epochs: int = 15
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    """AdamW's decoupled weight decay."""
    train_limit: int | None = None
    """Training images kept (None: all 60,000), before the validation part is held out."""
    val_size: int = 5000
    test_limit: int | None = None
    """Test images kept (None: all 10,000)."""
    seed: int = 0


FAST = dict(batch_size=64, epochs=3, train_limit=4000, val_size=500, test_limit=2000)
"""What fast mode changes: 3,500 training images for three epochs."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def augmentation() -> v2.Compose:
    """Training augmentation: image float (1, 28, 28) → float (1, 28, 28).

    Pads by 2 pixels (zeros), crops a random 28×28 window, and flips left–right half of
    the time; the draws come from PyTorch's global generator.
    """
    return v2.Compose([v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip()])


def loaders(s: Settings) -> dict[str, DataLoader]:
    """Train, validation and test DataLoaders of Fashion-MNIST.

    Batches are ``(images float (B, 1, 28, 28) in [0, 1], labels int64 (B,))``.
    ``s.val_size`` images are held out of the ``s.train_limit`` training images,
    stratified by class with :data:`mmcourse.runtime.config.SPLIT_SEED`. Only the training loader shuffles and augments;
    its order comes from PyTorch's global generator, which :func:`mmcourse.training.train.fit`
    reseeds every epoch.
    """
    plain = FashionMNIST("train", limit=s.train_limit, seed=config.SPLIT_SEED)
    augmented = FashionMNIST("train", transform=augmentation(), limit=s.train_limit,
                             seed=s.seed)
    share = s.val_size / len(plain)
    train_idx, val_idx = stratified_split(plain.labels.numpy(), (1 - share, share),
                                          config.SPLIT_SEED)
    test = FashionMNIST("test", limit=s.test_limit, seed=config.SPLIT_SEED)
    return {"train": DataLoader(Subset(augmented, train_idx.tolist()), s.batch_size,
                                shuffle=True),
            "val": DataLoader(Subset(plain, val_idx.tolist()), 2 * s.batch_size),
            "test": DataLoader(test, 2 * s.batch_size)}


def model(s: Settings, data: dict | None = None) -> torch.nn.Module:
    """A :class:`~mmcourse.nn.encoders.SmallCNN` with a 10-class linear head, built by
    :func:`mmcourse.nn.models.build_model` and initialised from ``s.seed``.

    Images (N, 1, 28, 28) → logits (N, 10); 74,922 parameters. The global random state is
    left as it was. ``data`` (what :func:`loaders` returns) is not needed: the
    model depends on the settings only.
    """
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return build_model({"encoders": {"image": {"type": "small_cnn", "in_channels": 1}},
                            "head": {"num_classes": len(FASHION_CLASSES)}})


def train(model: torch.nn.Module, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]``, validating on ``loaders["val"]``.

    AdamW with a one-cycle schedule for ``s.epochs`` epochs; the best validation epoch's
    weights are kept. Load-or-train: a finished run's checkpoint is loaded instead of
    training again.
    """
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, seed=s.seed,
               checkpoint=checkpoint("fashion-cnn", s), progress=progress, desc="fashion-cnn")


def evaluate(model: torch.nn.Module, loaders: dict[str, DataLoader]) -> dict:
    """``{"test accuracy": float in [0, 1]}`` of ``model`` on ``loaders["test"]``."""
    logits, labels = predict(model, loaders["test"])
    return {"test accuracy": accuracy(logits, labels)}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: loaders, model, training, test accuracy → :class:`Outcome`."""
    s = s or settings()
    data, net = loaders(s), model(s)
    result = train(net, data, s, progress=progress)
    return Outcome("fashion-cnn", {**evaluate(net, data), "parameters": count_parameters(net)},
                   details={"best epoch": result.best_epoch, "val accuracy": result.best_score,
                            "epochs": len(result.history["train_loss"]),
                            "training seconds": sum(result.history["epoch_seconds"])})
