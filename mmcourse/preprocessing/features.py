"""Feature vectors: standardising each dimension with the training rows' statistics.

Frozen features (a pretrained encoder's outputs) and pooled statistics differ in scale
from one dimension to the next; a linear probe or a distance treats them alike once each
dimension has mean 0 and standard deviation 1 on the training rows. The statistics come
from the training rows only, so the test rows tell the model nothing.
"""
from __future__ import annotations

import numpy as np


def standardize(x: np.ndarray, train_idx) -> np.ndarray:
    """``x`` (N, D) minus the mean over the rows ``train_idx``, divided by their standard
    deviation (ddof 0), per dimension; a dimension constant there becomes 0 (its
    deviation is taken as 1): float32 (N, D)."""
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    return ((x - mean) / np.where(std > 0, std, 1)).astype(np.float32)
