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
# You will write the translator's mix of generating and copying, train-time
# (teacher-forced) and test-time (free-running) decoding of a toy model, measure how
# often it errs after its own mistakes, compare two systems fold by fold (the paired
# difference), and learn a word lexicon with IBM Model 1.

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
# name: q1_copy_mixture
# points: 3

# %% [markdown]
# **Q1 · Generate or copy.** The chapter's translator (`CopyDecoder`, a
# pointer-generator) writes each French word from a mixture: with probability $g$ it
# *generates* from its vocabulary of V words, with probability $1 - g$ it *copies* a
# memory row (a source word, or a word of the retrieved caption):
#
# $$p(w) = g\, p_{\text{vocab}}(w) + (1 - g) \sum_{m:\ s_m = w} \beta_m, \qquad
#   g = \sigma(\text{gate\_score}), \qquad p_{\text{vocab}} = \operatorname{softmax}(\text{logits}).$$
#
# Write `copy_mixture(logits, gate_score, beta, sources, pad=0)` for K decoder steps
# over a memory of M rows (all float tensors float32):
#
# * `logits` `(K, V)`: the generator's scores over the vocabulary;
# * `gate_score` `(K,)`: the gate before the sigmoid;
# * `beta` `(K, M)`: the copy attention's weights (0 on rows that are not words);
# * `sources` `(K, M)` long: the id of each memory row's word in the **extended
#   vocabulary** of size V + M (ids below V are vocabulary words; a source word the
#   vocabulary lacks gets an id ≥ V), and `pad` for rows that are not words (the
#   picture, padding). Two rows holding the same word have the same id.
#
# Return the probabilities `(K, V + M)`: $p_{\text{vocab}}(w)$ is 0 for the ids ≥ V, and
# the copy part of an id adds the weights of **every** row holding it. A step with no
# word row to copy (every `sources` entry is `pad`) only generates: $g = 1$ there.
# Use tensor operations (`torch.softmax`, `torch.sigmoid`, `scatter_add` …); do not
# call anything from `mmcourse`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def copy_mixture(logits, gate_score, beta, sources, pad=0):
    # BEGIN SOLUTION
    k, v = logits.shape
    words = sources != pad
    gate = torch.sigmoid(gate_score)
    gate = torch.where(words.any(-1), gate, torch.ones_like(gate))[:, None]
    generated = torch.cat([torch.softmax(logits, -1), logits.new_zeros(k, sources.shape[1])], 1)
    copied = torch.zeros_like(generated).scatter_add(1, sources, beta * words)
    return gate * generated + (1 - gate) * copied
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# V = 3 vocabulary words, M = 3 rows: word 2, an unknown source word (id V + 0 = 3), padding
_p = copy_mixture(torch.zeros(1, 3), torch.zeros(1), torch.tensor([[0.25, 0.75, 0.0]]),
                  torch.tensor([[2, 3, 0]]))
assert _p.shape == (1, 6), f"copy_mixture(...) with V = 3, M = 3: expected shape (1, 6), got {tuple(_p.shape)}"
_want = torch.tensor([[1 / 6, 1 / 6, 1 / 6 + 0.125, 0.375, 0.0, 0.0]])
assert torch.allclose(_p, _want, atol=1e-6), \
    f"g = σ(0) = 0.5, p_vocab = 1/3 each: expected {[round(x, 4) for x in _want[0].tolist()]}, got {[round(x, 4) for x in _p[0].tolist()]}"
_p = copy_mixture(torch.zeros(1, 3), torch.zeros(1), torch.zeros(1, 2), torch.tensor([[0, 0]]))
assert torch.allclose(_p, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]]), atol=1e-6), \
    f"with no word to copy the step only generates (g = 1): expected [1/3, 1/3, 1/3, 0, 0], got {_p[0].tolist()}"

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed
from mmcourse.tasks.translation import CopyDecoder

_g = torch.Generator().manual_seed(hidden_seed(9))
for _k, _m, _v, _d in ((1, 1, 5, 3), (4, 6, 9, 4), (8, 12, 30, 6), (5, 3, 4, 2)):
    torch.manual_seed(hidden_seed(90 + _k))
    _dec = CopyDecoder(_v, _d, embed_dim=5, hidden_dim=7, attention_dim=4, dropout=0.0).eval()
    _h = torch.randn(_k, 7, generator=_g)
    _memory = torch.randn(_k, _m, _d, generator=_g)
    _mask = torch.rand(_k, _m, generator=_g) < 0.8
    _mask[:, 0] = True
    _sources = torch.randint(4, _v + _m, (_k, _m), generator=_g)
    _sources[:, -1] = _sources[:, 0]                   # the same word twice
    _sources[torch.rand(_k, _m, generator=_g) < 0.2] = 0  # rows that are not words
    _sources[~_mask] = 0
    _sources[-1] = 0                                   # a step with nothing to copy
    _features = 3 * torch.randn(_k, 7 + _d + 5, generator=_g)
    _logits = 3 * torch.randn(_k, _v, generator=_g)
    with torch.no_grad():
        _beta = _dec.copy_attention(_h, _memory, (_sources != 0) & _mask)[1]
        _score = _dec.gate(_features)[:, 0]
        _want = _dec.copy_mixture(_logits, _features, _h, _memory, _mask, _sources, _m).exp()
    with forbidding("mmcourse.nn.seq2seq.AttentionDecoder.copy_mixture"):
        _got = copy_mixture(_logits, _score, _beta, _sources, 0)
    assert_same(_got, _want, rtol=1e-5, atol=1e-6, what="copy_mixture(...)")
# another pad id
_got = copy_mixture(torch.zeros(2, 2), torch.tensor([0.0, 5.0]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
                    torch.tensor([[3, 1], [1, 1]]), pad=1)
assert_same(_got, torch.tensor([[0.25, 0.25, 0.0, 0.5], [0.5, 0.5, 0.0, 0.0]]), atol=1e-6,
            what="copy_mixture(..., pad=1)")

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
# points: 2

# %% [markdown]
# **Q3 · Errors after a wrong word.** Teacher forcing trains every step on the *true*
# previous word; free running feeds the model its *own* previous word. Does a mistake
# make the next one more likely? Measure it with the toy decoder of Q2.
#
# Write `exposure_counts(table, targets, bos, eos)`. For every sentence `y` of `targets`
# (a list of lists of ints, each ending with `eos`, L tokens), run `free_running(table,
# bos, eos, L)` (your Q2 answer: it stops after `eos` or after L tokens) and call its
# output ŷ. Each position t of ŷ (0-based, t < len(ŷ)) is one step: it is an **error**
# when ŷ_t ≠ y_t; it comes **after a right word** when the word the model just read
# was the true one (t = 0, where both read `bos`, or ŷ_{t−1} = y_{t−1}), else **after a
# wrong word**. Also count the teacher-forced steps: at each of the L positions of every
# sentence, predict the most likely next word after the **true** previous word (`bos`
# first); an error when it differs from y_t.
#
# Return a dict of three `(errors, steps)` tuples of ints, summed over all sentences:
# `{"teacher forced": …, "after a right word": …, "after a wrong word": …}`.
#
# Then set `measured` to what your function returns for the toy table `toy_table` and
# the sentences `toy_targets` of the cell (a bigram model fitted by teacher forcing
# on a few French phrases). Compare the error rates: how much more often does the model
# err after its own mistake than after a right word?

# %% [raw]
# # BEGIN SOLUTION

# %%
def exposure_counts(table, targets, bos, eos):
    # BEGIN SOLUTION
    counts = {"teacher forced": [0, 0], "after a right word": [0, 0], "after a wrong word": [0, 0]}
    for y in targets:
        for previous, word in zip([bos] + list(y[:-1]), y):
            counts["teacher forced"][0] += int(torch.argmax(table[previous])) != word
            counts["teacher forced"][1] += 1
        out = free_running(table, bos, eos, len(y))
        for t, word in enumerate(out):
            key = "after a right word" if t == 0 or out[t - 1] == y[t - 1] else "after a wrong word"
            counts[key][0] += word != y[t]
            counts[key][1] += 1
    return {k: (int(e), int(n)) for k, (e, n) in counts.items()}
    # END SOLUTION


# tokens: 0 <bos>, 1 <eos>, 2 un, 3 une, 4 chat, 5 chien, 6 maison, 7 noir, 8 rouge, 9 petit
toy_corpus = [[2, 4, 7, 1], [2, 4, 1], [2, 9, 4, 7, 1], [2, 5, 7, 1], [3, 6, 8, 1],
              [3, 6, 1], [2, 9, 5, 1], [3, 6, 7, 1], [2, 4, 8, 1], [3, 9, 6, 8, 1]]
toy_counts = torch.full((10, 10), 0.1)
for _sentence in toy_corpus:
    for _a, _b in zip([0] + _sentence[:-1], _sentence):
        toy_counts[_a, _b] += 1
toy_table = torch.log(toy_counts / toy_counts.sum(1, keepdim=True))
toy_targets = [[3, 6, 7, 1], [2, 5, 1], [3, 9, 4, 8, 1], [2, 9, 6, 7, 1], [3, 5, 8, 1],
               [2, 4, 7, 1], [3, 6, 8, 1], [2, 5, 7, 1]]
measured = exposure_counts(toy_table, toy_targets, 0, 1)  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# the table of Q2's public test and the target "un chat": the model says "un chien"
_p = torch.tensor([[0.0, 0.0, 0.9, 0.05, 0.05], [0.0, 1.0, 0.0, 0.0, 0.0],
                   [0.0, 0.1, 0.0, 0.4, 0.5], [0.0, 0.9, 0.0, 0.05, 0.05],
                   [0.0, 0.9, 0.0, 0.05, 0.05]])
_got = exposure_counts(torch.log(_p.clamp(min=1e-9)), [[2, 3, 1]], 0, 1)
assert isinstance(_got, dict) and set(_got) == {"teacher forced", "after a right word", "after a wrong word"}, \
    f"exposure_counts should return a dict with three keys, got {_got!r}"
assert _got["teacher forced"] == (1, 3), f"teacher forced on [2, 3, 1]: 'chat' is missed, expected (1, 3), got {_got['teacher forced']}"
assert _got["after a right word"] == (1, 2), f"after a right word: 'un' right, 'chien' wrong, expected (1, 2), got {_got['after a right word']}"
assert _got["after a wrong word"] == (0, 1), f"after 'chien' the model writes <eos>, which is right: expected (0, 1), got {_got['after a wrong word']}"
assert isinstance(measured, dict) and set(measured) == set(_got), "measured should be what exposure_counts returns"

# %%
# HIDDEN
def _reference_counts(table, targets, bos, eos):
    counts = {"teacher forced": [0, 0], "after a right word": [0, 0], "after a wrong word": [0, 0]}
    for y in targets:
        for a, b in zip([bos] + list(y[:-1]), y):
            counts["teacher forced"][0] += int(torch.argmax(table[a])) != b
            counts["teacher forced"][1] += 1
        out, tok = [], bos
        while len(out) < len(y):
            tok = int(torch.argmax(table[tok]))
            out.append(tok)
            if tok == eos:
                break
        for t, w in enumerate(out):
            key = "after a right word" if t == 0 or out[t - 1] == y[t - 1] else "after a wrong word"
            counts[key][0] += w != y[t]
            counts[key][1] += 1
    return {k: (int(e), int(n)) for k, (e, n) in counts.items()}


_g = torch.Generator().manual_seed(hidden_seed(33))
for _v in (3, 5, 8, 12):
    for _ in range(4):
        _table = torch.log_softmax(2 * torch.randn(_v, _v, generator=_g, dtype=torch.float64), -1)
        _targets = [torch.randint(2, _v, (int(torch.randint(0, 6, (1,), generator=_g)),),
                                  generator=_g).tolist() + [1] for _ in range(6)]
        _targets.append([int(torch.argmax(_table[0]))] + _targets[0])  # a right first word
        assert_same(exposure_counts(_table, _targets, 0, 1), _reference_counts(_table, _targets, 0, 1),
                    what=f"exposure_counts(V={_v})")
_counts = torch.full((10, 10), 0.1)
for _sentence in [[2, 4, 7, 1], [2, 4, 1], [2, 9, 4, 7, 1], [2, 5, 7, 1], [3, 6, 8, 1],
                  [3, 6, 1], [2, 9, 5, 1], [3, 6, 7, 1], [2, 4, 8, 1], [3, 9, 6, 8, 1]]:
    for _before, _after in zip([0] + _sentence[:-1], _sentence):
        _counts[_before, _after] += 1
_want = _reference_counts(torch.log(_counts / _counts.sum(1, keepdim=True)),
                          [[3, 6, 7, 1], [2, 5, 1], [3, 9, 4, 8, 1], [2, 9, 6, 7, 1], [3, 5, 8, 1],
                           [2, 4, 7, 1], [3, 6, 8, 1], [2, 5, 7, 1]], 0, 1)
assert_same(measured, _want, what="measured")

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
