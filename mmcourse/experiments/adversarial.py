"""Chapter 05's adversarial alignment of stamp pictures and captions.

A :class:`SharedSpace` projects the frozen picture and caption features of the stamps
(:mod:`.stamp_features`) into one space, classifies the category of both with one shared
head, and trains a modality discriminator behind a gradient reversal of strength λ. The
recipe sweeps λ and asks, on held-out stamps, whether the category can still be read off
the shared space and whether the modality can: by the model's own discriminator, and by
fresh probes trained afterwards on the frozen embeddings (the honest test).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from torch import nn
from torch.utils.data import DataLoader

from mmcourse.data import load_stamps
from mmcourse.nn.crossmodal import ModalityDiscriminator
from mmcourse.nn.encoders import EFFICIENTNET_DIM
from mmcourse.runtime import config
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import FitResult, embed, fit

from . import Outcome, checkpoint, mode_settings
from .stamp_features import TEXT_DIM, stamp_split


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    stamp_limit: int | None = None
    """Stamps kept (a category-stratified subset; None: all of them) before the split."""
    image_size: int = 224
    """Side of the centre crop the image tower sees."""
    strengths: tuple = (0.0, 0.1, 1.0, 10.0)
    """The reversal strengths λ of the sweep, one model each."""
    dim: int = 128
    """Size of the shared space."""
    dropout: float = 0.2
    """Dropout on the frozen features before each projection."""
    discriminator_hidden: int = 64
    """Hidden units of the modality discriminator (and of the fresh MLP probe)."""
    batch_size: int = 64
    epochs: int = 40
    lr: float = 1e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    whiten_dim: int = 32
    """Principal components kept when each modality is whitened on its own."""
    seed: int = 0
    """Seeds the initial weights, the batch order and the probes (the stamp subset and
    the split use :data:`mmcourse.runtime.config.SPLIT_SEED`)."""


FAST = dict(stamp_limit=480)
"""What fast mode changes: half of the stamps (the same subset as the retrieval
recipe's)."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def loaders(s: Settings) -> dict[str, DataLoader]:
    """Loaders of the stamps' standardised frozen features with their category labels:
    batches {"image": (B, 1280), "text": (B, 384), "label": (B,)}. "train" shuffles in
    batches of ``s.batch_size``; "val", "test" and "probe" (the training stamps again, in
    order, for fitting fresh probes) come as one batch each."""
    split = stamp_split(s.stamp_limit, config.SPLIT_SEED, s.image_size)
    return {"train": split.loader("train", s.batch_size, shuffle=True),
            "val": split.loader("val"), "test": split.loader("test"),
            "probe": split.loader("train")}


class SharedSpace(nn.Module):
    """Image and caption projections into one space, a shared category head, and a
    modality discriminator behind a gradient reversal of strength ``adversarial`` (λ).

    The training loss is the category cross-entropy of both modalities plus the
    discriminator's cross-entropy. The discriminator always minimises its term; the
    reversal hands the projections −λ times its gradient, so they maximise it. With
    λ = 0 the discriminator only watches: it measures the modality gap during training
    without changing the projections.
    """

    def __init__(self, num_classes: int, dim: int = 128, adversarial: float = 0.0,
                 dropout: float = 0.2, hidden: int = 64):
        super().__init__()
        self.project = nn.ModuleDict({
            "image": nn.Sequential(nn.Dropout(dropout), nn.Linear(EFFICIENTNET_DIM, dim)),
            "text": nn.Sequential(nn.Dropout(dropout), nn.Linear(TEXT_DIM, dim))})
        self.head = nn.Linear(dim, num_classes)
        self.adversarial = adversarial
        self.discriminator = ModalityDiscriminator(dim, 2, hidden=hidden, strength=adversarial)

    def embed(self, batch) -> dict:
        """{"image": (N, dim), "text": (N, dim)} from batch["image"] (N, 1280) and
        batch["text"] (N, 384)."""
        return {m: self.project[m](batch[m]) for m in ("image", "text")}

    def forward(self, batch):
        """((logits (2N, C) for images then captions, discriminator loss), targets (2N,))."""
        z = self.embed(batch)
        logits = self.head(torch.cat([z["image"], z["text"]]))
        extra = self.discriminator.loss([z["image"], z["text"]])[0]
        return (logits, extra), torch.cat([batch["label"], batch["label"]])


def model(s: Settings, data: dict | None = None, strength: float = 0.0,
          num_classes: int | None = None) -> SharedSpace:
    """A :class:`SharedSpace` over ``num_classes`` categories (None: every stamp category)
    with reversal strength λ = ``strength``, initialised from ``s.seed`` (the global random
    state is left as it was). ``data`` (what :func:`loaders` returns) is not needed."""
    if num_classes is None:
        num_classes = len(load_stamps().categories())
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return SharedSpace(num_classes, s.dim, strength, s.dropout, s.discriminator_hidden)


def train(model: SharedSpace, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train ``model`` on the training stamps' categories (and the discriminator on their
    modality); the epoch with the best validation category accuracy (pictures and captions
    together) is kept. Load-or-train through a checkpoint per λ."""
    strength = model.adversarial
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, forward=lambda m, b: m(b), seed=s.seed,
               checkpoint=checkpoint(f"adversarial-alignment-{strength:g}", s),
               progress=progress, desc=f"shared space λ={strength:g}")


def modality_probes(train: dict, test: dict, hidden: int = 64, seed: int = 0) -> dict:
    """Accuracy of fresh probes that tell picture from caption embeddings.

    ``train`` and ``test`` map "image" and "text" to embeddings (N, D) of different
    stamps. A logistic regression and an MLP with one hidden layer of ``hidden`` units
    (seeded with ``seed``) are fitted on ``train`` and scored on ``test``; chance is 50 %.
    Returns {"linear probe": accuracy, "MLP probe": accuracy}.
    """
    def stack(z):
        x = np.concatenate([np.asarray(z["image"]), np.asarray(z["text"])])
        return x, np.r_[np.zeros(len(z["image"])), np.ones(len(z["text"]))]

    (x_tr, y_tr), (x_te, y_te) = stack(train), stack(test)
    probes = {"linear probe": LogisticRegression(max_iter=5000),
              "MLP probe": MLPClassifier((hidden,), max_iter=1000, random_state=seed)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {name: accuracy(p.fit(x_tr, y_tr).predict(x_te), y_te)
                for name, p in probes.items()}


def _readouts(model: SharedSpace, batch: dict):
    """:func:`mmcourse.training.train.embed`'s ``fn``: each modality's embedding (B, dim), category
    logits (B, C) and discriminator logits (B, 2); and the labels (B,)."""
    z = model.embed(batch)
    out = {}
    for m in ("image", "text"):
        out.update({m: z[m], f"{m} category": model.head(z[m]),
                    f"{m} modality": model.discriminator(z[m])})
    return out, batch["label"]


def evaluate(model: SharedSpace, loaders: dict[str, DataLoader]) -> dict:
    """On the test stamps: category accuracy from the picture and from the caption
    embedding through the shared head, the accuracy of the model's own discriminator,
    and of fresh probes fitted on the training stamps' embeddings
    (:func:`modality_probes`, the MLP of the discriminator's width). The model runs on its
    own device."""
    test, labels = embed(model, loaders["test"], _readouts)
    train, _ = embed(model, loaders["probe"], _readouts)
    report = {f"{m} category accuracy": accuracy(test[f"{m} category"], labels)
              for m in ("image", "text")}
    own = torch.cat([test["image modality"], test["text modality"]])
    truth = torch.cat([torch.zeros(len(labels)), torch.ones(len(labels))]).long()
    report["own discriminator accuracy"] = accuracy(own, truth)
    hidden = model.discriminator.net[0].out_features
    report.update(modality_probes({m: train[m] for m in ("image", "text")},
                                  {m: test[m] for m in ("image", "text")}, hidden))
    return report


def sweep(loaders: dict[str, DataLoader], s: Settings, progress: bool = False
          ) -> tuple[pd.DataFrame, dict]:
    """Train and :func:`evaluate` a :class:`SharedSpace` per λ in ``s.strengths``; return
    (table indexed by λ with the :func:`evaluate` columns, {λ: model})."""
    num_classes = int(loaders["train"].dataset.labels.max()) + 1
    rows, models = {}, {}
    for strength in s.strengths:
        models[strength] = model(s, strength=strength, num_classes=num_classes)
        train(models[strength], loaders, s, progress)
        rows[strength] = evaluate(models[strength], loaders)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "λ"
    return table, models


def whitened_probe(loaders: dict[str, DataLoader], dim: int = 32, seed: int = 0) -> dict:
    """:func:`modality_probes` on the frozen features after whitening each modality
    separately: PCA to ``dim`` components with unit variance, fitted on the training
    stamps ("probe") and applied to the test stamps. Both modalities then have the same
    mean (0) and covariance (identity), so whatever the probes still find lies in higher
    moments of the distributions, beyond any per-modality linear map."""
    train, test = loaders["probe"].dataset.features, loaders["test"].dataset.features
    whitened_train, whitened_test = {}, {}
    for m in ("image", "text"):
        pca = PCA(dim, whiten=True, random_state=seed).fit(train[m])
        whitened_train[m], whitened_test[m] = pca.transform(train[m]), pca.transform(test[m])
    return modality_probes(whitened_train, whitened_test, seed=seed)


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: loaders, then a model per λ trained and evaluated, and the
    whitened probe → :class:`Outcome` with one metric per (λ, column)."""
    s = s or settings()
    data = loaders(s)
    table, _ = sweep(data, s, progress)
    metrics = {f"λ={strength:g} {column}": float(value)
               for strength, row in table.iterrows() for column, value in row.items()}
    metrics.update({f"whitened {name}": value
                    for name, value in whitened_probe(data, s.whiten_dim, s.seed).items()})
    return Outcome("adversarial-alignment", metrics, details={"sweep": table})
