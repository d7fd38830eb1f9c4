"""Chapter 04's recipe: every fusion method trained on AV-digits and compared.

Each model has the same three small encoders — a CNN for the 8×8 image, a GRU over the
words of the text, a CRNN over the MFCC frames — and differs only in its fusion
(:mod:`mmcourse.fusion`). Unimodal baselines use one encoder and a linear head. Every
configuration is trained for several seeds; the table reports test accuracy as mean ±
standard deviation. The training split's last 10 % (stratified) is the validation set that
picks each run's best epoch; the test split is only used for the final numbers.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from .. import config
from ..data import AVDigitsDataset, load_av_digits, stratified_split
from ..models import build_model, drop_modality
from ..preprocessing import Tokenizer, collate_multimodal
from ..train import evaluate, fit
from . import Outcome
from .avdigits import MODALITIES, FUSION_OPTIONS, av_loaders, model_config  # noqa: F401

def modality_dropout_forward(p: float):
    """A ``fit`` forward that, in training, marks one random modality missing for a share
    ``p`` of each batch (never all of a sample's modalities), so the model learns to cope
    with a missing input."""

    def forward(model, batch):
        if model.training and p > 0 and len(model.encoders) > 1:
            n = batch["label"].shape[0]
            which = torch.randint(len(model.encoders), (n,))
            drop = torch.rand(n) < p
            for i, m in enumerate(model.encoders):
                present = ~(drop & (which == i))
                batch = dict(batch, **{f"{m}_present": present.to(batch["label"].device)})
        return model(batch), batch["label"]

    return forward


def train_one(name: str, fusion: str, modalities, loaders, vocab_size: int, seed: int,
              epochs: int, progress: bool = True, modality_dropout: float = 0.15):
    """Train one configuration with one seed; return (model, FitResult, test accuracy)."""
    torch.manual_seed(seed)
    model = build_model(model_config(fusion, modalities, vocab_size))
    result = fit(model, loaders["train"], loaders["val"], epochs=epochs, lr=3e-3,
                 weight_decay=1e-4, seed=seed, progress=progress, desc=name,
                 forward=modality_dropout_forward(modality_dropout),
                 checkpoint=config.checkpoint_path(f"avdigits-{name}-seed{seed}"))
    return model, result, evaluate(model, loaders["test"])["accuracy"]


def configurations() -> dict:
    """Name → (fusion, modalities): three unimodal baselines, then every fusion."""
    runs = {f"{m} only": ("concat", (m,)) for m in MODALITIES}
    runs.update({f: (f, MODALITIES) for f in FUSION_OPTIONS})
    return runs


def compare(seeds=None, epochs: int | None = None, progress: bool = True):
    """Train every configuration for every seed.

    Returns (table, models): ``table`` is a DataFrame indexed by configuration with
    per-seed test accuracies, ``mean`` and ``std``; ``models[name]`` is the seed-0 model.
    """
    seeds = list(seeds if seeds is not None else config.pick(range(3), range(1)))
    epochs = epochs or config.pick(12, 2)
    loaders, tokenizer = av_loaders(train_limit=config.pick(None, 600))
    rows, models = {}, {}
    for name, (fusion, modalities) in configurations().items():
        scores = []
        for seed in seeds:
            model, _, acc = train_one(name, fusion, modalities, loaders, len(tokenizer.vocab),
                                      seed, epochs, progress)
            scores.append(acc)
            if seed == seeds[0]:
                models[name] = model
        rows[name] = {**{f"seed {s}": a for s, a in zip(seeds, scores)},
                      "mean": float(np.mean(scores)), "std": float(np.std(scores))}
    return pd.DataFrame.from_dict(rows, orient="index"), models, loaders


@torch.no_grad()
def embed_all(model, loader) -> tuple[dict, torch.Tensor]:
    """Every modality's embedding over a loader ({modality: (N, D_m)}) and the labels (N,)."""
    model.eval()
    parts, labels = [], []
    for batch in loader:
        parts.append(model.embed(batch))
        labels.append(batch["label"])
    return {m: torch.cat([p[m] for p in parts]) for m in parts[0]}, torch.cat(labels)


@torch.no_grad()
def accuracy_with_weights(model, embeddings: dict, labels: torch.Tensor, weights: dict) -> float:
    """Accuracy of a weighted-sum model when its weights are replaced at test time:
    F = Σ_m w_m z_m / Σ_m w_m with the model's own projections z_m and head."""
    fusion = model.fusion
    total = sum(weights.values())
    if total <= 0:
        return float("nan")
    fused = sum(weights[m] / total * fusion.project[m](embeddings[m]) for m in fusion.modalities)
    return float((model.head(fused).argmax(-1) == labels).float().mean())


@torch.no_grad()
def gate_weights(model, loader, corrupt=None) -> torch.Tensor:
    """Per-sample fusion weights (N, M) of a weighted-sum or gated model over a loader;
    ``corrupt(batch)`` (optional) changes each batch first."""
    model.eval()
    out = []
    for batch in loader:
        batch = corrupt(batch) if corrupt is not None else batch
        mask = torch.ones(batch["label"].shape[0], len(model.fusion.modalities), dtype=torch.bool)
        out.append(model.fusion.sample_weights(model.embed(batch), mask))
    return torch.cat(out)


def corrupt_batch(batch: dict, modality: str, how: str, noise: float = 1.0) -> dict:
    """A copy of ``batch`` with ``modality`` dropped (marked missing) or noised.

    Noise is Gaussian with ``noise`` times the standard deviation of the input itself
    (per MFCC coefficient for audio, over all pixels for images), so ``noise=1`` is a
    signal-to-noise ratio of about 0 dB; noised text has every word replaced by ``<unk>``.
    """
    if how == "dropped":
        return drop_modality(batch, modality)
    if modality == "text":
        return dict(batch, tokens=torch.where(batch["tokens"] > 0, 1, 0))
    x = batch[modality]
    if modality == "audio":
        valid = x[batch["audio_mask"]]  # (frames, coefficients)
        scale = valid.std(dim=0) * batch["audio_mask"].unsqueeze(-1)
    else:
        scale = x.std()
    return dict(batch, **{modality: x + noise * scale * torch.randn_like(x)})


@torch.no_grad()
def robustness(models: dict, loader, noise: float = 1.0) -> pd.DataFrame:
    """Test accuracy of each multimodal model when one modality is dropped for every
    sample or noised (see :func:`corrupt_batch`)."""
    torch.manual_seed(0)
    rows = {}
    for name, model in models.items():
        if len(model.encoders) < len(MODALITIES):
            continue
        model.eval()
        row = {"clean": evaluate(model, loader)["accuracy"]}
        for modality in MODALITIES:
            for how in ("dropped", "noised"):
                batches = [corrupt_batch(b, modality, how, noise) for b in loader]
                row[f"{modality} {how}"] = evaluate(model, batches)["accuracy"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def run(progress: bool = False) -> Outcome:
    """The whole comparison; headline: best unimodal and best fusion accuracy."""
    table, models, loaders = compare(progress=progress)
    unimodal = table.loc[[f"{m} only" for m in MODALITIES]]
    fused = table.drop(unimodal.index)
    best_uni, best_fused = unimodal["mean"].idxmax(), fused["mean"].idxmax()
    return Outcome("avdigits-fusion", {
        "best single modality": f"{best_uni} {unimodal.loc[best_uni, 'mean']:.4f} ± "
                                f"{unimodal.loc[best_uni, 'std']:.4f}",
        "best fusion": f"{best_fused} {fused.loc[best_fused, 'mean']:.4f} ± "
                       f"{fused.loc[best_fused, 'std']:.4f}",
        "table": "\n" + table.round(4).to_string()}, details={"table": table})


RUNS = {"avdigits-fusion": run}
