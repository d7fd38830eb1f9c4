"""Chapter 04's recipe: every fusion method trained on AV-digits and compared.

Each model has the same three small encoders — a CNN for the 8×8 image, a GRU over the
words of the text, a CRNN over the MFCC frames (:mod:`mmcourse.experiments.avdigits`) —
and differs only in its fusion (:mod:`mmcourse.nn.fusion`). Unimodal baselines use one
encoder and a linear head. Every configuration is trained once per seed; the table
reports test accuracy as mean ± standard deviation over the seeds. The training split's
last 10 % (stratified) is the validation set that picks each run's best epoch; the test
split is only used for the final numbers. Fast mode keeps all the training data but
trains one seed for half the epochs, at a higher learning rate.

The helpers that run a trained model (:func:`embed_all`, :func:`accuracy_with_weights`,
:func:`gate_weights`, :func:`robustness`) move every input to the model's device and
return CPU results.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from mmcourse.nn.fusion import presence_mask
from mmcourse.nn.models import build_model
from mmcourse.training.metrics import accuracy, mean_sd
from mmcourse.training.train import FitResult, default_forward, embed, fit, model_device, predict

from . import Outcome, checkpoint, mode_settings
from .avdigits import FUSION_OPTIONS, MODALITIES, av_loaders, model_config, tokenizer


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """One training run per seed and configuration (model initialisation, batch order and
    modality dropout); the table reports mean ± std over them."""
    epochs: int = 12
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-4
    """AdamW's decoupled weight decay."""
    batch_size: int = 64
    """Training mini-batch size (evaluation uses batches of 256)."""
    train_limit: int | None = None
    """Training samples kept, stratified (None: all 2,160 of the training part)."""
    modality_dropout: float = 0.15
    """Share of the training samples of each batch that lose one random modality."""
    noise: float = 1.0
    """Strength of the test-time Gaussian noise in :func:`corrupt_batch`, in standard
    deviations of the input (1: about 0 dB signal-to-noise ratio)."""


FAST = dict(seeds=(0,), epochs=6, lr=6e-3)
"""What fast mode changes: one seed for six epochs instead of twelve, on all the training
data, with twice the peak learning rate so the shorter schedule still converges."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


def configurations() -> dict:
    """Name → (fusion, modalities): three unimodal baselines, then every fusion."""
    runs = {f"{m} only": ("concat", (m,)) for m in MODALITIES}
    runs.update({f: (f, MODALITIES) for f in FUSION_OPTIONS})
    return runs


def loaders(s: Settings) -> dict[str, DataLoader]:
    """AV-digits train, validation and test DataLoaders of dict batches
    (:func:`~mmcourse.experiments.avdigits.av_loaders`): ``s.train_limit`` training
    samples in batches of ``s.batch_size``, shuffled by PyTorch's global generator, which
    :func:`mmcourse.training.train.fit` reseeds every epoch."""
    return av_loaders(seed=None, batch_size=s.batch_size, train_limit=s.train_limit)[0]


def model(s: Settings, data: dict | None = None, fusion: str = "concat", modalities=MODALITIES,
          vocab_size: int | None = None, seed: int | None = None) -> torch.nn.Module:
    """A fresh AV-digits model with ``fusion`` over ``modalities``
    (:func:`~mmcourse.experiments.avdigits.model_config`), initialised from ``seed``
    (default: the first of ``s.seeds``); batch dict → logits (N, 10).

    ``vocab_size`` defaults to the AV-digits tokenizer's. The global random state is
    left as it was. ``data`` (what :func:`loaders` returns) is not needed.
    """
    if vocab_size is None:
        vocab_size = len(tokenizer().vocab)
    with torch.random.fork_rng():
        torch.manual_seed(s.seeds[0] if seed is None else seed)
        return build_model(model_config(fusion, modalities, vocab_size))


def modality_dropout_forward(p: float):
    """A ``fit`` forward that, in training, marks one random modality missing for a share
    ``p`` of each batch (never all of a sample's modalities), so the model learns to cope
    with a missing input. The masks (bool (B,) per modality) are drawn on the batch's
    device from the global generator."""

    def forward(model, batch):
        labels = batch["label"]
        if model.training and p > 0 and len(model.encoders) > 1:
            n, device = labels.shape[0], labels.device
            which = torch.randint(len(model.encoders), (n,), device=device)
            drop = torch.rand(n, device=device) < p
            batch = dict(batch, **{f"{m}_present": ~(drop & (which == i))
                                   for i, m in enumerate(model.encoders)})
        return model(batch), labels

    return forward


def train(model: torch.nn.Module, loaders: dict[str, DataLoader], s: Settings,
          name: str = "concat", seed: int | None = None, progress: bool = True) -> FitResult:
    """Train ``model`` (configuration ``name``) on ``loaders["train"]`` with one seed
    (default: the first of ``s.seeds``), validating on ``loaders["val"]``.

    AdamW with a one-cycle schedule for ``s.epochs`` epochs, with modality dropout
    (:func:`modality_dropout_forward`); the best validation epoch's weights are kept.
    Load-or-train: a finished run's checkpoint is loaded instead of training again.
    """
    seed = s.seeds[0] if seed is None else seed
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, seed=seed, progress=progress, desc=name,
               forward=modality_dropout_forward(s.modality_dropout),
               checkpoint=checkpoint(f"avdigits-{name}-seed{seed}", s))


def evaluate(model: torch.nn.Module, loaders: dict[str, DataLoader]) -> dict:
    """``{"test accuracy": float in [0, 1]}`` of ``model`` on ``loaders["test"]``."""
    logits, labels = predict(model, loaders["test"])
    return {"test accuracy": accuracy(logits, labels)}


def compare(s: Settings, data: dict[str, DataLoader] | None = None,
            progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Train and test every configuration (:func:`configurations`) for every seed.

    Returns ``(table, models)``: ``table`` is a DataFrame indexed by configuration with
    per-seed test accuracies, ``mean`` and ``std``; ``models[name]`` is the model of the
    first seed.
    """
    data = loaders(s) if data is None else data
    vocab_size = len(tokenizer().vocab)
    rows, models = {}, {}
    for name, (fusion, modalities) in configurations().items():
        scores = []
        for seed in s.seeds:
            net = model(s, fusion=fusion, modalities=modalities, vocab_size=vocab_size, seed=seed)
            train(net, data, s, name, seed, progress)
            scores.append(evaluate(net, data)["test accuracy"])
            models.setdefault(name, net)
        rows[name] = {**{f"seed {seed}": a for seed, a in zip(s.seeds, scores)},
                      **dict(zip(("mean", "std"), mean_sd(scores)))}
    return pd.DataFrame.from_dict(rows, orient="index"), models


def embed_all(model: torch.nn.Module, loader) -> tuple[dict, Tensor]:
    """Every modality's encoder embedding over a loader, ``{modality: (N, D_m)}``, and
    the labels (N,), on the CPU."""
    return embed(model, loader)


@torch.no_grad()
def accuracy_with_weights(model: torch.nn.Module, embeddings: dict, labels: Tensor,
                          weights: dict) -> float:
    """Test accuracy of a weighted-sum model when its weights are replaced at test time.

    F = Σ_m w_m z_m / Σ_m w_m with the model's own projections z_m = P_m f_m + c_m of the
    encoder ``embeddings`` ({modality: (N, D_m)}, e.g. from :func:`embed_all`) and its
    own head; ``labels`` (N,). NaN when every weight is 0.
    """
    total = sum(weights.values())
    if total <= 0:
        return float("nan")
    model.eval()
    device, fusion = model_device(model), model.fusion
    fused = sum(weights[m] / total * fusion.project[m](embeddings[m].to(device))
                for m in fusion.modalities)
    return accuracy(model.head(fused).cpu(), labels)


def gate_weights(model: torch.nn.Module, loader, corrupt=None) -> Tensor:
    """Per-sample fusion weights (N, M) of a weighted-sum or gated model over a loader,
    in the order of ``model.fusion.modalities``, on the CPU; ``corrupt(batch)``
    (optional, e.g. :func:`corrupt_batch`) changes each batch first, on the model's
    device."""

    def weights(net, batch):
        batch = corrupt(batch) if corrupt is not None else batch
        parts = net.embed(batch)
        mask = presence_mask(parts, net.fusion.modalities, net.presence(batch) or None)
        return net.fusion.sample_weights(parts, mask), batch["label"]

    return embed(model, loader, weights)[0]


def corrupt_batch(batch: dict, modality: str, how: str, noise: float = 1.0) -> dict:
    """A copy of ``batch`` with ``modality`` dropped (marked missing) or noised, on the
    batch's device.

    Noise is Gaussian with ``noise`` times the standard deviation of the input itself
    (per MFCC coefficient over the valid frames for audio, over all pixels for images),
    so ``noise=1`` is a signal-to-noise ratio of about 0 dB; noised text has every word
    replaced by ``<unk>`` (id 1; padding stays 0).
    """
    labels = batch["label"]
    if how == "dropped":
        missing = torch.zeros(labels.shape[0], dtype=torch.bool, device=labels.device)
        return dict(batch, **{f"{modality}_present": missing})
    if how != "noised":
        raise ValueError(f"how must be 'dropped' or 'noised', not {how!r}")
    if modality == "text":
        return dict(batch, tokens=torch.where(batch["tokens"] > 0, 1, 0))
    x = batch[modality]
    if modality == "audio":
        valid = batch["audio_mask"].unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        count = valid.sum(dim=(0, 1))
        mean = (x * valid).sum(dim=(0, 1)) / count
        scale = (((x - mean) ** 2 * valid).sum(dim=(0, 1)) / (count - 1)).sqrt() * valid
    else:
        scale = x.std()
    return dict(batch, **{modality: x + noise * scale * torch.randn_like(x)})


CONDITIONS = ("clean",) + tuple(f"{m} {how}" for m in MODALITIES
                                for how in ("dropped", "noised"))
"""The test conditions of :func:`robustness`: clean, then each modality dropped or noised."""


def robustness(models: dict, loader, noise: float = 1.0) -> pd.DataFrame:
    """Test accuracy of each multimodal model (rows) under each of :data:`CONDITIONS`
    (columns): clean, or one modality dropped for every sample or noised (see
    :func:`corrupt_batch`). The noise is drawn from the global generator, seeded with 0
    here."""
    torch.manual_seed(0)
    rows = {}
    for name, net in models.items():
        if len(net.encoders) < len(MODALITIES):
            continue
        row = {}
        for condition in CONDITIONS:
            if condition == "clean":
                forward = default_forward
            else:
                modality, how = condition.split()

                def forward(m, batch, modality=modality, how=how):
                    return default_forward(m, corrupt_batch(batch, modality, how, noise))
            row[condition] = accuracy(*predict(net, loader, forward=forward))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """The whole comparison → :class:`Outcome` with each configuration's mean test
    accuracy over the seeds; ``details["table"]`` holds the per-seed table."""
    s = s or settings()
    table, _ = compare(s, progress=progress)
    return Outcome("avdigits-fusion",
                   {f"{name} test accuracy": float(row["mean"]) for name, row in table.iterrows()},
                   details={"table": table, "best fusion": table.drop(
                       [f"{m} only" for m in MODALITIES])["mean"].idxmax()})
