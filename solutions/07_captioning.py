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
# You will write one step of additive attention, one step of beam search, BLEU's
# clipped n-gram counts and brevity penalty (checked against `sacrebleu`), the part
# scores that show where the captioner trails retrieval, and the padded, label-smoothed
# loss it is trained with.

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
# name: q4_part_scores
# points: 2

# %% [markdown]
# **Q4 · Where the gap comes from.** In section 5 of the chapter the `full` captioner
# scores below nearest-neighbour retrieval on BLEU and chrF, and its *part scores* say
# which words it misses. Compute them yourself. A caption is a list of lowercase tokens;
# its **words** are the tokens with at least one letter or digit (`"."` is not one).
# Given the set `template` of template words, a reference caption splits into:
#
# * its template words (the words in `template`);
# * its **object word**: the last word that is not a template word (none if there is
#   no such word);
# * its **attributes**: the other words that are not template words ("red" in
#   `["a", "red", "apple", "."]`).
#
# Write `part_recall(hyps, refs, template)` for lists of token lists (one reference per
# hypothesis). Return a dict with the keys `"template words"`, `"object word"` and
# `"attributes"`, each a float in % (0–100): for the template words and the attributes,
# the share of the references' tokens of that part that their hypothesis holds, counted
# with multiplicity (a word needed twice is found at most as often as the hypothesis
# has it), summed over the corpus; for the object word, the share of the references that
# have one whose hypothesis holds it. Every part occurs in some reference.
#
# Then set `gap` to `{part: captioner − retrieval}` for the three parts, computed with
# your function on the captions `references`, `retrieved` and `generated` of the cell
# (captions of held-out stamps in the style of the chapter's). Which parts does the
# captioner recover less often — and which of them need the picture to be recognised?

# %% [raw]
# # BEGIN SOLUTION

# %%
def part_recall(hyps, refs, template):
    # BEGIN SOLUTION
    found = {"template words": [0, 0], "object word": [0, 0], "attributes": [0, 0]}
    for hyp, ref in zip(hyps, refs):
        have = Counter(hyp)
        words = [t for t in ref if any(c.isalnum() for c in t)]
        content = [t for t in words if t not in template]
        parts = {"template words": [t for t in words if t in template],
                 "object word": content[-1:], "attributes": content[:-1]}
        for key, need in parts.items():
            need = Counter(need)
            found[key][0] += sum(min(n, have[w]) for w, n in need.items())
            found[key][1] += sum(need.values())
    return {k: 100.0 * a / b for k, (a, b) in found.items()}
    # END SOLUTION


template = {"a", "the", "letter", "sign", "in", "of", "and", "with", "for", "on"}
references = ["a red apple .", "the letter b in sign language .", "a small brown dog .",
              "a yellow and black bee .", "the sign for house .", "a green frog on a leaf .",
              "a blue whale .", "the letter k ."]
retrieved = ["a red apple .", "the letter d in sign language .", "a brown horse .",
             "a yellow bee on a flower .", "the sign for tree .", "a green frog .",
             "a grey whale .", "the letter k ."]
generated = ["a red fruit .", "the letter a in sign language .", "a dog .",
             "a black bird .", "the sign for the .", "a green bird on a leaf .",
             "a fish .", "the letter e ."]
captioner = part_recall([h.split() for h in generated], [r.split() for r in references], template)  # SOLUTION
retrieval = part_recall([h.split() for h in retrieved], [r.split() for r in references], template)  # SOLUTION
gap = {k: captioner[k] - retrieval[k] for k in captioner}  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_got = part_recall([["a", "red", "pear", "."]], [["a", "red", "apple", "."]], {"a"})
assert isinstance(_got, dict) and set(_got) == {"template words", "object word", "attributes"}, \
    f"part_recall should return a dict with the three parts as keys, got {_got!r}"
assert _got == {"template words": 100.0, "object word": 0.0, "attributes": 100.0}, \
    f"'a red pear .' for 'a red apple .': 'a' found, 'apple' missed, 'red' found; got {_got}"
_got = part_recall([["the", "cat", "."], ["a", "dog", "dog", "."]],
                   [["the", "the", "cat", "."], ["a", "big", "dog", "."]], {"a", "the"})
assert abs(_got["template words"] - 200 / 3) < 1e-9, \
    f"'the' is needed twice and found once, 'a' once: template words should be 66.67, got {_got['template words']}"
assert isinstance(gap, dict) and set(gap) == set(_got), "gap should be a dict with the three parts as keys"

# %%
# HIDDEN
from mmcourse.tasks.captioning import part_scores


class _Words:
    """A tokenizer for part_scores: the caption's tokens are its space-separated parts."""
    def split(self, text):
        return text.split()


import random as _random

_rng = _random.Random(hidden_seed(44))
_vocab = ["a", "the", "of", "red", "big", "cat", "dog", "sign", "hat", "b", "7", "."]
for _trial in range(20):
    _template = set(_rng.sample(_vocab[:8], _rng.randint(1, 4)))
    while True:
        _refs = [[_rng.choice(_vocab) for _ in range(_rng.randint(1, 7))] for _ in range(_rng.randint(1, 6))]
        _hyps = [[_rng.choice(_vocab) for _ in range(_rng.randint(0, 7))] for _ in _refs]
        _want = part_scores([" ".join(h) for h in _hyps], [" ".join(r) for r in _refs], _template, _Words())
        if all(v == v for v in _want.values()):  # every part occurs
            break
    assert_same(part_recall(_hyps, _refs, _template), _want, rtol=1e-9, what=f"part_recall (trial {_trial})")
_template = set("a the letter sign in of and with for on".split())
_refs = ("a red apple .|the letter b in sign language .|a small brown dog .|a yellow and black bee .|"
         "the sign for house .|a green frog on a leaf .|a blue whale .|the letter k .").split("|")
_scores = {name: part_scores(hyps.split("|"), _refs, _template, _Words()) for name, hyps in (
    ("retrieved", "a red apple .|the letter d in sign language .|a brown horse .|a yellow bee on a "
                  "flower .|the sign for tree .|a green frog .|a grey whale .|the letter k ."),
    ("generated", "a red fruit .|the letter a in sign language .|a dog .|a black bird .|the sign "
                  "for the .|a green bird on a leaf .|a fish .|the letter e ."))}
assert_same(gap, {k: _scores["generated"][k] - _scores["retrieved"][k] for k in _scores["generated"]},
            rtol=1e-9, atol=1e-9, what="gap")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_masked_loss
# points: 3

# %% [markdown]
# **Q5 · The training loss.** The captioner is trained on batches of captions padded to
# the longest one: `targets` `(B, T)` holds `pad` after a caption's `<eos>`, and those
# positions must not count. Its loss is the token cross-entropy with **label
# smoothing** ε (the chapter's recipe uses ε = 0.1): the true token gets weight
# 1 − ε + ε/V and every one of the V tokens (the true one included) ε/V, so that the
# model is not pushed towards certainty. For one position with log-probabilities
# $\log p = \operatorname{log\_softmax}(\text{logits})$ and true token $y$:
#
# $$\ell = (1 - \varepsilon)\,(-\log p_y) + \frac{\varepsilon}{V} \sum_{c=1}^{V} (-\log p_c).$$
#
# Write `masked_token_loss(logits, targets, pad, smoothing)`: `logits` `(B, T, V)`
# float, `targets` `(B, T)` long. Return the mean of ℓ over the N positions whose target
# is not `pad` (a 0-d tensor of the logits' dtype). Every batch has at least one real
# token. Do not call `torch.nn.functional.cross_entropy`, `nll_loss` or `mmcourse`
# (`torch.log_softmax` is allowed).

# %% [raw]
# # BEGIN SOLUTION

# %%
def masked_token_loss(logits, targets, pad, smoothing):
    # BEGIN SOLUTION
    real = targets != pad
    log_p = torch.log_softmax(logits, -1)
    nll = -log_p.gather(-1, targets.masked_fill(~real, 0)[..., None])[..., 0]
    loss = (1 - smoothing) * nll + smoothing * -log_p.mean(-1)
    return loss[real].sum() / real.sum()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# V = 2 tokens, equal logits: -log p = log 2 at every position, whatever the smoothing
_logits = torch.zeros(1, 3, 2, dtype=torch.float64)
_loss = masked_token_loss(_logits, torch.tensor([[1, 1, 0]]), pad=0, smoothing=0.1)
assert isinstance(_loss, torch.Tensor) and _loss.shape == (), \
    f"masked_token_loss should return a 0-d tensor, got {_loss!r}"
assert abs(float(_loss) - math.log(2)) < 1e-9, f"expected log 2 = 0.6931, got {float(_loss):.4f}"
# one real token, one padded: only the first counts
_logits = torch.tensor([[[math.log(3), 0.0], [0.0, 5.0]]], dtype=torch.float64)  # p = (3/4, 1/4) at t = 0
_loss = masked_token_loss(_logits, torch.tensor([[0, 2]]), pad=2, smoothing=0.0)
assert abs(float(_loss) - math.log(4 / 3)) < 1e-9, \
    f"the padded position must not count: expected -log(3/4) = 0.2877, got {float(_loss):.4f}"
_loss = masked_token_loss(_logits, torch.tensor([[0, 2]]), pad=2, smoothing=0.2)
_want = 0.8 * math.log(4 / 3) + 0.1 * (math.log(4 / 3) + math.log(4))
assert abs(float(_loss) - _want) < 1e-9, f"with smoothing 0.2: expected {_want:.4f}, got {float(_loss):.4f}"

# %%
# HIDDEN
from mmcourse.nn.seq2seq import sequence_loss

_g = torch.Generator().manual_seed(hidden_seed(11))
for _b, _t, _v, _eps, _pad in ((1, 1, 2, 0.0, 0), (2, 5, 7, 0.1, 0), (4, 9, 30, 0.25, 3),
                               (8, 12, 50, 0.1, 0), (3, 6, 5, 0.5, 4)):
    _logits = 4 * torch.randn(_b, _t, _v, generator=_g, dtype=torch.float64)
    _targets = torch.randint(0, _v, (_b, _t), generator=_g)
    _lengths = torch.randint(1, _t + 1, (_b,), generator=_g)
    _targets[torch.arange(_t)[None, :] >= _lengths[:, None]] = _pad
    _targets[0, 0] = (_pad + 1) % _v
    _want = sequence_loss(_logits, _targets, pad=_pad, label_smoothing=_eps)
    with forbidding("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss",
                    "mmcourse.nn.seq2seq.sequence_loss"):
        _got = masked_token_loss(_logits, _targets, _pad, _eps)
    assert_same(_got, _want, rtol=1e-9, atol=1e-12, what=f"masked_token_loss(B={_b}, T={_t}, V={_v})")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
