"""Evaluation metrics, in one place for every chapter.

Classification metrics accept class scores (N, C) or predicted labels (N,), as torch
tensors or NumPy arrays, and are computed by scikit-learn; retrieval recall@k, which
scikit-learn does not have, is computed here.
"""
from __future__ import annotations

import numpy as np
import torch
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, confusion_matrix as sk_confusion, f1_score
from torch import Tensor


def mean_sd(values) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0: the spread of these runs, not an estimate
    for others) of scores over seeds or folds."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def labels_of(scores) -> np.ndarray:
    """Predicted labels (N,) from scores (N, C) (their argmax) or from labels (N,)."""
    array = scores.detach().cpu().numpy() if isinstance(scores, Tensor) else np.asarray(scores)
    return array.argmax(-1) if array.ndim == 2 else array


def accuracy(scores, targets) -> float:
    """Share of samples whose predicted label (see :func:`labels_of`) equals ``targets`` (N,).

    Two torch tensors are compared where they are (a training step on a GPU copies back
    one number, not the batch); anything else goes through scikit-learn.
    """
    if isinstance(scores, Tensor) and isinstance(targets, Tensor):
        predicted = scores.argmax(-1) if scores.ndim == 2 else scores
        return float((predicted == targets.to(predicted.device)).float().mean())

    return float(accuracy_score(labels_of(targets), labels_of(scores)))


def macro_f1(scores, targets, num_classes: int | None = None) -> float:
    """The unweighted mean over classes of F1 = 2·precision·recall / (precision + recall).

    ``num_classes`` fixes the classes averaged over (0..num_classes−1), so a class that is
    never predicted nor present still counts, with F1 = 0; None uses the classes seen.
    """
    classes = None if num_classes is None else list(range(num_classes))
    return float(f1_score(labels_of(targets), labels_of(scores), labels=classes,
                          average="macro", zero_division=0))


def confusion_matrix(scores, targets, num_classes: int) -> np.ndarray:
    """Counts int64 (num_classes, num_classes): row = true class, column = predicted class."""
    return sk_confusion(labels_of(targets), labels_of(scores), labels=list(range(num_classes)))


def classification_scores(scores, targets, num_classes: int | None = None) -> dict:
    """``{"accuracy", "macro-F1"}`` of predictions against ``targets``."""
    return {"accuracy": accuracy(scores, targets),
            "macro-F1": macro_f1(scores, targets, num_classes)}


def recall_at_k(queries: Tensor, keys: Tensor, ks=(1, 5, 10)) -> dict:
    """Retrieval recall@k: the share of queries whose own key (same row index) ranks in
    the top k by cosine similarity.

    ``queries`` (N, D) and ``keys`` (N, D) are paired row by row. Returns {k: recall}.
    Chance level is :func:`chance_recall`.
    """
    q = torch.nn.functional.normalize(torch.as_tensor(queries).float(), dim=-1)
    k_ = torch.nn.functional.normalize(torch.as_tensor(keys).float(), dim=-1)
    sims = q @ k_.T
    own = sims.diag().unsqueeze(1)
    rank = (sims > own).sum(dim=1)  # 0 = best
    return {k: float((rank < k).float().mean()) for k in ks}


def chance_recall(k: int, n: int) -> float:
    """Recall@k of a random ranking of ``n`` candidates: k / n, at most 1."""
    return min(1.0, k / n)


def _reference_streams(hypotheses, references) -> list[list[str]]:
    """sacrebleu's reference layout from one reference (str) per hypothesis."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references "
                         f"(one reference per hypothesis)")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    return [[str(r) for r in references]]


def bleu(hypotheses, references, lowercase: bool = True) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenisation) on sacrebleu's 0-100 scale.

    ``hypotheses`` and ``references`` are strings, one reference per hypothesis.
    BLEU = BP · exp(mean over n = 1..4 of log p_n), where p_n is the corpus's clipped
    n-gram precision and BP = min(1, exp(1 - r/c)) the brevity penalty (r, c: reference
    and hypothesis lengths in tokens).
    """
    refs = _reference_streams(hypotheses, references)
    return float(BLEU(lowercase=lowercase).corpus_score(list(hypotheses), refs).score)


def chrf(hypotheses, references, lowercase: bool = True) -> float:
    """Corpus chrF (sacrebleu: character 6-grams, β = 2) on sacrebleu's 0-100 scale.

    ``hypotheses`` and ``references`` are strings, one reference per hypothesis; with
    ``lowercase`` both are lower-cased first.
    """
    refs = _reference_streams(hypotheses, references)
    return float(CHRF(lowercase=lowercase).corpus_score(list(hypotheses), refs).score)


# --- speech recognition: edit distance, character and word error rates (chapter 08) ---

def edit_distance(reference, hypothesis) -> int:
    """Levenshtein distance between two sequences (strings, lists of tokens or ids): the
    fewest substitutions, deletions and insertions that turn ``reference`` into
    ``hypothesis``.

    Dynamic programming over one row: D[i][j] = min(D[i−1][j] + 1, D[i][j−1] + 1,
    D[i−1][j−1] + [r_i ≠ h_j]), with D[i][0] = i and D[0][j] = j.
    """
    reference, hypothesis = list(reference), list(hypothesis)
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def error_rate(references, hypotheses) -> float:
    """Corpus error rate: the summed edit distances over the summed reference lengths
    (sequences of tokens, paired in order). It can exceed 1 when a hypothesis inserts
    more than the references hold."""
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are empty")
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses)) / total


def cer(references, hypotheses) -> float:
    """Character error rate of transcripts (strings): :func:`error_rate` over characters,
    spaces included."""
    return error_rate([list(r) for r in references], [list(h) for h in hypotheses])


def wer(references, hypotheses) -> float:
    """Word error rate of transcripts (strings): :func:`error_rate` over space-separated
    words."""
    return error_rate([r.split() for r in references], [h.split() for h in hypotheses])
