"""Nearest neighbours by cosine similarity: the model that learns nothing.

Retrieval baselines (the transcript of the nearest training clip, the caption of the
nearest training picture, the translation of the nearest training sentence) all ask one
question: which key row is the most similar to each query row?
"""
from __future__ import annotations

import numpy as np


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray, k: int = 1,
                       exclude: np.ndarray | None = None, unit: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` keys (K, D) most cosine-similar to each query (Q, D), most similar first
    (ties: the lower key index first). ``exclude`` (bool (Q, K)) marks pairs never
    returned, such as a row and itself when queries and keys are the same rows. With
    ``unit`` the rows are of length 1 already and their dot products are used as they
    are. Returns key indices int64 (Q, k) and their cosine similarities float32 (Q, k)."""
    if not unit:
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
        keys = keys / np.linalg.norm(keys, axis=1, keepdims=True).clip(1e-12)
    sims = queries @ keys.T
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(sims, order, 1).astype(np.float32)


def nearest_neighbour(queries: np.ndarray, keys: np.ndarray,
                      exclude: np.ndarray | None = None, unit: bool = False) -> np.ndarray:
    """Index of each query's most cosine-similar key: int64 (Q,) (see
    :func:`nearest_neighbours`)."""
    return nearest_neighbours(queries, keys, 1, exclude, unit)[0][:, 0]
