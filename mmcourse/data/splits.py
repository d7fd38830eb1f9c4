"""Seeded, stratified splits shared by every data set of the course."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold


def stratified_split(labels: Sequence, fractions: Sequence[float], seed: int = 0
                     ) -> list[np.ndarray]:
    """Split indices ``0..N-1`` into parts whose class mix follows ``labels``.

    Args:
        labels: N hashable class labels.
        fractions: the share of each part, e.g. ``(0.7, 0.15, 0.15)``; they must sum to 1.
        seed: seeds the shuffle within each class.

    Returns:
        One sorted int64 index array per part. Within each class the indices are shuffled
        with ``numpy.random.default_rng(seed)`` (classes in sorted order) and cut at the
        rounded cumulative fractions, so every class of ``k`` items gives about
        ``k * fraction`` to each part and the first part always gets at least one item.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or (fractions < 0).any() or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for cls in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        cuts = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        cuts[0] = max(cuts[0], 1)
        cuts[-1] = len(idx)
        start = 0
        for part, stop in zip(parts, cuts):
            stop = max(stop, start)
            part.extend(idx[start:stop].tolist())
            start = stop
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def split_stamps(stamps, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict:
    """Split stamps into ``{"train", "val", "test"}`` lists, stratified by category."""
    parts = stratified_split([s.category for s in stamps], fractions, seed)
    return {name: [stamps[i] for i in idx] for name, idx in zip(("train", "val", "test"), parts)}


PROTOCOL_FOLDS = 5
"""Folds of the stamps protocol (see :func:`protocol_stamps`)."""
PROTOCOL_MIN_PICTURES = 15
"""A category takes part in the stamps protocol when it has at least this many PNGs."""


def protocol_stamps(stamps) -> list:
    """The stamps of the course's category protocol: stamps with a PNG picture (not only an
    SVG) in the top-level categories that have at least :data:`PROTOCOL_MIN_PICTURES` of
    them, sorted by picture path. With every stamp installed: 738 stamps, 10 categories.
    (Pre-flipped ``_mirror``/``_flip`` copies are never stamps; see
    :func:`mmcourse.data.load_stamps`.)"""
    pictures = sorted((s for s in stamps if not s.is_svg), key=lambda s: str(s.image_path))
    counts: dict[str, int] = {}
    for s in pictures:
        counts[s.category] = counts.get(s.category, 0) + 1
    return [s for s in pictures if counts[s.category] >= PROTOCOL_MIN_PICTURES]


def protocol_folds(labels: Sequence, folds: int = PROTOCOL_FOLDS) -> list[tuple]:
    """scikit-learn's ``StratifiedKFold(folds)`` without shuffling over ``labels`` (N):
    a list of (train indices, test indices) int arrays. Unshuffled folds follow the sorted
    paths, so a test fold can hold sub-folders that its training folds never saw."""
    labels = np.asarray(labels)
    return [(train, test) for train, test in
            StratifiedKFold(folds).split(np.zeros(len(labels)), labels)]
