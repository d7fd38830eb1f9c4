"""Chapter 05's contrastive alignment of stamp pictures and their English captions.

Both pretrained towers stay frozen (:mod:`.stamp_features`); what is trained is a linear
projection per modality into a shared space and a temperature, with symmetric InfoNCE
(the CLIP objective). The model is scored by retrieval on held-out stamps: for every
picture, is its own caption among the ``k`` most similar captions (recall@k), and the
other way round, against the chance level of a random ranking.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from mmcourse.nn.crossmodal import ContrastiveModel, contrastive_forward, symmetric_cross_entropy
from mmcourse.nn.encoders import EFFICIENTNET_DIM, Precomputed
from mmcourse.runtime import config
from mmcourse.training.metrics import chance_recall, recall_at_k
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
    dim: int = 128
    """Size of the shared space."""
    initial_temperature: float = 0.1
    """τ at the start; it is learned."""
    batch_size: int = 128
    """Training pairs per batch: each pair's N − 1 negatives are the rest of the batch."""
    epochs: int = 40
    lr: float = 1e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    seed: int = 0
    """Seeds the initial weights and the batch order (the stamp subset and the split use
    :data:`mmcourse.runtime.config.SPLIT_SEED`)."""


FAST = dict(stamp_limit=480)
"""What fast mode changes: half of the stamps (training is cheap; the frozen features of
the pictures are not)."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def loaders(s: Settings) -> dict[str, DataLoader]:
    """Train, validation and test loaders of the stamps' standardised frozen features
    (:func:`~.stamp_features.stamp_split`): batches {"image": (B, 1280), "text": (B, 384),
    "label": (B,)}. Only the training loader shuffles, in batches of ``s.batch_size``;
    validation and test come as one batch each, so that every stamp competes with all
    the others of its part."""
    split = stamp_split(s.stamp_limit, config.SPLIT_SEED, s.image_size)
    return {"train": split.loader("train", s.batch_size, shuffle=True),
            "val": split.loader("val"), "test": split.loader("test")}


def model(s: Settings, data: dict | None = None) -> ContrastiveModel:
    """Linear projections of the frozen image (1280) and caption (384) features into a
    shared ``s.dim``-d space, with a learned temperature starting at
    ``s.initial_temperature``; initialised from ``s.seed`` (the global random state is left
    as it was). ``model(batch)`` gives similarity logits (B, B), row = picture,
    column = caption. ``data`` (what :func:`loaders` returns) is not needed."""
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return ContrastiveModel({"image": Precomputed(EFFICIENTNET_DIM),
                                 "text": Precomputed(TEXT_DIM)}, dim=s.dim,
                                inputs={"image": ("image",), "text": ("text",)},
                                initial_temperature=s.initial_temperature)


def train(model: ContrastiveModel, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train the projections and the temperature with symmetric InfoNCE on
    ``loaders["train"]``. The validation "accuracy" is the image→caption recall@1 among
    all validation stamps; it picks the best epoch. Load-or-train through a checkpoint."""
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, forward=contrastive_forward,
               loss_fn=symmetric_cross_entropy, seed=s.seed,
               checkpoint=checkpoint("stamp-retrieval", s), progress=progress,
               desc="stamp-retrieval")


def similarity(model: ContrastiveModel, loader: DataLoader) -> torch.Tensor:
    """Cosine similarities float32 (N, N) on the CPU between the N pictures (rows) and
    the N captions (columns) of ``loader``'s stamps; the diagonal holds the true pairs.
    The model runs on its own device."""
    z, _ = embed(model, loader)
    return z["image"] @ z["text"].T


def retrieval(model: ContrastiveModel, loader: DataLoader, ks=(1, 5, 10)) -> dict:
    """Recall@k both ways among the N stamps of ``loader`` (picture → its caption and
    caption → its picture), the chance level min(1, k / N) and N ("stamps")."""
    z, _ = embed(model, loader)
    n = len(z["image"])
    image_to_text = recall_at_k(z["image"], z["text"], ks)
    text_to_image = recall_at_k(z["text"], z["image"], ks)
    return {**{f"image→caption R@{k}": v for k, v in image_to_text.items()},
            **{f"caption→image R@{k}": v for k, v in text_to_image.items()},
            **{f"chance R@{k}": chance_recall(k, n) for k in ks}, "stamps": n}


def evaluate(model: ContrastiveModel, loaders: dict[str, DataLoader]) -> dict:
    """:func:`retrieval` on the test stamps."""
    return retrieval(model, loaders["test"])


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: loaders, model, training, test retrieval → :class:`Outcome`."""
    s = s or settings()
    data, net = loaders(s), model(s)
    result = train(net, data, s, progress=progress)
    return Outcome("stamp-retrieval", evaluate(net, data),
                   details={"best epoch": result.best_epoch, "val R@1": result.best_score,
                            "temperature": float(net.loss.temperature.detach()),
                            "first epoch loss": result.history["train_loss"][0]})
