"""Connectionist temporal classification (CTC): the loss and its decoders, from the equations.

A recogniser emits, at each of T frames, log-probabilities over C symbols: the labels
and one extra *blank* (index ``blank``, 0 by default). A *path* is one symbol per frame;
the collapsing map B removes repeats, then blanks (``"aa-ab-"`` → ``"aab"``), so many
paths spell the same labelling. CTC's likelihood of a labelling l sums over every path
that collapses to it:

    p(l | x) = Σ_{π : B(π) = l} Π_t y_t(π_t).

The sum is computed by the forward (α) recursion (:func:`ctc_forward`) over the extended
labelling l' = (blank, l_1, blank, l_2, …, l_S, blank) of length 2S + 1, in log space.
:func:`ctc_loss` is its negative log, the same quantity as
``torch.nn.functional.ctc_loss``. Decoding: :func:`greedy_decode` collapses the best
path; :func:`prefix_beam_search` keeps the ``beam`` most probable labellings (each summed
over its paths), optionally adding a character language model's score
(:class:`CharNgramLM`).
"""
from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

NEG = -1e30
"""Log of "impossible": finite, so that log-sum-exp of impossible states keeps finite
gradients (exactly 0) instead of NaN."""


def collapse(path: Iterable[int], blank: int = 0) -> list[int]:
    """The collapsing map B: merge runs of a repeated symbol, then drop blanks.

    ``[1, 1, 0, 1, 2, 2, 0]`` → ``[1, 1, 2]`` (the blank between the two 1s keeps them
    apart).
    """
    out, previous = [], None
    for symbol in path:
        symbol = int(symbol)
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out


def extend_with_blanks(targets: Tensor, blank: int = 0) -> Tensor:
    """Labels (N, S) → extended labels l' (N, 2S + 1): a blank before, between and after."""
    n, s = targets.shape
    extended = torch.full((n, 2 * s + 1), blank, dtype=torch.long, device=targets.device)
    extended[:, 1::2] = targets
    return extended


def ctc_forward(log_probs: Tensor, targets: Tensor, input_lengths: Tensor,
                target_lengths: Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """The forward recursion of CTC in log space, for a batch.

    Args:
        log_probs: (T, N, C) log-probabilities per frame (log-softmax outputs), frames
            first as in ``torch.nn.functional.ctc_loss``.
        targets: (N, S) label indices, right-padded (padding is ignored); no blanks.
        input_lengths: (N,) valid frames T_n of each sample, 1 ≤ T_n ≤ T.
        target_lengths: (N,) labels S_n of each sample, 0 ≤ S_n ≤ S.

    With y_t(k) = exp(``log_probs[t, n, k]``) and the extended labelling l'
    (:func:`extend_with_blanks`),

        α_0(0) = y_0(blank),  α_0(1) = y_0(l'_1),  α_0(s) = 0 for s ≥ 2;
        α_t(s) = (α_{t−1}(s) + α_{t−1}(s−1) + [l'_s ≠ blank and l'_s ≠ l'_{s−2}] α_{t−1}(s−2))
                 · y_t(l'_s),

    and p(l | x) = α_{T_n−1}(2S_n) + α_{T_n−1}(2S_n − 1): a path ends on the last label or
    on the blank after it. The skip over s − 2 is allowed only onto a label that differs
    from the one two places back; between two equal labels the path must visit a blank.
    Frames at or after T_n leave α unchanged.

    Returns ``(log p(l | x)`` (N,), ``log α`` (T, N, 2S + 1)); log p is ``NEG``-like
    (about −1e30) when no path of T_n frames can spell the labelling.
    """
    t_max, n, _ = log_probs.shape
    device = log_probs.device
    extended = extend_with_blanks(targets.to(device).long(), blank)
    width = extended.shape[1]
    # y_t(l'_s) for every frame and extended position: (T, N, 2S + 1)
    emit = log_probs.gather(2, extended.unsqueeze(0).expand(t_max, n, width))
    positions = torch.arange(width, device=device)
    valid = positions[None] < (2 * target_lengths.to(device)[:, None] + 1)
    # may a path jump from s − 2 to s? Only onto a label that differs from l'_{s−2}.
    skip = torch.zeros(n, width, dtype=torch.bool, device=device)
    skip[:, 2:] = (extended[:, 2:] != blank) & (extended[:, 2:] != extended[:, :-2])
    neg = log_probs.new_full((n, width), NEG)

    alpha = neg.clone()
    alpha[:, :2] = emit[0, :, :2]
    alpha = torch.where(valid, alpha, neg)
    alphas = [alpha]
    lengths = input_lengths.to(device)
    for t in range(1, t_max):
        stay = alpha
        step = torch.cat([neg[:, :1], alpha[:, :-1]], dim=1)
        jump = torch.where(skip, torch.cat([neg[:, :2], alpha[:, :-2]], dim=1), neg)
        new = torch.logsumexp(torch.stack([stay, step, jump]), dim=0) + emit[t]
        new = torch.where(valid, new, neg)
        alpha = torch.where((t < lengths)[:, None], new, alpha)
        alphas.append(alpha)
    last = 2 * target_lengths.to(device).long()
    rows = torch.arange(n, device=device)
    end_blank = alpha[rows, last]
    end_label = torch.where(last > 0, alpha[rows, (last - 1).clamp(min=0)], neg[:, 0])
    log_likelihood = torch.logaddexp(end_blank, end_label)
    return log_likelihood, torch.stack(alphas)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Tensor,
             target_lengths: Tensor, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False) -> Tensor:
    """CTC loss −log p(l | x) from :func:`ctc_forward`, with the arguments and reductions
    of ``torch.nn.functional.ctc_loss``.

    ``reduction``: ``"none"`` → (N,); ``"sum"``; ``"mean"`` — each loss divided by its
    target length (at least 1), then averaged over the batch. An impossible labelling
    (too few frames) has loss inf, or 0 with ``zero_infinity``.
    """
    log_likelihood, _ = ctc_forward(log_probs, targets, input_lengths, target_lengths, blank)
    loss = -log_likelihood
    impossible = log_likelihood < NEG / 2
    loss = torch.where(impossible, torch.zeros_like(loss) if zero_infinity
                       else torch.full_like(loss, math.inf), loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return (loss / target_lengths.to(loss.device).clamp(min=1).to(loss.dtype)).mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', not {reduction!r}")


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None,
                  blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the most probable symbol of every frame, collapsed
    (:func:`collapse`).

    ``log_probs`` (N, T, C), batch first; ``lengths`` (N,) valid frames (default T).
    Returns one list of label indices per sample. The result is the labelling of the
    single most probable *path*, which need not be the most probable labelling.
    """
    best = log_probs.argmax(-1).cpu()
    if lengths is None:
        lengths = torch.full((best.shape[0],), best.shape[1])
    return [collapse(row[:int(n)].tolist(), blank) for row, n in zip(best, lengths.cpu())]


class CharNgramLM:
    """A character n-gram language model with Witten–Bell interpolation.

    Trained on strings (:meth:`fit`); a history is padded on the left with ``"^"`` and a
    string ends with ``"$"``. With c(h, w) the count of w after the n − 1 characters h,
    c(h) = Σ_w c(h, w) and u(h) the number of different w seen after h,

        P(w | h) = (c(h, w) + u(h) · P(w | h⁻)) / (c(h) + u(h)),

    where h⁻ drops the oldest character of h; below the unigram sits the uniform
    distribution over the alphabet (every character seen, plus ``"$"``). An unseen
    history falls back to h⁻. Every conditional distribution sums to 1 over the alphabet.
    """

    START, END = "^", "$"

    def __init__(self, order: int = 3):
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.order = order
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.alphabet: list[str] = []
        self._totals: dict[str, tuple[int, int]] = {}

    def fit(self, texts: Iterable[str]) -> CharNgramLM:
        """Count every n-gram of order 1..``order`` of ``texts``; return self."""
        chars = set()
        for text in texts:
            chars.update(text)
            padded = self.START * (self.order - 1) + text + self.END
            for i in range(self.order - 1, len(padded)):
                for k in range(self.order):
                    self.counts[padded[i - k:i]][padded[i]] += 1
        self.alphabet = sorted(chars) + [self.END]
        self._totals = {h: (sum(c.values()), len(c)) for h, c in self.counts.items()}
        return self

    def prob(self, char: str, history: str) -> float:
        """P(``char`` | the last ``order`` − 1 characters of ``history``, ``"^"``-padded)."""
        history = (self.START * (self.order - 1) + history)[len(history):]
        p = 1.0 / len(self.alphabet)
        for k in range(self.order):
            h = history[len(history) - k:] if k else ""
            seen = self.counts.get(h)
            if not seen:
                continue
            total, types = self._totals[h]
            p = (seen.get(char, 0) + types * p) / (total + types)
        return p

    def log_prob(self, char: str, history: str) -> float:
        """Natural log of :meth:`prob`."""
        return math.log(self.prob(char, history))

    def score(self, text: str) -> float:
        """log P(text + ``"$"``) under the model, summed over its characters."""
        return sum(self.log_prob(c, text[:i]) for i, c in enumerate(text + self.END))


def _logsumexp(*xs: float) -> float:
    top = max(xs)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(x - top) for x in xs))


def _extend(beams: dict, frame, candidates: list[int], blank: int, lm, lm_weight: float,
            insertion_bonus: float) -> dict[tuple, list[float]]:
    """One frame of :func:`prefix_beam_search`: every prefix of ``beams`` (prefix →
    (log p_b, log p_nb, bonus so far)) extended by each of ``candidates`` with the frame's
    log-probabilities ``frame`` (C,); prefixes reached in several ways add their
    probabilities. An extension prefix + c adds ``insertion_bonus`` and, with an ``lm``,
    ``lm_weight · lm(prefix, c)`` to the bonus."""
    nxt: dict[tuple, list[float]] = {}

    def add(prefix, pb, pnb, bonus):
        if prefix in nxt:
            old = nxt[prefix]
            nxt[prefix] = [_logsumexp(old[0], pb), _logsumexp(old[1], pnb), old[2]]
        else:
            nxt[prefix] = [pb, pnb, bonus]

    for prefix, (pb, pnb, bonus) in beams.items():
        total = _logsumexp(pb, pnb)
        for c in candidates:
            p = frame[c]
            if c == blank:
                add(prefix, total + p, -math.inf, bonus)
                continue
            last = prefix[-1] if prefix else None
            extension = prefix + (c,)
            extra = bonus + insertion_bonus
            if lm is not None:
                extra += lm_weight * lm(prefix, c)
            if c == last:
                add(prefix, -math.inf, pnb + p, bonus)      # the repeat merges
                add(extension, -math.inf, pb + p, extra)    # needs a blank between
            else:
                add(extension, -math.inf, total + p, extra)
    return nxt


def prefix_beam_search(log_probs: Tensor, beam: int = 8, blank: int = 0,
                       lm: Callable[[tuple, int], float] | None = None,
                       lm_weight: float = 0.5, insertion_bonus: float = 0.0,
                       prune: float = -12.0) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over one utterance.

    ``log_probs`` (T, C) for one sample (valid frames only). Each prefix (a labelling so
    far) keeps two log-probabilities: p_b, of its paths ending in a blank, and p_nb, of
    those ending in its last label. At frame t, for every kept prefix:

    * a blank, or a repeat of the last label, keeps the prefix (the repeat merges);
    * any other label c extends it to prefix + c; a c equal to the last label extends
      only the paths that ended in a blank (otherwise it would have merged).

    Prefixes reached in several ways add their probabilities; the ``beam`` best by
    p_b + p_nb + LM survive each frame. At each frame only the ``beam`` most probable
    symbols are tried, and of those only the ones with log-probability at least
    ``prune`` (the blank always). With ``lm(prefix, c)`` → log P_LM(c | prefix), every
    extension adds ``lm_weight · lm(prefix, c) + insertion_bonus`` to the prefix's score
    (shallow fusion); ``lm(prefix, None)`` is the end-of-text term, added once at the end.

    Returns up to ``beam`` ``(labels, score)`` pairs, best first; the score is the log
    probability of the labelling (summed over its paths) plus the LM terms.
    """
    lp = log_probs.detach().double().cpu().numpy()
    # prefix → (log p_b, log p_nb, LM + bonus score accumulated)
    beams = {(): (0.0, -math.inf, 0.0)}
    for frame in lp:
        top = np.argsort(frame)[::-1][:beam]
        candidates = [int(c) for c in top if frame[c] >= prune and c != blank] + [blank]
        nxt = _extend(beams, frame, candidates, blank, lm, lm_weight, insertion_bonus)
        ranked = sorted(((prefix, v) for prefix, v in nxt.items()
                         if max(v[0], v[1]) > -math.inf),
                        key=lambda kv: -(_logsumexp(kv[1][0], kv[1][1]) + kv[1][2]))
        beams = {prefix: tuple(v) for prefix, v in ranked[:beam]}

    def final(prefix, v):
        end = lm_weight * lm(prefix, None) if lm is not None else 0.0
        return _logsumexp(v[0], v[1]) + v[2] + end

    results = sorted(((list(p), final(p, v)) for p, v in beams.items()), key=lambda r: -r[1])
    return results


def lm_scorer(lm: CharNgramLM, symbols: Sequence[str]) -> Callable[[tuple, int], float]:
    """Adapt a :class:`CharNgramLM` to :func:`prefix_beam_search`'s ``lm(prefix, c)``:
    ``symbols[i]`` is the character of label index i; c = None asks for the end of text."""
    @functools.lru_cache(maxsize=200_000)
    def score(prefix: tuple, c: int | None) -> float:
        history = "".join(symbols[i] for i in prefix[-(lm.order - 1):]) if lm.order > 1 else ""
        return lm.log_prob(lm.END if c is None else symbols[c], history)

    return score


def beam_decode(log_probs: Tensor, lengths: Tensor | None = None, beam: int = 8,
                blank: int = 0, **options) -> list[list[int]]:
    """:func:`prefix_beam_search` on every sample of ``log_probs`` (N, T, C) with
    ``lengths`` (N,) valid frames; the best labelling of each. ``options`` go to the
    search (``lm``, ``lm_weight``, ``insertion_bonus``, ``prune``)."""
    if lengths is None:
        lengths = torch.full((log_probs.shape[0],), log_probs.shape[1])
    return [prefix_beam_search(lp[:int(n)], beam, blank, **options)[0][0]
            for lp, n in zip(log_probs, lengths.cpu())]
