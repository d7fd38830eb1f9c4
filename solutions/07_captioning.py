# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [raw]
# # ASSIGNMENT CONFIG
# name: 07_captioning
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/07_captioning.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/07_captioning.ipynb)
#
# # Exercise 07 · Image captioning
#
# Companion to `notebooks/07_captioning.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# You will write one step of additive attention, one step of beam search and BLEU's
# clipped n-gram counts and brevity penalty (checked against `sacrebleu`), then read the
# chapter's table.

# %%
# On Colab: install the course and its data first (elsewhere this cell does nothing).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "mmcourse[dev] @ git+https://github.com/mmcourse/mmcourse"], check=True)
    subprocess.run([sys.executable, "-m", "mmcourse", "install-data"], check=True)

# %%
# grader.check("…") runs a question's public tests and says in one line what failed.
from mmcourse.grading.feedback import Notebook
grader = Notebook("07_captioning.ipynb")

# %%
import math
from collections import Counter

import sacrebleu
import torch

from mmcourse.nn.seq2seq import AdditiveAttention

# %% [raw]
# # BEGIN QUESTION
# name: q1_attention
# points: 3

# %% [markdown]
# **Q1 · One attention step.** Write `additive_attention(query, keys, mask, W_q, W_k, b_k, v)`
# for a batch: `query` `(B, Q)`, `keys` `(B, M, K)`, `mask` `(B, M)` bool (True = a
# real row), `W_q` `(A, Q)`, `W_k` `(A, K)`, `b_k` `(A,)`, `v` `(A,)`. For every row `m`
# compute the energy `e_m = v · tanh(W_q q + W_k k_m + b_k)`, give masked rows the
# weight 0 and softmax the others, then return `(context, weights)`: `context` `(B, K)`
# is `Σ_m weights_m k_m` and `weights` `(B, M)`. Every row of `mask` has at least one
# True. Do not use `mmcourse.nn.seq2seq`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def additive_attention(query, keys, mask, W_q, W_k, b_k, v):
    # BEGIN SOLUTION
    energy = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T + b_k) @ v
    energy = energy.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(energy, dim=-1)
    context = (weights[..., None] * keys).sum(1)
    return context, weights
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_q = torch.tensor([[1.0, 0.0]])
_k = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
_m = torch.tensor([[True, True, False]])
_ctx, _w = additive_attention(_q, _k, _m, torch.eye(2), torch.eye(2), torch.zeros(2),
                              torch.ones(2))
_want = torch.softmax(torch.tensor([math.tanh(2.0), 2 * math.tanh(1.0)]), 0)
assert _w.shape == (1, 3) and _ctx.shape == (1, 2), (
    f"additive_attention(...) returned shapes {tuple(_ctx.shape)}, {tuple(_w.shape)}; "
    f"expected (1, 2) and (1, 3)")
assert torch.allclose(_w[0, :2], _want, atol=1e-6) and _w[0, 2] == 0, (
    f"additive_attention weights: expected {_want.tolist() + [0.0]}, got {_w[0].tolist()}")
assert torch.allclose(_ctx[0], _want @ _k[0, :2], atol=1e-6), (
    f"additive_attention context: expected {(_want @ _k[0, :2]).tolist()}, got {_ctx[0].tolist()}")

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_g = torch.Generator().manual_seed(hidden_seed(7))
for _b, _m_, _qd, _kd, _a in ((1, 1, 3, 2, 4), (4, 6, 5, 3, 7), (8, 20, 16, 12, 10)):
    _att = AdditiveAttention(_qd, _kd, _a).double()
    for _p in _att.parameters():
        torch.nn.init.normal_(_p, generator=_g)
    _q = torch.randn(_b, _qd, generator=_g, dtype=torch.float64)
    _k = torch.randn(_b, _m_, _kd, generator=_g, dtype=torch.float64)
    _mask = torch.rand(_b, _m_, generator=_g) < 0.7
    _mask[:, 0] = True
    _want_c, _want_w = _att(_q, _k, _mask)
    with forbidding("mmcourse.nn.seq2seq.AdditiveAttention.forward"):
        _got = additive_attention(_q, _k, _mask, _att.query.weight, _att.key.weight,
                                  _att.key.bias, _att.score.weight[0])
    assert_same(_got, (_want_c, _want_w), atol=1e-9, what="additive_attention(...)")
    assert torch.all(_got[1][~_mask] == 0)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_beam_step
# points: 3

# %% [markdown]
# **Q2 · One step of beam search.** `K` hypotheses have total log-probabilities
# `scores` `(K,)`, and the model gives each of them next-token log-probabilities
# `log_probs` `(K, V)`. Extending hypothesis `r` by token `w` gives the total
# `scores[r] + log_probs[r, w]`. Write `beam_step(scores, log_probs, beam_size)` that
# returns `(rows, tokens, totals)`, three tensors of length `beam_size`: the hypothesis
# (row) and token of the `beam_size` best extensions among all `K·V`, and their totals,
# best first. `rows` and `tokens` are integer tensors.

# %% [raw]
# # BEGIN SOLUTION

# %%
def beam_step(scores, log_probs, beam_size):
    # BEGIN SOLUTION
    total = (scores[:, None] + log_probs).flatten()
    best = total.topk(beam_size)
    vocab = log_probs.shape[1]
    return best.indices // vocab, best.indices % vocab, best.values
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_s = torch.tensor([-1.0, -0.5])
_lp = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
_r, _t, _v = beam_step(_s, _lp, 3)
_want = [(1, 2), (0, 0), (0, 1)]
assert list(zip(_r.tolist(), _t.tolist())) == _want, (
    f"beam_step(scores, log_probs, 3) gave (row, token) {list(zip(_r.tolist(), _t.tolist()))}, "
    f"expected {_want}")
assert _v.shape == (3,), f"beam_step totals: expected shape (3,), got {tuple(_v.shape)}"
assert torch.allclose(_v, torch.stack([_s[r] + _lp[r, t] for r, t in _want])), (
    f"beam_step totals: got {_v.tolist()}")

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(3))
for _k_, _vv, _beam in ((1, 5, 1), (1, 5, 3), (4, 9, 4), (6, 30, 10), (3, 2, 6)):
    _s = -torch.rand(_k_, generator=_g, dtype=torch.float64) * 5
    _lp = torch.log_softmax(torch.randn(_k_, _vv, generator=_g, dtype=torch.float64) * 2, -1)
    _r, _t, _v = beam_step(_s, _lp, _beam)
    _all = sorted(((float(_s[r] + _lp[r, t]), r, t) for r in range(_k_) for t in range(_vv)),
                  reverse=True)[:_beam]
    assert_same(_r.tolist(), [r for _, r, _ in _all], what="rows")
    assert_same(_t.tolist(), [t for _, _, t in _all], what="tokens")
    assert_same(_v, torch.tensor([x for x, _, _ in _all], dtype=torch.float64), what="totals")
    assert not _r.is_floating_point() and not _t.is_floating_point()

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_bleu
# points: 3

# %% [markdown]
# **Q3 · BLEU from its pieces.** Hypotheses and references are lists of token lists
# (one reference per hypothesis).
#
# 1. `clipped_matches(hyp, ref, n)` returns `(matches, total)` for one sentence pair:
#    `total` is the number of n-grams of `hyp`, `matches` the sum over the distinct
#    n-grams `g` of `hyp` of `min(count of g in hyp, count of g in ref)`.
# 2. `brevity_penalty(c, r)` for the total hypothesis length `c` and reference length
#    `r` (in tokens): 1 when `c > r`, else `exp(1 - r / c)` (and 0 when `c == 0`).
# 3. `corpus_bleu(hyps, refs)` on sacrebleu's 0-100 scale: sum matches and totals over
#    the corpus for n = 1..4, `p_n = matches_n / totals_n`, and return
#    `100 · BP · exp(mean_n log p_n)`; return 0.0 if some `p_n` is 0 (no smoothing).

# %% [raw]
# # BEGIN SOLUTION

# %%
def clipped_matches(hyp, ref, n):
    # BEGIN SOLUTION
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), sum(h.values())
    # END SOLUTION


def brevity_penalty(c, r):
    # BEGIN SOLUTION
    if c == 0:
        return 0.0
    return 1.0 if c > r else math.exp(1 - r / c)
    # END SOLUTION


def corpus_bleu(hyps, refs):
    # BEGIN SOLUTION
    logs = []
    for n in range(1, 5):
        m = t = 0
        for h, r in zip(hyps, refs):
            a, b = clipped_matches(h, r, n)
            m, t = m + a, t + b
        if m == 0:
            return 0.0
        logs.append(math.log(m / t))
    bp = brevity_penalty(sum(len(h) for h in hyps), sum(len(r) for r in refs))
    return 100 * bp * math.exp(sum(logs) / 4)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_h = "the the the cat".split()
_r = "the cat sat".split()
assert clipped_matches(_h, _r, 1) == (2, 4), (
    f"clipped_matches({_h}, {_r}, 1) returned {clipped_matches(_h, _r, 1)}, expected (2, 4)")
assert clipped_matches(_h, _r, 2) == (1, 3), (
    f"clipped_matches({_h}, {_r}, 2) returned {clipped_matches(_h, _r, 2)}, expected (1, 3)")
assert abs(brevity_penalty(8, 9) - math.exp(1 - 9 / 8)) < 1e-12 and brevity_penalty(10, 9) == 1, (
    f"brevity_penalty(8, 9) = {brevity_penalty(8, 9)}, expected {math.exp(1 - 9 / 8)}")
_hyps = ["the cat sat on the mat .", "a big dog runs on the grass"]
_refs = ["the cat is on the mat .", "a big dog runs in the grass ."]
_sb = sacrebleu.BLEU(tokenize="none", smooth_method="none").corpus_score(_hyps, [_refs])
_mine = corpus_bleu([h.split() for h in _hyps], [r.split() for r in _refs])
assert abs(_mine - _sb.score) < 1e-6, f"corpus_bleu(...) = {_mine}, sacrebleu says {_sb.score}"

# %%
# HIDDEN
import random as _random

_rng = _random.Random(hidden_seed(5))
_words = "a the cat dog sat on mat red big . letter sign".split()
for _trial in range(30):
    _hyps, _refs = [], []
    for _ in range(_rng.randint(1, 6)):
        _refs.append([_rng.choice(_words) for _ in range(_rng.randint(1, 9))])
        _hyps.append(_refs[-1][:] if _rng.random() < 0.4 else
                     [_rng.choice(_words) for _ in range(_rng.randint(1, 9))])
    _sb = sacrebleu.BLEU(tokenize="none", smooth_method="none").corpus_score(
        [" ".join(h) for h in _hyps], [[" ".join(r) for r in _refs]])
    for _n in range(1, 5):
        _m = sum(clipped_matches(h, r, _n)[0] for h, r in zip(_hyps, _refs))
        _t = sum(clipped_matches(h, r, _n)[1] for h, r in zip(_hyps, _refs))
        assert (_m, _t) == (_sb.counts[_n - 1], _sb.totals[_n - 1]), (_trial, _n)
    _c, _rl = sum(map(len, _hyps)), sum(map(len, _refs))
    assert abs(brevity_penalty(_c, _rl) - _sb.bp) < 1e-9, (_c, _rl, _sb.bp)
    assert abs(corpus_bleu(_hyps, _refs) - _sb.score) < 1e-6, (_trial, _sb.score)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_reading
# points: 1

# %% [markdown]
# **Q4 · Reading the chapter's table.** In section 5 of the chapter, the `full`
# captioner on its own scores below nearest-neighbour retrieval on BLEU and chrF. Its
# part scores show where the gap comes from. Which parts of the reference captions does
# it recover clearly *less often* than retrieval? Set `answer` to one letter:
#
# * `"a"` — the template words ("a", "the", "letter", …);
# * `"b"` — the object word and the attributes ("apple" and "red" in "A red apple.");
# * `"c"` — the full stop at the end.
#
# Then think about why: which of them need the picture to be recognised?

# %% [raw]
# # BEGIN SOLUTION

# %%
answer = "b"  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert answer in ("a", "b", "c"), f'answer must be "a", "b" or "c", not {answer!r}'

# %%
# HIDDEN
assert answer == "b"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
