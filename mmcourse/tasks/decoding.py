"""Decoding a sequence model: greedy search and beam search over a step function.

Both searches are generic: the model is seen only through a **step function**

    ``step(tokens, state) -> (log_probs, new_state)``

where ``tokens`` is a ``LongTensor`` (K,) holding the last token of each of K partial
sequences (hypotheses), ``log_probs`` (K, V) their next-token log-probabilities, and
``state`` anything the model carries from step to step: a tensor, or a tuple/list of
tensors (nested, ``None`` allowed), each with K as its first dimension. The searches
reorder the state with ``index_select`` along that dimension when hypotheses are kept,
dropped or copied. :meth:`mmcourse.nn.seq2seq.AttentionDecoder.stepper` builds such a step
function from a decoder and its memory.

A sequence's score is the sum of the log-probabilities of its tokens, ``<eos>``
included; a sequence that reaches ``max_len`` tokens without ``<eos>`` stops there.
The returned token lists hold neither ``<bos>`` nor ``<eos>``.
"""
from __future__ import annotations

from typing import Callable

import torch

StepFn = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]


def select_state(state, index: torch.Tensor):
    """Rows ``index`` (a ``LongTensor`` (K',)) of every tensor in ``state`` (first
    dimension K → K'); tuples, lists and ``None`` keep their structure."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, (tuple, list)):
        return type(state)(select_state(s, index) for s in state)
    raise TypeError(f"a decoder state must be a tensor or a tuple/list of tensors, "
                    f"not {type(state).__name__}")


def _first_dim(state) -> int | None:
    if isinstance(state, torch.Tensor):
        return state.shape[0]
    if isinstance(state, (tuple, list)):
        for s in state:
            k = _first_dim(s)
            if k is not None:
                return k
    return None


def _device(state) -> torch.device:
    if isinstance(state, torch.Tensor):
        return state.device
    if isinstance(state, (tuple, list)):
        for s in state:
            if _first_dim(s) is not None:
                return _device(s)
    return torch.device("cpu")


def length_normalized(score: float, length: int, alpha: float) -> float:
    """The ranking score ``score / lp`` with the length penalty
    ``lp = ((5 + length) / 6) ** alpha`` (Wu et al., 2016); ``alpha = 0`` ranks by the
    plain sum of log-probabilities, larger ``alpha`` favours longer sequences.
    ``length`` counts the generated tokens, ``<eos>`` included."""
    return score / ((5.0 + length) / 6.0) ** alpha if alpha else score


@torch.no_grad()
def greedy_decode(step: StepFn, state, bos: int, eos: int, max_len: int
                  ) -> list[tuple[list[int], float]]:
    """Greedy search for a batch: at each step every sequence takes its most likely token.

    ``state`` holds the initial state of B independent sequences (first dimension B).
    Returns B pairs ``(tokens, score)`` in the batch's order: the generated ids (without
    ``<bos>``/``<eos>``, at most ``max_len``) and their total log-probability.
    """
    batch = _first_dim(state)
    if batch is None:
        raise ValueError("greedy_decode needs a state with a first (batch) dimension")
    device = _device(state)
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)
    scores = torch.zeros(batch, dtype=torch.float64, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        best, tokens = log_probs.max(-1)
        scores += torch.where(done, 0.0, best.double())
        for b in (~done).nonzero().flatten().tolist():
            if int(tokens[b]) != eos:
                out[b].append(int(tokens[b]))
        done |= tokens == eos
        if bool(done.all()):
            break
    return [(seq, float(s)) for seq, s in zip(out, scores.tolist())]


def _best_extensions(total: torch.Tensor, vocab: int, beam_size: int, eos: int):
    """Among the extensions ``total`` (K · V scores, hypothesis-major), best first: those
    that write ``eos`` as (hypothesis, score) pairs, and the ``beam_size`` best others
    as their hypotheses, tokens and scores. Up to 2 · ``beam_size`` candidates are
    read, enough to fill the beam even if ``beam_size`` of them end."""
    order = total.topk(min(total.numel(), 2 * beam_size)).indices
    ended, rows, tokens, scores = [], [], [], []
    for flat in order.tolist():
        row, tok = divmod(flat, vocab)
        score = float(total[flat])
        if tok == eos:
            ended.append((row, score))
        elif len(rows) < beam_size:
            rows.append(row)
            tokens.append(tok)
            scores.append(score)
    return ended, rows, tokens, scores


@torch.no_grad()
def beam_search(step: StepFn, state, bos: int, eos: int, beam_size: int, max_len: int,
                length_penalty: float = 0.0) -> list[tuple[list[int], float]]:
    """Beam search for ONE input: keep the ``beam_size`` best partial sequences per step.

    ``state`` is the initial state of that input (first dimension 1). At each step every
    kept hypothesis is extended by every token; among the extensions, those ending in
    ``<eos>`` are finished, and the ``beam_size`` best of the others are kept. A
    hypothesis of ``max_len`` tokens is finished as it stands. The search stops when no
    hypothesis is left or, with ``length_penalty = 0``, as soon as ``beam_size`` finished
    sequences score at least as well as every hypothesis still open (log-probabilities are
    ≤ 0, so an open one can only lose by growing).

    Returns up to ``beam_size`` pairs ``(tokens, score)``, best first: tokens without
    ``<bos>``/``<eos>``, score the total log-probability; the ranking uses
    :func:`length_normalized` with ``alpha = length_penalty``. With ``beam_size`` at least
    the number of possible prefixes the search is exhaustive and returns the exact best.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, not {beam_size}")
    if _first_dim(state) != 1:
        raise ValueError(f"beam_search decodes one input: the state's first dimension must "
                         f"be 1, not {_first_dim(state)}")
    device = _device(state)
    tokens = torch.full((1,), bos, dtype=torch.long, device=device)
    scores = torch.zeros(1, dtype=torch.float64, device=device)
    prefixes: list[list[int]] = [[]]
    finished: list[tuple[list[int], float, float]] = []  # (tokens, score, ranking score)

    def finish(seq: list[int], score: float, length: int) -> None:
        finished.append((seq, score, length_normalized(score, length, length_penalty)))

    for t in range(max_len):
        log_probs, state = step(tokens, state)
        vocab = log_probs.shape[-1]
        total = (scores[:, None] + log_probs.double()).flatten()
        ended, keep_rows, keep_tokens, keep_scores = _best_extensions(total, vocab, beam_size,
                                                                      eos)
        for row, score in ended:
            finish(prefixes[row], score, t + 1)
        if not keep_rows:
            break
        prefixes = [prefixes[r] + [tok] for r, tok in zip(keep_rows, keep_tokens)]
        rows = torch.tensor(keep_rows, dtype=torch.long, device=device)
        state = select_state(state, rows)
        tokens = torch.tensor(keep_tokens, dtype=torch.long, device=device)
        scores = torch.tensor(keep_scores, dtype=torch.float64, device=device)
        if t + 1 == max_len:
            for seq, score in zip(prefixes, keep_scores):
                finish(seq, score, max_len)
            break
        if not length_penalty and len(finished) >= beam_size:
            worst_kept = sorted(f[2] for f in finished)[-beam_size]
            if worst_kept >= max(keep_scores):
                break
    finished.sort(key=lambda f: -f[2])
    return [(seq, score) for seq, score, _ in finished[:beam_size]]
