"""Chapter 01's recipe: a small CNN (under 100 K parameters) on Fashion-MNIST.

The 60,000 training images are split, stratified and seeded, into 55,000 for training
and 5,000 for validation; the 10,000 test images are only used once, at the end. The
training images are augmented lightly (a random 28×28 crop of the image padded by 2
pixels, and a left–right flip). Fast mode keeps a few thousand images and two epochs.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from .. import config
from ..data import FASHION_CLASSES, FashionMNIST, stratified_split
from ..encoders import SmallCNN, classifier, count_parameters
from ..train import FitResult, evaluate, fit
from . import Outcome

BATCH_SIZE = 128
"""Mini-batch size for training in full mode (fast: 64, so that the few fast-mode epochs
still take enough steps); evaluation uses twice as many images per batch."""
EPOCHS = 15
"""Epochs in full mode (2 in fast mode)."""
LR = 3e-3
"""Peak learning rate of the one-cycle schedule (AdamW)."""
WEIGHT_DECAY = 1e-2
"""AdamW's decoupled weight decay."""


def augmentation() -> v2.Compose:
    """Training augmentation: image float (1, 28, 28) → float (1, 28, 28).

    Pads by 2 pixels (zeros), crops a random 28×28 window, and flips left–right half of
    the time; the draws come from PyTorch's global generator.
    """
    return v2.Compose([v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip()])


def fashion_loaders(batch_size: int | None = None, val_size: int | None = None,
                    train_limit: int | None = None, test_limit: int | None = None,
                    seed: int = config.SEED) -> dict[str, DataLoader]:
    """Train, validation and test DataLoaders of Fashion-MNIST.

    Batches are (images float (B, 1, 28, 28) in [0, 1], labels int64 (B,)). Sizes default
    to ``config.pick``: ``batch_size`` :data:`BATCH_SIZE` (fast: 64); ``val_size`` 5,000
    (fast: 250) held out of ``train_limit`` training images (all 60,000; fast: 2,500),
    stratified by class with ``seed``; ``test_limit`` test images (all 10,000; fast:
    1,000). Only the training loader shuffles and augments; its order comes from
    PyTorch's global generator, which :func:`mmcourse.train.fit` reseeds every epoch.
    """
    batch_size = config.pick(BATCH_SIZE, 64) if batch_size is None else batch_size
    val_size = config.pick(5000, 250) if val_size is None else val_size
    train_limit = config.pick(None, 2500) if train_limit is None else train_limit
    test_limit = config.pick(None, 1000) if test_limit is None else test_limit
    plain = FashionMNIST("train", limit=train_limit, seed=seed)
    augmented = FashionMNIST("train", transform=augmentation(), limit=train_limit, seed=seed)
    share = val_size / len(plain)
    train_idx, val_idx = stratified_split(plain.labels.numpy(), (1 - share, share), seed)
    test = FashionMNIST("test", limit=test_limit, seed=seed)
    return {"train": DataLoader(Subset(augmented, train_idx.tolist()), batch_size, shuffle=True),
            "val": DataLoader(Subset(plain, val_idx.tolist()), 2 * batch_size),
            "test": DataLoader(test, 2 * batch_size)}


def fashion_model(seed: int = config.SEED) -> torch.nn.Module:
    """A :class:`~mmcourse.encoders.SmallCNN` with a 10-class head, initialised from ``seed``.

    Images (N, 1, 28, 28) → logits (N, 10); 74,922 parameters. The global random state is
    left as it was.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return classifier(SmallCNN(in_channels=1), len(FASHION_CLASSES))


def train_fashion(model: torch.nn.Module, loaders: dict[str, DataLoader],
                  progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]``, validating on ``loaders["val"]``.

    AdamW with a one-cycle schedule (:data:`LR`, :data:`WEIGHT_DECAY`) for :data:`EPOCHS`
    epochs (fast: 2); the best validation epoch's weights are kept. Load-or-train: a
    finished run's checkpoint (``config.checkpoint_path("fashion-cnn")``) is loaded
    instead of training again.
    """
    return fit(model, loaders["train"], loaders["val"], epochs=config.pick(EPOCHS, 2), lr=LR,
               weight_decay=WEIGHT_DECAY, checkpoint=config.checkpoint_path("fashion-cnn"),
               progress=progress, desc="fashion-cnn")


def evaluate_test(model: torch.nn.Module, loaders: dict[str, DataLoader]) -> float:
    """Accuracy of ``model`` on ``loaders["test"]`` (a float in [0, 1])."""
    return evaluate(model, loaders["test"])["accuracy"]


def run_fashion_cnn(progress: bool = False) -> Outcome:
    """The whole recipe: loaders, model, training, test accuracy → :class:`Outcome`."""
    loaders = fashion_loaders()
    model = fashion_model()
    result = train_fashion(model, loaders, progress=progress)
    return Outcome("fashion-cnn",
                   {"test accuracy": evaluate_test(model, loaders),
                    "parameters": count_parameters(model)},
                   details={"best epoch": result.best_epoch,
                            "val accuracy": result.best_score,
                            "epochs": len(result.history["train_loss"]),
                            "training seconds": sum(result.history["epoch_seconds"])})


RUNS = {"fashion-cnn": run_fashion_cnn}
"""Recipe name → function(progress) → Outcome, as listed in ``mmcourse.experiments``."""
