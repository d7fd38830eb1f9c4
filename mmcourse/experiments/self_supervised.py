"""Chapter 05's self-supervised pretraining on AV-digits.

The image encoder and the audio encoder of chapter 04 (:mod:`.avdigits`) get a
projection head each and are pretrained with symmetric InfoNCE on the unlabelled
training pairs (handwritten digit, spoken clip): the pairing is the only supervision.
Then a classifier (both encoders, concatenation, a linear head) is fine-tuned with a few
labels per digit, starting from the pretrained encoders and from scratch, on the same
labelled pairs, and both are scored on the test split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch.utils.data import DataLoader, Subset

from mmcourse.data import AVDigitsDataset, load_av_digits
from mmcourse.nn.crossmodal import ContrastiveModel, contrastive_forward, symmetric_cross_entropy
from mmcourse.nn.models import build_encoder, build_model
from mmcourse.training.metrics import accuracy, mean_sd
from mmcourse.training.train import FitResult, embed, fit, predict

from . import Outcome, checkpoint, mode_settings
from .avdigits import collate, model_config, tokenizer

MODALITIES = ("image", "audio")
"""The paired modalities (AV-digits' text is not used here)."""


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    projection_dim: int = 64
    """Size of the space the projection heads map both encoders to."""
    initial_temperature: float = 0.1
    """τ at the start of pretraining; it is learned."""
    pretrain_batch_size: int = 128
    """Pairs per pretraining batch (incomplete last batches are dropped)."""
    pretrain_epochs: int = 30
    pretrain_lr: float = 2e-3
    """Peak learning rate of the one-cycle schedule (AdamW), pretraining."""
    labels_per_class: tuple = (5, 20)
    """The label budgets of the comparison: labelled training pairs per digit."""
    label_seeds: tuple = (0, 1, 2)
    """One draw of labelled pairs (and one fine-tuning run per start) per seed."""
    finetune_batch_size: int = 32
    finetune_epochs: int = 60
    finetune_lr: float = 2e-3
    """Peak learning rate of the one-cycle schedule (AdamW), fine-tuning."""
    eval_batch_size: int = 256
    seed: int = 0
    """Seeds the initial weights and the pretraining batch order."""


FAST = dict(pretrain_epochs=10, label_seeds=(0,), finetune_epochs=30)
"""What fast mode changes: fewer pretraining and fine-tuning epochs, one draw of labels."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def loaders(s: Settings) -> dict[str, DataLoader]:
    """AV-digits loaders of dict batches ({"image": (B, 1, 8, 8), "audio": (B, T, 13),
    "audio_lengths": (B,), "tokens"…, "label": (B,)}): "pretrain" — all 2,400 training
    pairs, shuffled, in batches of ``s.pretrain_batch_size`` (the labels are never read);
    "test" — the test split."""
    av = load_av_digits(seed=0)
    words = tokenizer(av)
    return {"pretrain": DataLoader(AVDigitsDataset(av.train, words), s.pretrain_batch_size,
                                   shuffle=True, collate_fn=collate, drop_last=True),
            "test": DataLoader(AVDigitsDataset(av.test, words), s.eval_batch_size,
                               collate_fn=collate)}


def model(s: Settings, data: dict | None = None) -> ContrastiveModel:
    """Chapter 04's image and audio encoders (untrained) with ``s.projection_dim``-d
    projection heads and a learned temperature: a :class:`ContrastiveModel` over
    ("image", "audio"), initialised from ``s.seed`` (the global random state is left as
    it was). ``model(batch)`` gives similarity logits (B, B), row = image, column = clip.
    ``data`` (what :func:`loaders` returns) is not needed."""
    specs = model_config("concat", MODALITIES)["encoders"]
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return ContrastiveModel({m: build_encoder(spec) for m, spec in specs.items()},
                                dim=s.projection_dim,
                                initial_temperature=s.initial_temperature)


def train(model: ContrastiveModel, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Pretrain ``model`` with symmetric InfoNCE on ``loaders["pretrain"]``; there is no
    validation set, so the last epoch is kept when it has the best in-batch retrieval
    accuracy. Load-or-train through a checkpoint."""
    return fit(model, loaders["pretrain"], epochs=s.pretrain_epochs, lr=s.pretrain_lr,
               forward=contrastive_forward, loss_fn=symmetric_cross_entropy, seed=s.seed,
               checkpoint=checkpoint("self-supervised", s), progress=progress,
               desc="pretraining")


def _encoder_outputs(model: ContrastiveModel, batch: dict):
    """:func:`mmcourse.training.train.embed`'s ``fn``: each encoder's output before the projection
    head, {modality: (B, D)}, and the labels (B,)."""
    return ({m: encoder(*(batch[k] for k in model.inputs[m]))
             for m, encoder in model.encoders.items()}, batch["label"])


def encoder_embeddings(model: ContrastiveModel, loader: DataLoader) -> tuple[dict, np.ndarray]:
    """The encoders' outputs (before projection) over ``loader``, run on the model's
    device: ({"image": float32 (N, 64), "audio": float32 (N, 64)} NumPy arrays, digit
    labels int64 (N,))."""
    z, labels = embed(model, loader, _encoder_outputs)
    return {m: v.numpy() for m, v in z.items()}, labels.numpy()


def neighbour_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """How well embeddings ``x`` (N, D) predict ``labels`` (N,) without training a
    classifier: a k-nearest-neighbour vote (Euclidean) fitted on the even rows and scored
    on the odd rows."""
    knn = KNeighborsClassifier(k).fit(x[::2], labels[::2])
    return accuracy(knn.predict(x[1::2]), labels[1::2])


def evaluate(model: ContrastiveModel, loaders: dict[str, DataLoader]) -> dict:
    """{"<modality> 10-NN accuracy"}: :func:`neighbour_accuracy` of each encoder's test
    embeddings (chance 10 %)."""
    z, digits = encoder_embeddings(model, loaders["test"])
    return {f"{m} 10-NN accuracy": neighbour_accuracy(x, digits) for m, x in z.items()}


def few_label_loader(loaders: dict[str, DataLoader], per_class: int, seed: int,
                     batch_size: int) -> DataLoader:
    """``per_class`` labelled training pairs of each digit, drawn with
    ``numpy.random.default_rng(seed)``, shuffled by a generator seeded with ``seed``."""
    pool = loaders["pretrain"].dataset
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(pool.labels == d), per_class,
                                        replace=False) for d in range(10)])
    return DataLoader(Subset(pool, chosen.tolist()), batch_size, shuffle=True,
                      collate_fn=collate, generator=torch.Generator().manual_seed(seed))


def few_label_comparison(pretrained: ContrastiveModel, loaders: dict[str, DataLoader],
                         s: Settings, progress: bool = False) -> pd.DataFrame:
    """Fine-tune image + audio classifiers (chapter 04's encoders, concatenation, linear
    head) on each budget of ``s.labels_per_class`` labelled pairs per digit, starting from
    the ``pretrained`` encoders and from scratch, every weight trainable.

    For each of ``s.label_seeds`` the labelled pairs are drawn once
    (:func:`few_label_loader`) and both starts get the same ones. There is no validation
    set (there are too few labels to spare), so the epoch with the lowest training loss is
    kept. Returns a table indexed by (labels per class, start) with each seed's test
    accuracy, the mean and the standard deviation.
    """
    rows = {}
    for per_class in s.labels_per_class:
        for start in ("pretrained", "scratch"):
            scores = []
            for seed in s.label_seeds:
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    net = build_model(model_config("concat", MODALITIES))
                if start == "pretrained":
                    for m in MODALITIES:
                        net.encoders[m].load_state_dict(pretrained.encoders[m].state_dict())
                fit(net, few_label_loader(loaders, per_class, seed, s.finetune_batch_size),
                    epochs=s.finetune_epochs, lr=s.finetune_lr, seed=seed,
                    monitor="train_loss", progress=progress,
                    desc=f"{start} {per_class}/class",
                    checkpoint=checkpoint(f"self-supervised-{per_class}-{start}-{seed}", s))
                scores.append(accuracy(*predict(net, loaders["test"])))
            rows[(per_class, start)] = {**{f"seed {seed}": a
                                           for seed, a in zip(s.label_seeds, scores)},
                                        **dict(zip(("mean", "std"), mean_sd(scores)))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["labels per class", "start"]
    return table


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole recipe: loaders, model, pretraining, the encoders' 10-NN accuracy, and
    the few-label comparison → :class:`Outcome`."""
    s = s or settings()
    data, net = loaders(s), model(s)
    result = train(net, data, s, progress=progress)
    table = few_label_comparison(net, data, s, progress=progress)
    metrics = {**evaluate(net, data),
               **{f"{per_class} labels/class, {start}": row["mean"]
                  for (per_class, start), row in table.iterrows()}}
    return Outcome("self-supervised", metrics,
                   details={"few labels": table,
                            "in-batch accuracy": result.history["train_accuracy"][-1],
                            "first epoch loss": result.history["train_loss"][0]})
