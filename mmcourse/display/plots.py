"""Figures the chapters share: image grids, waveforms, spectrograms, MFCCs, histories."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def use_course_style(dpi: int = 100) -> None:
    """Matplotlib defaults for the chapters: figures at ``dpi`` (at least 100) whose
    smallest text — tick labels, legends — is 8 pt."""
    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "font.size": 9,
                         "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
                         "ytick.labelsize": 8, "legend.fontsize": 8,
                         "figure.titlesize": 10, "image.interpolation": "nearest"})


def _as_numpy_image(image) -> np.ndarray:
    """A PIL image, uint8/float array (H, W[, C]) or tensor (C, H, W) → array (H, W[, C])."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0) if image.ndim == 3 else image
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def show_images(images: Sequence, captions: Sequence[str] | None = None, ncols: int = 6,
                size: float = 2.0, cmap: str = "gray", wrap: int = 22):
    """Show images in a grid with optional captions under each.

    ``images``: PIL images, arrays (H, W) or (H, W, 3), or tensors (C, H, W) in [0, 1].
    Captions are wrapped at ``wrap`` characters. Returns the matplotlib Figure.
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 1.25 * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(_as_numpy_image(image), cmap=cmap)
        if captions is not None:
            ax.set_title("\n".join(textwrap.wrap(str(captions[i]), wrap)), fontsize=8)
    fig.tight_layout()
    return fig


def plot_waveform_and_mel(waveform: torch.Tensor, sample_rate: int, mel_db: torch.Tensor,
                          hop_length: int, title: str = ""):
    """Waveform (1, T) or (T,) above its log-mel spectrogram (n_mels, frames) in dB.

    Both share a time axis in seconds. Returns the Figure.
    """
    wave = waveform.reshape(-1).cpu().numpy()
    t = np.arange(len(wave)) / sample_rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    top.plot(t, wave, linewidth=0.6)
    top.set_ylabel("amplitude")
    top.set_title(title)
    frames = mel_db.shape[-1]
    extent = (0, frames * hop_length / sample_rate, 0, mel_db.shape[0])
    im = bottom.imshow(mel_db.cpu().numpy(), origin="lower", aspect="auto", extent=extent,
                       cmap="magma")
    bottom.set_ylabel("mel bin")
    bottom.set_xlabel("time (s)")
    fig.colorbar(im, ax=[top, bottom], label="dB", shrink=0.6)
    return fig


def standardize_rows(values: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each row of ``values`` (n, T) shifted to mean 0 and scaled to standard deviation 1
    over its T entries, so one row with a large range cannot flatten the others."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.std(axis=1, keepdims=True)
    return (values - values.mean(axis=1, keepdims=True)) / np.maximum(spread, eps)


def plot_mfcc(mfcc, title: str = "", ax=None, per_coefficient: bool = True):
    """Heat map of MFCC frames: array or tensor (T, n_mfcc) with time on the x axis.

    Coefficient 0 (the frame's log energy) spans a far larger range than the others; with
    ``per_coefficient`` each coefficient is standardised over the clip before drawing,
    so every row shows how it changes in time."""
    mfcc = mfcc.detach().cpu().numpy() if isinstance(mfcc, torch.Tensor) else np.asarray(mfcc)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.5))
    shown = standardize_rows(mfcc.T) if per_coefficient else mfcc.T
    im = ax.imshow(shown, origin="lower", aspect="auto", cmap="coolwarm")
    ax.set_xlabel("frame")
    ax.set_ylabel("coefficient")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, label="standardised per coefficient" if per_coefficient
                       else "value")
    return ax


def plot_history(history: dict, keys: Sequence[str] | None = None, title: str = ""):
    """Plot per-epoch curves from ``history`` (name → list of values). Returns the Figure."""
    keys = list(history) if keys is None else list(keys)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_confusion(counts, labels: Sequence[str], title: str = "", ax=None):
    """A confusion matrix (K, K) of counts (row = true class, column = predicted), each
    row shaded by its share of the true class and labelled with its count. Returns the
    Figure."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(labels) + 2, 0.55 * len(labels) + 1.5))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(counts.shape):
        if counts[i, j]:
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure
