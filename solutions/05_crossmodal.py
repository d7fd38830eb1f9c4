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
# name: 05_crossmodal
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/05_crossmodal.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/05_crossmodal.ipynb)
#
# # Exercise 05 · Cross-modal learning
#
# Companion to `notebooks/05_crossmodal.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# You will build the pieces of contrastive and adversarial alignment yourself: the
# symmetric InfoNCE loss, the recall@k retrieval metric and a gradient-reversal layer,
# then read off what their values mean, and finish with SimCLR's self-supervised NT-Xent
# loss between two augmented views.

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
grader = Notebook("05_crossmodal.ipynb")

# %%
import math

import torch
from torch.nn import functional as F

from mmcourse import data
from mmcourse.nn import crossmodal
from mmcourse.training import metrics

stamps = data.load_stamps()
splits = data.split_stamps(stamps)  # {"train", "val", "test"}: lists of stamps

# %% [raw]
# # BEGIN QUESTION
# name: q1_info_nce
# points: 3

# %% [markdown]
# **Q1 · Symmetric InfoNCE.** Write `info_nce_loss(a, b, temperature=0.07)` for two
# float tensors `a` and `b` of shape `(N, D)` whose rows are paired (row `i` of `a` goes
# with row `i` of `b`); `temperature` τ is a Python float or a scalar tensor.
#
# 1. L2-normalise every row of `a` and of `b` (`F.normalize(x, dim=-1)` is allowed);
# 2. form the logits `s = â b̂ᵀ / τ`, shape `(N, N)`;
# 3. the loss is the mean of two cross-entropies with target `i` for row/column `i`:
#    `L_a→b = −(1/N) Σ_i log softmax_j(s_ij)[j=i]` (over each row) and
#    `L_b→a = −(1/N) Σ_j log softmax_i(s_ij)[i=j]` (over each column);
#    return `(L_a→b + L_b→a) / 2` as a scalar tensor.
#
# Write the cross-entropies yourself (with `torch.logsumexp`, say): do **not** call
# `F.cross_entropy`, `F.log_softmax` or anything from `mmcourse.nn.crossmodal`. The result
# must keep the dtype of the inputs and be differentiable with respect to `a`, `b` and
# a tensor `temperature`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def info_nce_loss(a, b, temperature=0.07):
    # BEGIN SOLUTION
    a = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    logits = a @ b.T / temperature
    diag = logits.diagonal()
    rows = (torch.logsumexp(logits, dim=1) - diag).mean()
    cols = (torch.logsumexp(logits, dim=0) - diag).mean()
    return (rows + cols) / 2
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_a = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]])
_b = torch.tensor([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]])
_l = info_nce_loss(_a, _b, 1.0)
assert torch.is_tensor(_l) and _l.dim() == 0
assert abs(float(_l) - 1.149098) < 1e-4
assert abs(float(info_nce_loss(_a, _b, 0.5)) - 1.339242) < 1e-4

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_g = torch.Generator().manual_seed(hidden_seed(5))
for _n, _d in ((1, 3), (2, 2), (7, 5), (33, 16), (64, 300)):
    for _tau in (0.05, 0.3, 1.0, 2.0):
        _a = torch.randn(_n, _d, generator=_g, dtype=torch.float64)
        _b = torch.randn(_n, _d, generator=_g, dtype=torch.float64) * 4
        _got = info_nce_loss(_a, _b, _tau)
        _want = crossmodal.info_nce(_a, _b, _tau)
        assert_same(_got, _want, values=False)
        assert abs(float(_got - _want)) <= 1e-9 * max(1.0, abs(float(_want))), (_n, _d, _tau)
# asymmetric pairs: both directions must be there
_a = torch.randn(9, 4, generator=_g, dtype=torch.float64)
_b = _a[torch.randperm(9, generator=_g)] + 0.3 * torch.randn(9, 4, generator=_g, dtype=torch.float64)
_logits = torch.nn.functional.normalize(_a, dim=-1) @ torch.nn.functional.normalize(_b, dim=-1).T / 0.2
_t = torch.arange(9)
assert abs(float(info_nce_loss(_a, _b, 0.2)) - float(torch.nn.functional.cross_entropy(_logits, _t)
           + torch.nn.functional.cross_entropy(_logits.T, _t)) / 2) < 1e-9
# float32 works too
_a32, _b32 = torch.randn(12, 8, generator=_g), torch.randn(12, 8, generator=_g)
_r32, _want32 = info_nce_loss(_a32, _b32, 0.07), crossmodal.info_nce(_a32, _b32, 0.07)
assert_same(_r32, _want32, values=False)
assert abs(float(_r32) - float(_want32)) < 1e-4

# %%
# HIDDEN
# gradients with respect to a, b and a learned temperature match the reference
_g = torch.Generator().manual_seed(hidden_seed(11))
for _n, _d in ((5, 3), (16, 10)):
    _a0 = torch.randn(_n, _d, generator=_g, dtype=torch.float64)
    _b0 = torch.randn(_n, _d, generator=_g, dtype=torch.float64)
    _grads = []
    for _fn in (info_nce_loss, crossmodal.info_nce):
        _a = _a0.clone().requires_grad_(True)
        _b = _b0.clone().requires_grad_(True)
        _tau = torch.tensor(0.15, dtype=torch.float64, requires_grad=True)
        _fn(_a, _b, _tau).backward()
        _grads.append((_a.grad, _b.grad, _tau.grad))
    for _x, _y in zip(*_grads):
        assert _x is not None
        _rel = float((_x - _y).abs().max() / _y.abs().max().clamp(min=1e-12))
        assert _rel < 1e-8, _rel

# %%
# HIDDEN
# written from scratch: no library cross-entropy, no mmcourse.nn.crossmodal
_g = torch.Generator().manual_seed(hidden_seed(2))
_a, _b = torch.randn(6, 4, generator=_g), torch.randn(6, 4, generator=_g)
_want = float(crossmodal.info_nce(_a, _b, 0.1))
# write the cross-entropy yourself (torch.logsumexp), without these:
with forbidding("torch.nn.functional.cross_entropy", "torch.nn.functional.log_softmax",
                "mmcourse.nn.crossmodal.info_nce", "mmcourse.nn.crossmodal.symmetric_cross_entropy"):
    _got = float(info_nce_loss(_a, _b, 0.1))
assert abs(_got - _want) < 1e-4

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_recall
# points: 2

# %% [markdown]
# **Q2 · Recall@k.** Write `recall_at_k(queries, keys, ks=(1, 5, 10))` for paired float
# tensors `queries` `(N, D)` and `keys` `(N, D)`: query `i`'s correct key is key `i`.
# Score every query against every key by cosine similarity. The *rank* of query `i` is
# the number of keys that are **strictly** more similar to it than its own key (0 =
# best; ties count in the query's favour). Query `i` is a hit at `k` when its rank is
# below `k`. Return a dict `{k: recall}` with one entry per `k` in `ks` (in that
# order), each recall the share of hits as a Python `float`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def recall_at_k(queries, keys, ks=(1, 5, 10)):
    # BEGIN SOLUTION
    q = F.normalize(queries.float(), dim=-1)
    k_ = F.normalize(keys.float(), dim=-1)
    sims = q @ k_.T
    rank = (sims > sims.diagonal()[:, None]).sum(dim=1)
    return {k: float((rank < k).float().mean()) for k in ks}
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
_k = torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, 1.2]])
_r = recall_at_k(_q, _k, ks=(1, 2, 3))
assert list(_r) == [1, 2, 3]
assert all(abs(_r[_kk] - _v) < 1e-6 for _kk, _v in zip((1, 2, 3), (1 / 3, 2 / 3, 1.0)))
assert recall_at_k(_q, _q) == {1: 1.0, 5: 1.0, 10: 1.0}

# %%
# HIDDEN
def _same(_got, _want):
    assert list(_got) == list(_want), (_got, _want)
    assert all(isinstance(_v, float) for _v in _got.values()), _got
    assert all(abs(_got[_kk] - _want[_kk]) < 1e-6 for _kk in _want), (_got, _want)


_g = torch.Generator().manual_seed(hidden_seed(7))
for _n, _d, _noise in ((10, 4, 0.5), (50, 16, 1.0), (143, 32, 1.5), (300, 8, 0.8)):
    _q = torch.randn(_n, _d, generator=_g)
    _k = _q + _noise * torch.randn(_n, _d, generator=_g)
    _ks = (10, 1, 3, 5, 50)
    _same(recall_at_k(_q, _k, ks=_ks), metrics.recall_at_k(_q, _k, ks=_ks))
    # not symmetric: the other direction is another answer
    _same(recall_at_k(_k, _q, ks=_ks), metrics.recall_at_k(_k, _q, ks=_ks))
# default ks, and similarity is cosine (the scale of a row does not matter)
_q, _k = torch.randn(40, 6, generator=_g), torch.randn(40, 6, generator=_g)
_scale = torch.rand(40, 1, generator=_g) * 10 + 0.1
_same(recall_at_k(_q, _k), metrics.recall_at_k(_q, _k))
_same(recall_at_k(_q * _scale, _k / _scale), metrics.recall_at_k(_q, _k))

# %%
# HIDDEN
# ties count in the query's favour; k larger than N; a cyclic shift never hits at 1
_q = torch.randn(8, 5, generator=torch.Generator().manual_seed(hidden_seed(1)))
_r = recall_at_k(_q, torch.ones(8, 5), ks=(1,))
assert abs(_r[1] - 1.0) < 1e-6, _r
_dup = _q[[0, 0, 2, 2, 4, 4, 6, 6]]
_r, _w = recall_at_k(_q, _dup, ks=(1, 2)), metrics.recall_at_k(_q, _dup, ks=(1, 2))
assert all(abs(_r[_kk] - _w[_kk]) < 1e-6 for _kk in (1, 2)), (_r, _w)
_r = recall_at_k(_q, _q[torch.roll(torch.arange(8), 1)], ks=(1, 20))
assert abs(_r[1]) < 1e-6 and abs(_r[20] - 1.0) < 1e-6, _r
_r = recall_at_k(_q.double(), _q.double(), ks=(1,))
assert abs(_r[1] - 1.0) < 1e-6, _r

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_reverse_grad
# points: 2

# %% [markdown]
# **Q3 · Gradient reversal.** Complete the autograd function `ReverseGrad` so that
# `ReverseGrad.apply(x, strength)` returns a tensor equal to `x` (same shape, dtype and
# values, without changing `x` in place) on the forward pass, and on the backward pass
# turns the incoming gradient `g` into `−strength · g` for `x` (and no gradient, `None`,
# for the float `strength`). Store what `backward` needs on `ctx`.

# %% [raw]
# # BEGIN SOLUTION

# %%
class ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, strength):
        # BEGIN SOLUTION
        ctx.strength = strength
        return x.view_as(x)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION
        return -ctx.strength * grad, None
        # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
_y = ReverseGrad.apply(_x, 1.0)
assert torch.equal(_y, _x)
_y.sum().backward()
assert _x.grad.tolist() == [-1.0, -1.0, -1.0]

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(4))
for _shape, _strength in (((5,), 0.5), ((3, 4), 2.5), ((2, 3, 6), 0.0), ((7, 2), 1.0)):
    _x0 = torch.randn(*_shape, generator=_g, dtype=torch.float64)
    _x = _x0.clone().requires_grad_(True)
    _y = ReverseGrad.apply(_x, _strength)
    assert_same(_y, _x0, rtol=0, atol=0, what=f"ReverseGrad.apply on {_shape}")
    assert torch.equal(_x.detach(), _x0)
    _up = torch.randn(*_shape, generator=_g, dtype=torch.float64)
    _y.backward(_up)
    assert_same(_x.grad, -_strength * _up, rtol=0, atol=1e-12, what="gradient")

# %%
# HIDDEN
# inside a network: the layers below receive the reversed gradient, the layers above
# the ordinary one, exactly as with mmcourse's GradientReversal
_ = torch.manual_seed(hidden_seed(0))
_enc, _disc = torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)
_inp, _lab = torch.randn(10, 6), torch.randint(0, 2, (10,))
_res = []
for _layer in (lambda h: ReverseGrad.apply(h, 0.7), crossmodal.GradientReversal(0.7)):
    _enc.zero_grad()
    _disc.zero_grad()
    torch.nn.functional.cross_entropy(_disc(_layer(_enc(_inp))), _lab).backward()
    _res.append([p.grad.clone() for p in (*_enc.parameters(), *_disc.parameters())])
for _p, _q in zip(*_res):
    assert torch.allclose(_p, _q, atol=1e-7)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_loss_values
# points: 2

# %% [markdown]
# **Q4 · Reading an InfoNCE value.** A batch holds `N = 64` pairs and the temperature is
# `τ = 0.5`. Set `loss_random` to the InfoNCE loss you expect when the two modalities'
# embeddings are independent random vectors in a very high-dimensional space (untrained
# encoders), and `loss_aligned` to the loss when the pairs are perfectly aligned: `a = b`
# and the 64 rows are orthonormal (for instance `torch.eye(64)`). Both are Python
# floats. You may work them out by hand or compute them with your `info_nce_loss`.
# Ask yourself why `loss_aligned` is not 0.

# %% [raw]
# # BEGIN SOLUTION

# %%
loss_random = math.log(64)  # SOLUTION
loss_aligned = math.log(1 + 63 * math.exp(-1 / 0.5))  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert isinstance(loss_random, float) and isinstance(loss_aligned, float)
assert 0 < loss_aligned < loss_random < 10

# %%
# HIDDEN
assert abs(loss_random - math.log(64)) < 0.02
assert abs(loss_aligned - math.log(1 + 63 * math.exp(-2.0))) < 1e-3

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_chance
# points: 1

# %% [markdown]
# **Q5 · Chance level of retrieval.** The chapter evaluates image→caption retrieval on
# the held-out test stamps `splits["test"]`: each picture's own caption must be found
# among the captions of all the test stamps. Set `chance_r1` and `chance_r5` to the
# recall@1 and recall@5 that a model ranking the captions at random achieves on average
# (as fractions, not percent), and `times_chance` to how many times better than chance a
# model with image→caption recall@1 = 0.30 is.

# %% [raw]
# # BEGIN SOLUTION

# %%
n_test = len(splits["test"])  # SOLUTION
chance_r1 = 1 / n_test  # SOLUTION
chance_r5 = 5 / n_test  # SOLUTION
times_chance = 0.30 / chance_r1  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert 0 < chance_r1 < chance_r5 < 0.5
assert times_chance > 1

# %%
# HIDDEN
_n = len(data.split_stamps(data.load_stamps())["test"])
assert abs(chance_r1 - 1 / _n) < 1e-6
assert abs(chance_r5 - 5 / _n) < 1e-6
assert abs(times_chance - 0.30 * _n) < 0.05

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6_nt_xent
# points: 2

# %% [markdown]
# **Q6 · Self-supervision within one modality: NT-Xent.** The chapter pretrains without
# labels by pairing a picture with its spoken digit (InfoNCE across modalities, Q1).
# SimCLR does the same with **two augmented views of one modality**: `a` and `b` `(N, D)`
# are the embeddings of two random augmentations of the same N samples. Its loss,
# NT-Xent (normalised temperature-scaled cross-entropy), puts all 2N views in one batch:
#
# 1. stack `z = [a; b]` `(2N, D)` and L2-normalise every row;
# 2. form the logits `s = z zᵀ / τ` `(2N, 2N)` and remove each view's similarity with
#    itself (set the diagonal to −∞);
# 3. view `k < N` has its partner at `k + N` and view `k ≥ N` at `k − N`; every other
#    view, of either half, is a negative. The loss is the mean over the 2N views of
#    `−log softmax(s_k)[partner(k)]`.
#
# Write `nt_xent_loss(a, b, temperature=0.5)`, returning a scalar tensor with the inputs'
# dtype, differentiable in `a` and `b`. As in Q1 write the cross-entropy yourself: no
# `F.cross_entropy`, `F.log_softmax` or `mmcourse.nn.crossmodal`. With one sample (N = 1) a
# view's only candidate is its partner and the loss is 0.

# %% [raw]
# # BEGIN SOLUTION

# %%
def nt_xent_loss(a, b, temperature=0.5):
    # BEGIN SOLUTION
    n = a.shape[0]
    z = torch.cat([a, b])
    z = z / z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    positive = logits[torch.arange(2 * n), partner]
    return (torch.logsumexp(logits, dim=1) - positive).mean()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_a = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]])
_b = torch.tensor([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]])
_l = nt_xent_loss(_a, _b, 1.0)
assert torch.is_tensor(_l) and _l.dim() == 0
assert abs(float(_l) - 1.815332) < 1e-4
assert abs(float(nt_xent_loss(_a, _b, 0.5)) - 2.169805) < 1e-4
assert abs(float(nt_xent_loss(_a[:1], _b[:1], 0.3))) < 1e-6

# %%
# HIDDEN
def _nt_xent_reference(a, b, tau):
    _n = a.shape[0]
    _z = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    _s = (_z @ _z.T / tau).masked_fill(torch.eye(2 * _n, dtype=torch.bool), float("-inf"))
    _t = torch.cat([torch.arange(_n, 2 * _n), torch.arange(_n)])
    return torch.nn.functional.cross_entropy(_s, _t)


_NO_CE = ("torch.nn.functional.cross_entropy", "torch.nn.functional.log_softmax",
          "torch.nn.functional.nll_loss", "mmcourse.nn.crossmodal.info_nce",
          "mmcourse.nn.crossmodal.symmetric_cross_entropy")
_g = torch.Generator().manual_seed(hidden_seed(17))
for _n, _d in ((1, 4), (2, 3), (8, 5), (40, 32)):
    for _tau in (0.1, 0.5, 2.0):
        _a = torch.randn(_n, _d, generator=_g, dtype=torch.float64)
        _b = _a + 0.5 * torch.randn(_n, _d, generator=_g, dtype=torch.float64)
        with forbidding(*_NO_CE):
            _got = nt_xent_loss(_a, _b * 3, _tau)
        _want = _nt_xent_reference(_a, _b * 3, _tau)
        assert_same(_got, _want, values=False)
        assert abs(float(_got - _want)) <= 1e-9 * max(1.0, abs(float(_want))), (_n, _d, _tau)
# not InfoNCE: the negatives include the other views of the same half
_a = torch.randn(6, 3, generator=_g, dtype=torch.float64)
_b = torch.randn(6, 3, generator=_g, dtype=torch.float64)
assert abs(float(nt_xent_loss(_a, _b, 0.5)) - float(crossmodal.info_nce(_a, _b, 0.5))) > 1e-3
# gradients with respect to both views
_a0 = torch.randn(7, 5, generator=_g, dtype=torch.float64)
_b0 = torch.randn(7, 5, generator=_g, dtype=torch.float64)
_grads = []
for _fn in (nt_xent_loss, _nt_xent_reference):
    _a, _b = _a0.clone().requires_grad_(True), _b0.clone().requires_grad_(True)
    _fn(_a, _b, 0.2).backward()
    _grads.append((_a.grad, _b.grad))
for _x, _y in zip(*_grads):
    assert _x is not None and float((_x - _y).abs().max()) < 1e-8 * max(1.0, float(_y.abs().max()))
# float32 in, float32 out
_a32, _b32 = torch.randn(10, 6, generator=_g), torch.randn(10, 6, generator=_g)
_r32, _want32 = nt_xent_loss(_a32, _b32, 0.5), _nt_xent_reference(_a32, _b32, 0.5)
assert_same(_r32, _want32, values=False)
assert abs(float(_r32) - float(_want32)) < 1e-4

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
