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
# name: 08_speech_recognition
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/08_speech_recognition.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/08_speech_recognition.ipynb)
#
# # Exercise 08 · Speech recognition with CTC
#
# Companion to `notebooks/08_speech_recognition.ipynb`. Write the code where you see
# `...`, then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# You will write the pieces of CTC and its evaluation yourself: the collapsing map, one
# step of the forward (α) recursion and the edit distance behind CER and WER, read off
# what a decoder's output means, then write the whole CTC loss in log space and a
# prefix beam search.

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
grader = Notebook("08_speech_recognition.ipynb")

# %%
import math

import numpy as np
import torch

from mmcourse.tasks import ctc

# %% [raw]
# # BEGIN QUESTION
# name: q1_collapse
# points: 2

# %% [markdown]
# **Q1 · Collapse a CTC path.** Write `collapse_path(path, blank=0)` for a list of
# integers (one symbol per frame). It returns the labelling the path spells, as a list
# of integers: first merge every run of the same symbol into one, then delete the
# blanks. `[1, 1, 0, 1, 2, 2, 0]` → `[1, 1, 2]`: the blank keeps the two 1s apart.
# Do not call anything from `mmcourse.tasks.ctc`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def collapse_path(path, blank=0):
    # BEGIN SOLUTION
    out, previous = [], None
    for symbol in path:
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
for _path, _want in (([1, 1, 0, 1, 2, 2, 0], [1, 1, 2]), ([0, 0], []), ([3, 3, 3], [3])):
    _got = collapse_path(_path)
    assert _got == _want, f"collapse_path({_path}) should be {_want}, got {_got}"

# %%
# HIDDEN
import random

from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_rng = random.Random(hidden_seed(8))
for _ in range(300):
    _blank = _rng.randrange(4)
    _path = [_rng.randrange(4) for _ in range(_rng.randrange(0, 15))]
    assert list(collapse_path(_path, blank=_blank)) == ctc.collapse(_path, _blank), (_path, _blank)
assert collapse_path([2, 2, 1, 2], blank=2) == [1]
with forbidding("mmcourse.tasks.ctc.collapse"):
    assert collapse_path([1, 0, 1]) == [1, 1]

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_alpha_step
# points: 3

# %% [markdown]
# **Q2 · One step of the α recursion.** Write `alpha_step(alpha_prev, probs_t, extended,
# blank=0)`: one step of CTC's forward recursion **in probability space** (not logs).
#
# * `extended` — the extended labelling ℓ′ as a list of ints: a blank before, between
#   and after the labels (`[0, 1, 0, 1, 0, 2, 0]` for the labels `[1, 1, 2]`);
# * `alpha_prev` — a float64 tensor `(len(extended),)`: α_{t−1}(s);
# * `probs_t` — a float64 tensor `(C,)`: y_t(k), the probability of every symbol at
#   frame t.
#
# Return the tensor α_t `(len(extended),)` with
# α_t(s) = (α_{t−1}(s) + α_{t−1}(s−1) + [ℓ′_s ≠ blank and ℓ′_s ≠ ℓ′_{s−2}] α_{t−1}(s−2)) · y_t(ℓ′_s),
# where terms with s − 1 < 0 or s − 2 < 0 count as 0.

# %% [raw]
# # BEGIN SOLUTION

# %%
def alpha_step(alpha_prev, probs_t, extended, blank=0):
    # BEGIN SOLUTION
    alpha = torch.zeros_like(alpha_prev)
    for s, symbol in enumerate(extended):
        total = alpha_prev[s]
        if s >= 1:
            total = total + alpha_prev[s - 1]
        if s >= 2 and symbol != blank and symbol != extended[s - 2]:
            total = total + alpha_prev[s - 2]
        alpha[s] = total * probs_t[symbol]
    return alpha
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_ext = [0, 1, 0, 1, 0, 2, 0]
_prev = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.0, 0.0, 0.0], dtype=torch.float64)
_y = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
_got = alpha_step(_prev, _y, _ext)
_want = torch.tensor([0.25, 0.24, 0.2, 0.045, 0.025, 0.01, 0.0], dtype=torch.float64)
assert _got.shape == (7,), f"alpha_step(...) on labels [1, 1, 2] should have shape (7,), got {tuple(_got.shape)}"
assert torch.allclose(_got, _want), f"alpha_step(...) on labels [1, 1, 2] should be {_want.tolist()}, got {_got.tolist()}"

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(3))
for _trial in range(30):
    _c = int(torch.randint(2, 6, (), generator=_g))
    _s = int(torch.randint(0, 5, (), generator=_g))
    _labels = torch.randint(1, _c, (_s,), generator=_g).tolist()
    if _s >= 2:
        _labels[1] = _labels[0]                    # a repeated label every time
    _t = 2 * _s + 3
    _lp = torch.randn(_t, 1, _c, generator=_g, dtype=torch.float64).log_softmax(-1)
    _, _log_alpha = ctc.ctc_forward(_lp, torch.tensor([_labels or [1]]), torch.tensor([_t]),
                                    torch.tensor([_s]))
    _alphas = _log_alpha[:, 0, :2 * _s + 1].exp()
    _ext = [0]
    for _l in _labels:
        _ext += [_l, 0]
    for _k in range(1, _t):
        _got = alpha_step(_alphas[_k - 1].clone(), _lp[_k, 0].exp(), _ext)
        assert_same(_got, _alphas[_k], rtol=1e-9, atol=1e-300, what=f"alpha_step {_labels} at {_k}")
# another blank index
_got = alpha_step(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                  torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), [2, 0, 2], blank=2)
assert_same(_got, torch.tensor([0.5, 0.2, 0.0], dtype=torch.float64), what="alpha_step(..., blank=2)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_edit_distance
# points: 3

# %% [markdown]
# **Q3 · Edit distance.** Write `levenshtein(ref, hyp)`: the smallest number of
# substitutions, deletions and insertions that turn the sequence `ref` into the sequence
# `hyp` (strings or lists), as an `int`. Use dynamic programming:
# D[i][0] = i, D[0][j] = j, D[i][j] = min(D[i−1][j] + 1, D[i][j−1] + 1,
# D[i−1][j−1] + [ref_i ≠ hyp_j]). Then set `cer_example` to the character error rate of
# the transcript `"un gado"` for the reference `"un gato negro"`: edits over reference
# characters (spaces count). Do not call `mmcourse.training.metrics` or torchaudio.

# %% [raw]
# # BEGIN SOLUTION

# %%
def levenshtein(ref, hyp):
    # BEGIN SOLUTION
    ref, hyp = list(ref), list(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]
    # END SOLUTION


cer_example = levenshtein("un gato negro", "un gado") / len("un gato negro")  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_got = levenshtein("kitten", "sitting")
assert _got == 3, f"levenshtein('kitten', 'sitting') should be 3, got {_got}"
assert 0 < cer_example < 1, f"cer_example should be a fraction between 0 and 1, got {cer_example}"

# %%
# HIDDEN
from torchaudio.functional import edit_distance as _reference

_rng = random.Random(hidden_seed(13))
for _ in range(200):
    _a = [_rng.randrange(3) for _ in range(_rng.randrange(0, 10))]
    _b = [_rng.randrange(3) for _ in range(_rng.randrange(0, 10))]
    assert levenshtein(_a, _b) == _reference(_a, _b), (_a, _b)
assert levenshtein("", "") == 0 and levenshtein("abc", "") == 3
assert levenshtein("un gato".split(), "un pato negro".split()) == 2
assert type(levenshtein("ab", "b")) is int
assert abs(cer_example - 7 / 13) < 1e-9
with forbidding("mmcourse.training.metrics.edit_distance", "torchaudio.functional.edit_distance"):
    assert levenshtein("una rana", "un arana") == 2

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_interpretation
# points: 2

# %% [markdown]
# **Q4 · Interpretation: the best path or the best labelling?** A recogniser outputs,
# for two frames and the symbols (blank, `a`), the probabilities
# `[[0.6, 0.4], [0.6, 0.4]]`. Set `p_empty` to the probability CTC gives the empty
# labelling, `p_a` to the probability of the labelling `"a"` (sum over every path that
# collapses to it), and `answer` to the letter of the true statement:
#
# - **a** — greedy decoding outputs `"a"`, because `a` is the most probable symbol of
#   some frame.
# - **b** — greedy decoding outputs the empty labelling, yet `"a"` is the more probable
#   labelling: greedy finds the best *path*, and `"a"` wins by collecting three paths.
#   A prefix beam search finds `"a"`.
# - **c** — greedy decoding and prefix beam search always agree, because both maximise
#   p(labelling | audio).
# - **d** — the empty labelling is the more probable one, since the blank wins every
#   frame.

# %% [raw]
# # BEGIN SOLUTION

# %%
p_empty = 0.6 * 0.6  # SOLUTION
p_a = 0.4 * 0.6 + 0.6 * 0.4 + 0.4 * 0.4  # SOLUTION
answer = "b"  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert abs(p_empty + p_a - 1) < 1e-9, f"p_empty + p_a should be 1 (two symbols, two frames), got {p_empty + p_a}"
assert answer in ("a", "b", "c", "d"), f"answer should be one of 'a', 'b', 'c', 'd', got {answer!r}"

# %%
# HIDDEN
assert abs(p_empty - 0.36) < 1e-9 and abs(p_a - 0.64) < 1e-9
assert answer == "b"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_ctc_loss
# points: 3

# %% [markdown]
# **Q5 · The CTC loss of a whole labelling.** Write `ctc_nll(log_probs, labels,
# blank=0)`: the CTC loss $-\log p(\ell \mid x)$ of one utterance, by the full forward
# recursion of Q2 **in log space**.
#
# * `log_probs` — a float64 tensor `(T, C)`: log y_t(k) for every frame and symbol;
# * `labels` — the labelling ℓ, a list of S ≥ 1 ints (no blanks; letters may repeat).
#
# Build the extended labelling ℓ′ (2S + 1 symbols), start with
# α_0(0) = y_0(blank), α_0(1) = y_0(ℓ′_1) and α_0(s) = 0 for s ≥ 2, apply the step of Q2
# for t = 1 … T − 1, and end on the last label or the blank after it:
# p(ℓ | x) = α_{T−1}(2S) + α_{T−1}(2S − 1). Keep log α instead of α (a product of
# hundreds of probabilities is 0 in float64): a sum of probabilities becomes
# `torch.logsumexp` of their logs, and log 0 is `-inf`. Return the loss as a Python
# float. Every test has enough frames to spell ℓ. Do not call
# `torch.nn.functional.ctc_loss` or `mmcourse.tasks.ctc`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def ctc_nll(log_probs, labels, blank=0):
    # BEGIN SOLUTION
    extended = [blank]
    for label in labels:
        extended += [label, blank]
    neg = torch.tensor(float("-inf"), dtype=log_probs.dtype)
    alpha = [neg] * len(extended)
    alpha[0], alpha[1] = log_probs[0, blank], log_probs[0, extended[1]]
    for t in range(1, log_probs.shape[0]):
        new = []
        for s, symbol in enumerate(extended):
            terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
            if s >= 2 and symbol != blank and symbol != extended[s - 2]:
                terms.append(alpha[s - 2])
            new.append(torch.logsumexp(torch.stack(terms), 0) + log_probs[t, symbol])
        alpha = new
    return -float(torch.logaddexp(alpha[-1], alpha[-2]))
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# two frames, symbols (blank, a): "a" has three paths, a-, -a and aa
_lp = torch.log(torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64))
_got = ctc_nll(_lp, [1])
assert isinstance(_got, float), f"ctc_nll should return a float, got {type(_got).__name__}"
assert abs(_got + math.log(0.64)) < 1e-9, f"ctc_nll(two frames, [1]): expected -log 0.64 = 0.4463, got {_got:.4f}"
# "aa" in three frames: the only path is a, blank, a
_lp = torch.log(torch.tensor([[0.5, 0.5], [0.3, 0.7], [0.2, 0.8]], dtype=torch.float64))
_got = ctc_nll(_lp, [1, 1])
assert abs(_got + math.log(0.5 * 0.3 * 0.8)) < 1e-9, \
    f"ctc_nll(three frames, [1, 1]): the repeat needs a blank between, expected {-math.log(0.12):.4f}, got {_got:.4f}"
# 2,000 frames: α itself would be 0, its log is not
_lp = torch.full((2000, 3), math.log(1 / 3), dtype=torch.float64)
_got = ctc_nll(_lp, [1, 2])
assert abs(_got - 2169.998) < 1e-2, f"ctc_nll(2000 uniform frames, [1, 2]) should be 2000·log 3 − log(number of paths) ≈ 2170.0, got {_got}"

# %%
# HIDDEN
import torch.nn.functional as _F

_g = torch.Generator().manual_seed(hidden_seed(55))
for _trial in range(16):
    _c = int(torch.randint(2, 7, (), generator=_g))
    _blank = 0 if _trial % 4 else _c - 1
    _s = 1 if _trial % 5 == 0 else int(torch.randint(1, 6, (), generator=_g))
    _labels = [int(x) for x in torch.randint(0, _c - 1, (_s,), generator=_g)]
    _labels = [x + (x >= _blank) for x in _labels]     # any symbol but the blank
    if _s >= 2 and _trial % 2:
        _labels[1] = _labels[0]                        # a repeated letter
    _t = 2 * _s + int(torch.randint(0, 6, (), generator=_g)) + (600 if _trial % 6 == 1 else 0)
    _lp = (3 * torch.randn(_t, _c, generator=_g, dtype=torch.float64)).log_softmax(-1)
    _want = float(_F.ctc_loss(_lp[:, None], torch.tensor([_labels]), torch.tensor([_t]),
                              torch.tensor([_s]), blank=_blank, reduction="sum"))
    with forbidding("torch.nn.functional.ctc_loss", "torch.ctc_loss",
                    "mmcourse.tasks.ctc.ctc_loss", "mmcourse.tasks.ctc.ctc_forward"):
        _got = ctc_nll(_lp, _labels, blank=_blank)
    assert_same(_got, _want, rtol=1e-7, atol=1e-7, what=f"ctc_nll(T={_t}, labels={_labels}, blank={_blank})")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6_prefix_beam
# points: 3

# %% [markdown]
# **Q6 · Prefix beam search.** Greedy decoding finds the best *path*; a prefix beam
# search looks for the best *labelling* (Q4) while keeping only `beam` candidates.
# Write `prefix_beam(log_probs, beam, blank=0)` for one utterance, `log_probs` a float64
# tensor `(T, C)`. Each prefix (a tuple of labels so far) carries two log-probabilities:
# $p_b$, of its paths that end in a blank, and $p_{nb}$, of those that end in its last
# label. Start from the empty prefix with $p_b = 0$ (= log 1) and $p_{nb} = -\infty$.
# At each frame, with $p = p_b ⊕ p_{nb}$ (⊕ adds probabilities: `logaddexp`) and y the
# frame's log-probabilities, every kept prefix tries every symbol c:
#
# * c = blank: the prefix stays, its new $p_b$ gets $p + y(\text{blank})$;
# * c = the prefix's last label: the repeat merges, the prefix stays and its new
#   $p_{nb}$ gets $p_{nb} + y(c)$; **and** prefix + c (the same letter again, after a
#   blank) gets, in its new $p_{nb}$, $p_b + y(c)$;
# * any other c: prefix + c gets, in its new $p_{nb}$, $p + y(c)$.
#
# A prefix reached in several ways adds (⊕) what it gets. Then keep the `beam` prefixes
# with the highest $p_b ⊕ p_{nb}$ and go to the next frame. Return `(labels, score)` for
# the best prefix after the last frame: its labels as a list of ints and its
# $p_b ⊕ p_{nb}$ as a float. Do not call `mmcourse.tasks.ctc`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def prefix_beam(log_probs, beam, blank=0):
    # BEGIN SOLUTION
    inf = float("-inf")

    def add(a, b):
        return b if a == inf else a if b == inf else float(np.logaddexp(a, b))

    beams = {(): (0.0, inf)}
    for frame in log_probs.tolist():
        nxt = {}

        def give(prefix, pb=inf, pnb=inf):
            old_b, old_nb = nxt.get(prefix, (inf, inf))
            nxt[prefix] = (add(old_b, pb), add(old_nb, pnb))

        for prefix, (pb, pnb) in beams.items():
            total = add(pb, pnb)
            for c, y in enumerate(frame):
                if c == blank:
                    give(prefix, pb=total + y)
                elif prefix and c == prefix[-1]:
                    give(prefix, pnb=pnb + y)
                    give(prefix + (c,), pnb=pb + y)
                else:
                    give(prefix + (c,), pnb=total + y)
        ranked = sorted(nxt.items(), key=lambda kv: -add(*kv[1]))
        beams = dict(ranked[:beam])
    best, (pb, pnb) = max(beams.items(), key=lambda kv: add(*kv[1]))
    return list(best), add(pb, pnb)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# Q4's two frames: greedy says "", the search finds "a" with p = 0.64
_lp = torch.log(torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64))
_got = prefix_beam(_lp, beam=4)
assert isinstance(_got, tuple) and len(_got) == 2, f"prefix_beam should return (labels, score), got {_got!r}"
assert _got[0] == [1], f"prefix_beam(Q4's frames, 4): expected the labels [1], got {_got[0]}"
assert abs(_got[1] - math.log(0.64)) < 1e-9, f"its score: expected log 0.64 = -0.4463, got {_got[1]:.4f}"
# a blank between two 1s spells [1, 1]
_lp = torch.log(torch.tensor([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]], dtype=torch.float64))
_got = prefix_beam(_lp, beam=4)
assert _got[0] == [1, 1], f"prefix_beam on frames 1, blank, 1: expected [1, 1], got {_got[0]}"

# %%
# HIDDEN
import math as _math

_g = torch.Generator().manual_seed(hidden_seed(66))
for _trial in range(16):
    _c = int(torch.randint(2, 5, (), generator=_g))
    _beam = int(torch.randint(_c, 9, (), generator=_g))
    _blank = 0 if _trial % 3 else _c - 1
    _t = int(torch.randint(1, 12, (), generator=_g))
    _lp = (1.5 * torch.randn(_t, _c, generator=_g, dtype=torch.float64)).log_softmax(-1)
    _lp[:, _blank] += 0.7 * (_trial % 2)                 # blanks win often
    _lp = _lp.log_softmax(-1).clamp(min=-11.0).log_softmax(-1)
    _labels, _score = ctc.prefix_beam_search(_lp, beam=_beam, blank=_blank)[0]
    with forbidding("mmcourse.tasks.ctc.prefix_beam_search", "mmcourse.tasks.ctc.beam_decode"):
        _got = prefix_beam(_lp, _beam, blank=_blank)
    assert_same(_got, (_labels, _score), rtol=1e-7, atol=1e-9,
                what=f"prefix_beam(T={_t}, C={_c}, beam={_beam}, blank={_blank})")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
