"""Evaluation metrics shared by the chapters."""
from __future__ import annotations

import torch
from torch import Tensor


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Share of rows of ``logits`` (N, C) whose argmax equals ``targets`` (N,)."""
    return float((logits.argmax(dim=-1) == targets).float().mean())


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)


def macro_f1(predictions: Tensor, targets: Tensor, num_classes: int) -> float:
    """The unweighted mean over classes of F1 = 2·precision·recall / (precision + recall)."""
    cm = confusion_matrix(predictions, targets, num_classes).double()
    tp = cm.diag()
    precision = tp / cm.sum(0).clamp(min=1)
    recall = tp / cm.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return float(f1.mean())


def recall_at_k(queries: Tensor, keys: Tensor, ks=(1, 5, 10)) -> dict:
    """Retrieval recall@k: the share of queries whose own key (same row index) ranks in
    the top k by cosine similarity.

    ``queries`` (N, D) and ``keys`` (N, D) are paired row by row. Returns {k: recall}.
    Chance level is k / N.
    """
    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    k_ = torch.nn.functional.normalize(keys.float(), dim=-1)
    sims = q @ k_.T
    own = sims.diag().unsqueeze(1)
    rank = (sims > own).sum(dim=1)  # 0 = best
    return {k: float((rank < k).float().mean()) for k in ks}
