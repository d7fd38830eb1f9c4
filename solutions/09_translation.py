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
# name: 09_translation
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/09_translation.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/09_translation.ipynb)
#
# # Exercise 09 · Multimodal machine translation
#
# Companion to `notebooks/09_translation.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# You will write one step of additive attention, train-time (teacher-forced) and
# test-time (free-running) decoding of a toy model, compare two systems fold by fold
# (the paired difference), and learn a word lexicon with IBM Model 1.

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
grader = Notebook("09_translation.ipynb")

# %%
import numpy as np
import torch

from mmcourse.nn import seq2seq

# %% [raw]
# # BEGIN QUESTION
# name: q1_attention_step
# points: 3

# %% [markdown]
# **Q1 · One attention step.** Write `attention_step(query, keys, mask, W_q, W_k, b_k, v)`
# for one decoder step of additive (Bahdanau) attention over a batch:
#
# * `query` `(B, H)`: the decoder's hidden state $h_{t-1}$;
# * `keys` `(B, M, D)`: the memory, one row per source word (or picture);
# * `mask` `(B, M)` bool: True where the row is real, False at padding;
# * `W_q` `(A, H)`, `W_k` `(A, D)`, `b_k` `(A,)`, `v` `(A,)`: the parameters.
#
# The score of row $m$ is $e_m = v^\top \tanh(W_q h + W_k k_m + b_k)$; padded rows get
# weight 0, the others $\alpha_m = e^{e_m} / \sum_{m' \text{ real}} e^{e_{m'}}$; the
# context is $c = \sum_m \alpha_m k_m$. Return `(context (B, D), weights (B, M))`.
# Use tensor operations only (`torch.softmax` is allowed); do not call anything from
# `mmcourse`. Every row of `mask` has at least one True.

# %% [raw]
# # BEGIN SOLUTION

# %%
def attention_step(query, keys, mask, W_q, W_k, b_k, v):
    # BEGIN SOLUTION
    energy = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T + b_k) @ v
    weights = torch.softmax(energy.masked_fill(~mask, float("-inf")), dim=-1)
    context = (weights[..., None] * keys).sum(1)
    return context, weights
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_q = torch.tensor([[1.0, 0.0]])
_k = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
_mask = torch.tensor([[True, True, False]])
_eye = torch.eye(2)
_c, _w = attention_step(_q, _k, _mask, _eye, _eye, torch.zeros(2), torch.ones(2))
assert _w.shape == (1, 3) and _c.shape == (1, 2), \
    f"attention_step on B=1, M=3, D=2: expected shapes (1, 3) and (1, 2), got {tuple(_w.shape)} and {tuple(_c.shape)}"
assert abs(float(_w[0, 2])) < 1e-7, f"a padded row must get weight 0, got {float(_w[0, 2])}"
assert abs(float(_w.sum()) - 1) < 1e-6, f"the weights must sum to 1, got {float(_w.sum())}"
assert abs(float(_w[0, 0]) - 0.482356) < 1e-4, f"weight of row 0: expected 0.4824, got {float(_w[0, 0]):.4f}"

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_g = torch.Generator().manual_seed(hidden_seed(9))
for _b, _m, _d, _h, _a in ((1, 1, 3, 2, 4), (4, 7, 5, 6, 3), (8, 12, 16, 10, 8)):
    _ref = seq2seq.AdditiveAttention(_h, _d, _a).double()
    with torch.no_grad():
        for _p in _ref.parameters():
            _p.copy_(torch.randn(_p.shape, generator=_g, dtype=torch.float64))
    _query = torch.randn(_b, _h, generator=_g, dtype=torch.float64)
    _keys = torch.randn(_b, _m, _d, generator=_g, dtype=torch.float64)
    _lengths = torch.randint(1, _m + 1, (_b,), generator=_g)
    _mask = torch.arange(_m)[None, :] < _lengths[:, None]
    _want_c, _want_w = _ref(_query, _keys, _mask)
    with forbidding("mmcourse.nn.seq2seq.AdditiveAttention.forward"):  # tensor operations only
        _got = attention_step(_query, _keys, _mask, _ref.query.weight, _ref.key.weight,
                              _ref.key.bias, _ref.score.weight[0])
    assert_same(_got, (_want_c, _want_w), atol=1e-9, what="attention_step(...)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_teacher_forcing
# points: 3

# %% [markdown]
# **Q2 · Teacher forcing versus free running.** A toy decoder remembers only its last
# token: `table[a, b]` is $\log p(y_t = b \mid y_{t-1} = a)$, a float tensor `(V, V)`
# whose rows are log-probability distributions. Token `bos` starts every sentence and
# `eos` ends it.
#
# 1. `teacher_forced_nll(table, target, bos)`: the training loss on one sentence
#    `target` (a list of ints that ends with `eos`): the mean over its positions $t$ of
#    $-\log p(y_t \mid y_{t-1})$, where the previous token is always the **true** one
#    ($y_0$ = `bos`). Return a Python float.
# 2. `free_running(table, bos, eos, max_len)`: what the model says at test time, where
#    the previous token is **its own** last output: start from `bos`, take the most
#    likely next token (the lowest index on a tie), repeat; stop after emitting `eos`
#    (include it) or after `max_len` tokens. Return the list of ints (without `bos`).

# %% [raw]
# # BEGIN SOLUTION

# %%
def teacher_forced_nll(table, target, bos):
    # BEGIN SOLUTION
    previous = [bos] + list(target[:-1])
    return float(-sum(table[a, b] for a, b in zip(previous, target)) / len(target))
    # END SOLUTION


def free_running(table, bos, eos, max_len):
    # BEGIN SOLUTION
    out, token = [], bos
    while len(out) < max_len:
        token = int(torch.argmax(table[token]))
        out.append(token)
        if token == eos:
            break
    return out
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# tokens: 0 = <bos>, 1 = <eos>, 2 = "un", 3 = "chat", 4 = "chien"
_p = torch.tensor([[0.0, 0.0, 0.9, 0.05, 0.05],
                   [0.0, 1.0, 0.0, 0.0, 0.0],
                   [0.0, 0.1, 0.0, 0.4, 0.5],
                   [0.0, 0.9, 0.0, 0.05, 0.05],
                   [0.0, 0.9, 0.0, 0.05, 0.05]])
_table = torch.log(_p.clamp(min=1e-9))
_nll = teacher_forced_nll(_table, [2, 3, 1], bos=0)
assert isinstance(_nll, float), f"teacher_forced_nll should return a float, got {type(_nll).__name__}"
assert abs(_nll - 0.3756) < 1e-3, f"teacher_forced_nll(table, [2, 3, 1], bos=0): expected 0.3756, got {_nll:.4f}"
_run = free_running(_table, 0, 1, 10)
assert _run == [2, 4, 1], f"free_running(table, 0, 1, 10): expected [2, 4, 1] (un chien), got {_run}"

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(3))
for _v in (3, 6, 20):
    for _ in range(5):
        _table = torch.log_softmax(3 * torch.randn(_v, _v, generator=_g, dtype=torch.float64), -1)
        _target = torch.randint(2, _v, (int(torch.randint(0, 6, (1,), generator=_g)),),
                                generator=_g).tolist() + [1]
        _want = -float(sum(_table[a, b] for a, b in zip([0] + _target[:-1], _target))) / len(_target)
        assert abs(teacher_forced_nll(_table, _target, 0) - _want) < 1e-9
        _tokens, _tok = [], 0
        for _ in range(7):
            _tok = int(torch.argmax(_table[_tok]))
            _tokens.append(_tok)
            if _tok == 1:
                break
        assert free_running(_table, 0, 1, 7) == _tokens, (_v, _tokens)
# a cycle that never reaches eos stops at max_len
_cycle = torch.full((4, 4), -10.0)
_cycle[0, 2] = _cycle[2, 3] = _cycle[3, 2] = 0.0
assert free_running(_cycle, 0, 1, 5) == [2, 3, 2, 3, 2]
assert free_running(_cycle, 0, 1, 0) == []

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_exposure
# points: 1

# %% [markdown]
# **Q3 · The price of teacher forcing.** With the toy table of the public test of Q2
# and the sentence "un chat" (`[2, 3, 1]`): the teacher-forced loss is small, yet the
# model says "un chien". Set `first_wrong` to the position (0-based) of the first token
# where `free_running` differs from the target, and `p_target_free` to the probability
# that the model, sampling freely from `bos`, produces exactly `[2, 3, 1]` (a float).

# %% [raw]
# # BEGIN SOLUTION

# %%
first_wrong = 1  # SOLUTION
p_target_free = 0.9 * 0.4 * 0.9  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert isinstance(first_wrong, int) and isinstance(p_target_free, float), \
    "first_wrong should be an int and p_target_free a float"
assert 0 <= first_wrong <= 2 and 0 < p_target_free < 1

# %%
# HIDDEN
assert first_wrong == 1
assert abs(p_target_free - 0.324) < 1e-3

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_paired
# points: 2

# %% [markdown]
# **Q4 · Comparing two systems fold by fold.** Two systems are scored on the same K test
# folds: `a[k]` and `b[k]` are their scores (BLEU or chrF) on fold `k`. Part of each
# system's spread over the folds is the folds themselves — an easy fold is easy for
# both — so compare them by the **paired difference** $d_k = a_k - b_k$, one per fold.
#
# 1. Write `paired_difference(a, b)` for two sequences of K ≥ 1 numbers (lists or NumPy
#    arrays of the same length): return the tuple `(mean, std, wins)`, where `mean` is
#    the mean of $d_k$ over the folds, `std` its standard deviation with ddof 0
#    (`np.std`'s default), both floats, and `wins` the number of folds in which `a`
#    scores strictly higher than `b` (an int).
# 2. Chapter 09's text + image model, its text model and the text + image model with
#    shuffled pictures scored on three folds as below (rounded; they are in the cell as
#    `with_picture`, `text_only` and `shuffled`). Set `picture_gain` to
#    `{"BLEU": ..., "chrF": ...}`: for each metric, what `paired_difference` returns for
#    `with_picture` − `text_only`; and `shuffle_drop` the same for `with_picture` −
#    `shuffled`.
#
# | fold | with picture BLEU | text only BLEU | shuffled BLEU | with picture chrF | text only chrF | shuffled chrF |
# |---|---|---|---|---|---|---|
# | 0 | 45.67 | 44.64 | 43.44 | 48.65 | 47.60 | 47.35 |
# | 1 | 50.18 | 49.94 | 46.72 | 51.16 | 51.35 | 48.04 |
# | 2 | 42.29 | 41.69 | 39.87 | 43.79 | 45.28 | 42.05 |
#
# Look at the two results side by side: on which metrics is each difference on the
# same side in every fold, and how large is its mean against its standard deviation?
# (Section 7 of the chapter reads these numbers.)

# %% [raw]
# # BEGIN SOLUTION

# %%
def paired_difference(a, b):
    # BEGIN SOLUTION
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return float(d.mean()), float(d.std()), int((d > 0).sum())
    # END SOLUTION


with_picture = {"BLEU": [45.67, 50.18, 42.29], "chrF": [48.65, 51.16, 43.79]}
text_only = {"BLEU": [44.64, 49.94, 41.69], "chrF": [47.60, 51.35, 45.28]}
shuffled = {"BLEU": [43.44, 46.72, 39.87], "chrF": [47.35, 48.04, 42.05]}
picture_gain = {m: paired_difference(with_picture[m], text_only[m]) for m in ("BLEU", "chrF")}  # SOLUTION
shuffle_drop = {m: paired_difference(with_picture[m], shuffled[m]) for m in ("BLEU", "chrF")}  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_got = paired_difference([50.0, 52.0, 47.0], [49.0, 52.5, 45.0])
assert isinstance(_got, tuple) and len(_got) == 3, \
    f"paired_difference should return a tuple (mean, std, wins), got {_got!r}"
assert abs(_got[0] - 5 / 6) < 1e-9, f"mean of the differences [1.0, -0.5, 2.0]: expected 0.8333, got {_got[0]}"
assert abs(_got[1] - 1.027402) < 1e-5, \
    f"std of the differences [1.0, -0.5, 2.0] (ddof 0): expected 1.0274, got {_got[1]}"
assert abs(_got[2] - 2) < 1e-9, f"wins for the differences [1.0, -0.5, 2.0]: expected 2, got {_got[2]}"
assert isinstance(picture_gain, dict) and set(picture_gain) == {"BLEU", "chrF"}, \
    "picture_gain should be a dict with the keys 'BLEU' and 'chrF'"
assert isinstance(shuffle_drop, dict) and set(shuffle_drop) == {"BLEU", "chrF"}, \
    "shuffle_drop should be a dict with the keys 'BLEU' and 'chrF'"

# %%
# HIDDEN
import numpy as np

from mmcourse.grading.hidden import hidden_seed

_rng = np.random.default_rng(hidden_seed(4))
for _k in (1, 2, 3, 3, 5, 8):
    for _as_list in (True, False):
        _a = np.round(_rng.uniform(20, 60, _k), 2)
        _b = np.round(_a + _rng.normal(0, 2, _k), 2)
        _tie = (_rng.random(_k) < 0.25) | ((np.arange(_k) == 1) & (_k > 2))  # a tie is no win
        _b[_tie] = _a[_tie]
        _d = _a - _b
        _want = (float(np.mean(_d)), float(np.std(_d)), int(np.sum(_d > 0)))
        _got = paired_difference(_a.tolist(), _b.tolist()) if _as_list else paired_difference(_a, _b)
        assert isinstance(_got, tuple) and len(_got) == 3, (_k, _got)
        assert abs(_got[0] - _want[0]) < 1e-9 and abs(_got[1] - _want[1]) < 1e-9, (_k, _got, _want)
        assert int(_got[2]) == _got[2] == _want[2], (_k, _got, _want)
_with = {"BLEU": [45.67, 50.18, 42.29], "chrF": [48.65, 51.16, 43.79]}
_other = {"gain": {"BLEU": [44.64, 49.94, 41.69], "chrF": [47.60, 51.35, 45.28]},
          "drop": {"BLEU": [43.44, 46.72, 39.87], "chrF": [47.35, 48.04, 42.05]}}
for _name, _answer in (("gain", picture_gain), ("drop", shuffle_drop)):
    for _m in ("BLEU", "chrF"):
        _d = np.array(_with[_m]) - np.array(_other[_name][_m])
        _got = _answer[_m]
        assert isinstance(_got, tuple) and len(_got) == 3, (_name, _m, _got)
        assert abs(_got[0] - _d.mean()) < 1e-9 and abs(_got[1] - _d.std()) < 1e-9, (_name, _m)
        assert _got[2] == int((_d > 0).sum()), (_name, _m)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_model_one
# points: 3

# %% [markdown]
# **Q5 · IBM Model 1.** The chapter's retrieve-and-repair system needs to know which
# French word translates which English word, and learns it from sentence pairs alone.
# Write `model_one(pairs, iterations)`: `pairs` is a list of `(english, french)` token
# lists; return the word translation probabilities $t(f \mid e)$ after `iterations`
# EM steps, as a dict `{(f, e): probability}`.
#
# * Every English sentence also holds the empty word `"<null>"` (first), which explains
#   French words that translate nothing.
# * Start from uniform probabilities: $t(f \mid e)$ the same for every pair of words.
# * **E-step**, for every French word $f_j$ of every pair: its share for each English
#   word $e_i$ of the same pair (the empty word included) is
#   $\gamma_{ji} = t(f_j \mid e_i) / \sum_{i'} t(f_j \mid e_{i'})$.
# * **M-step**: $t(f \mid e)$ = the total share that $f$ received from $e$ over all
#   pairs, divided by the total share that $e$ gave to any French word.
#
# Leave out pairs of words that never meet in a sentence pair (their probability is 0).
# Plain Python is enough; do not use `mmcourse.tasks.translation`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def model_one(pairs, iterations):
    # BEGIN SOLUTION
    t = {}
    for _ in range(iterations):
        counts, totals = {}, {}
        for english, french in pairs:
            english = ["<null>", *english]
            for f in french:
                z = sum(t.get((f, e), 1.0) for e in english)
                for e in english:
                    share = t.get((f, e), 1.0) / z
                    counts[f, e] = counts.get((f, e), 0.0) + share
                    totals[e] = totals.get(e, 0.0) + share
        t = {(f, e): c / totals[e] for (f, e), c in counts.items()}
    return t
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_pairs = [(["the", "house"], ["la", "maison"]), (["the", "flower"], ["la", "fleur"])]
_t = model_one(_pairs, 1)
assert isinstance(_t, dict), f"model_one should return a dict, got {type(_t).__name__}"
assert abs(_t.get(("la", "the"), 0) - 0.5) < 1e-9, \
    f"after one step t(la | the) should be 0.5, got {_t.get(('la', 'the'))}"
assert abs(_t.get(("maison", "<null>"), 0) - 0.25) < 1e-9, \
    f"after one step t(maison | <null>) should be 0.25, got {_t.get(('maison', '<null>'))}"
_t = model_one(_pairs, 10)
assert _t[("la", "the")] > 0.85 and _t[("maison", "house")] > 0.5, \
    "after ten steps 'la' should go to 'the' and 'maison' to 'house'"

# %%
# HIDDEN
import random

from mmcourse.grading.hidden import forbidding, hidden_seed
from mmcourse.tasks.translation import WordLexicon

_rng = random.Random(hidden_seed(95))
_english = ["red", "cat", "dog", "a", "the", "big", "hat", "sun"]
_french = ["rouge", "chat", "chien", "un", "le", "grand", "chapeau", "soleil", "de"]
for _n, _steps in ((3, 1), (8, 2), (20, 5)):
    _corpus = [([_rng.choice(_english) for _ in range(_rng.randint(1, 5))],
                [_rng.choice(_french) for _ in range(_rng.randint(1, 6))]) for _ in range(_n)]
    _want = WordLexicon(iterations=_steps).fit([" ".join(e) for e, _ in _corpus],
                                               [" ".join(f) for _, f in _corpus]).t
    with forbidding("mmcourse.tasks.translation.WordLexicon.fit"):
        _got = model_one([(list(e), list(f)) for e, f in _corpus], _steps)
    assert set(_got) == set(_want), (_n, _steps)
    assert all(abs(_got[k] - _want[k]) < 1e-9 for k in _want), (_n, _steps)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
