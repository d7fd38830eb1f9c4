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
# name: 04_fusion
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/04_fusion.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/04_fusion.ipynb)
#
# # Exercise 04 · Cross-modal fusion
#
# Companion to `notebooks/04_fusion.ipynb`. Write the code where you see `...`, then run
# the `grader.check(...)` cell below it. Hidden tests grade more cases than the public
# ones. Do not delete or reorder cells.
#
# **What you may import.** `torch`, `numpy`, scikit-learn, `mmcourse.data` and
# `mmcourse.nn.fusion.presence_mask` are yours to use. The fusion classes of
# `mmcourse.nn.fusion` — `WeightedSum`, `GatedSum`, `ProductFusion`, `ConvFusion`,
# `TensorFusion`, `LowRankFusion`, `LateFusion`, `AttentionFusion` and `make_fusion` — are
# the answers: the hidden tests compare your functions with them and refuse them while
# your functions run, so do not import them (and do not call `F.conv1d` or `nn.Conv1d`
# in Q6).

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
grader = Notebook("04_fusion.ipynb")

# %%
import numpy as np
import torch

from mmcourse import data

# %% [raw]
# # BEGIN QUESTION
# name: q1_weighted_sum
# points: 2

# %% [markdown]
# **Q1 · The weighted sum, with missing modalities.** Write
# `weighted_sum(z, weights, present=None)`. `z` maps each modality name to projected
# embeddings of shape `(N, d)`; `weights` maps the same names to non-negative numbers
# (α, β, γ); `present` is `None` (all present) or a bool tensor `(N, M)` whose columns
# follow the order of `z`'s keys. Return `F` of shape `(N, d)`: for each sample, the
# weighted sum over its present modalities with the weights renormalised to sum to 1
# over those modalities.

# %% [raw]
# # BEGIN SOLUTION

# %%
def weighted_sum(z, weights, present=None):
    # BEGIN SOLUTION
    names = list(z)
    stacked = torch.stack([z[m] for m in names], dim=1)  # (N, M, d)
    w = torch.tensor([float(weights[m]) for m in names]).expand(stacked.shape[0], -1)
    if present is not None:
        w = w * present.float()
    w = w / w.sum(dim=1, keepdim=True)
    return (w.unsqueeze(-1) * stacked).sum(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_z = {"image": torch.ones(2, 3), "text": torch.zeros(2, 3)}
_out = weighted_sum(_z, {"image": 1, "text": 3})
assert _out.shape == (2, 3)
assert torch.allclose(_out, torch.full((2, 3), 0.25))
_out = weighted_sum(_z, {"image": 1, "text": 1}, torch.tensor([[True, True], [False, True]]))
assert _out.shape == (2, 3)
assert torch.allclose(_out[1], torch.zeros(3))

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed
from mmcourse.nn.fusion import WeightedSum

# the course's fusion classes are the answers: refused while an answer runs
_ANSWERS = ("mmcourse.nn.fusion.Fusion.forward", "mmcourse.nn.fusion.WeightedSum.sample_weights",
            "mmcourse.nn.fusion.GatedSum.sample_weights", "mmcourse.nn.fusion._Mixture.fuse",
            "mmcourse.nn.fusion.ProductFusion.fuse", "mmcourse.nn.fusion.ConvFusion.fuse",
            "mmcourse.nn.fusion.TensorFusion.fuse", "mmcourse.nn.fusion.LateFusion.fuse",
            "mmcourse.nn.fusion.LateFusion.per_modality", "mmcourse.nn.fusion.make_fusion")
_ = torch.manual_seed(hidden_seed(0))
_dims = {"image": 6, "text": 5, "audio": 4}
_w = {"image": 0.5, "text": 0.2, "audio": 0.3}
_ref = WeightedSum(_dims, dim=7, weights=_w)
_emb = {m: torch.randn(9, d) for m, d in _dims.items()}
_proj = {m: _ref.project[m](_emb[m]).detach() for m in _dims}
_present = torch.rand(9, 3) > 0.4
_present[:, 2] |= ~_present.any(dim=1)
with forbidding(*_ANSWERS):
    _got_all, _got_some = weighted_sum(_proj, _w), weighted_sum(_proj, _w, _present)
assert_same(_got_all, _ref(_emb), atol=1e-5, what="weighted_sum(z, weights)")
assert_same(_got_some, _ref(_emb, _present), atol=1e-5, what="weighted_sum(z, weights, present)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_masked_softmax
# points: 1

# %% [markdown]
# **Q2 · Learned weights.** Learned fusion weights are `softmax(θ)`. Write
# `masked_softmax(theta, present)` for `theta` of shape `(M,)` and a bool `present` of
# shape `(N, M)`: return `(N, M)` weights that are 0 where a modality is missing and
# sum to 1 over the present ones in each row (hint: set missing logits to −∞).

# %% [raw]
# # BEGIN SOLUTION

# %%
def masked_softmax(theta, present):
    # BEGIN SOLUTION
    logits = theta.expand(present.shape[0], -1).masked_fill(~present, float("-inf"))
    return torch.softmax(logits, dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_p = masked_softmax(torch.zeros(3), torch.tensor([[True, True, True], [True, False, True]]))
assert _p.shape == (2, 3)
assert torch.allclose(_p, torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]]))

# %%
# HIDDEN
_ = torch.manual_seed(hidden_seed(1))
_theta = torch.randn(4)
_present = torch.rand(20, 4) > 0.5
_present[:, 0] |= ~_present.any(dim=1)
with forbidding(*_ANSWERS):
    _got = masked_softmax(_theta, _present)
assert_same(_got, torch.empty(20, 4), values=False)
assert torch.allclose(_got.sum(1), torch.ones(20)) and (_got[~_present] == 0).all()
_full = torch.softmax(_theta, 0)
assert_same(_got[3], (_full * _present[3]) / (_full * _present[3]).sum(), atol=1e-6)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_tensor_fusion
# points: 2

# %% [markdown]
# **Q3 · Tensor fusion.** Write `tensor_fusion(za, zb)` for two modalities' embeddings
# `(N, da)` and `(N, db)`: append a 1 to each, take the outer product per sample and
# flatten it, giving `(N, (da + 1)(db + 1))` with the row-major order of
# `torch.einsum("na,nb->nab", ...)`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def tensor_fusion(za, zb):
    # BEGIN SOLUTION
    ones = torch.ones(za.shape[0], 1, dtype=za.dtype)
    a = torch.cat([za, ones], dim=1)
    b = torch.cat([zb, ones], dim=1)
    return torch.einsum("na,nb->nab", a, b).flatten(1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_out = tensor_fusion(torch.tensor([[2.0]]), torch.tensor([[3.0, 5.0]]))
assert _out.tolist() == [[6.0, 10.0, 2.0, 3.0, 5.0, 1.0]]

# %%
# HIDDEN
from mmcourse.nn.fusion import TensorFusion

_ = torch.manual_seed(hidden_seed(2))
_ref = TensorFusion({"a": 5, "b": 3}, dim=4)
_emb = {"a": torch.randn(6, 5), "b": torch.randn(6, 3)}
_za, _zb = (_ref.project[m](_emb[m]).detach() for m in ("a", "b"))
with forbidding(*_ANSWERS):
    _got = tensor_fusion(_za, _zb)
assert_same(_got, _ref(_emb), atol=1e-5)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_late_fusion
# points: 1

# %% [markdown]
# **Q4 · Late fusion.** Each modality's own classifier gives logits; stacked they have
# shape `(N, M, C)`. Write `late_fusion(logits, present)` returning the mean over the
# present modalities, `(N, C)`; `present` is a bool tensor `(N, M)`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def late_fusion(logits, present):
    # BEGIN SOLUTION
    weights = present.float().unsqueeze(-1)
    return (logits * weights).sum(dim=1) / weights.sum(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_l = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])
_out = late_fusion(_l, torch.tensor([[True, True]]))
assert _out.shape == (1, 2)
assert torch.allclose(_out, torch.tensor([[2.0, 1.0]]))
_out = late_fusion(_l, torch.tensor([[False, True]]))
assert _out.shape == (1, 2)
assert torch.allclose(_out, torch.tensor([[3.0, 2.0]]))

# %%
# HIDDEN
from mmcourse.nn.fusion import LateFusion

_ = torch.manual_seed(hidden_seed(3))
_ref = LateFusion({"image": 4, "text": 3, "audio": 2}, num_classes=5)
_emb = {"image": torch.randn(8, 4), "text": torch.randn(8, 3), "audio": torch.randn(8, 2)}
_present = torch.rand(8, 3) > 0.3
_present[:, 1] |= ~_present.any(dim=1)
_stacked = _ref.per_modality(_emb).detach()
with forbidding(*_ANSWERS):
    _got = late_fusion(_stacked, _present)
assert_same(_got, _ref(_emb, _present), atol=1e-6)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_product_fusion
# points: 1

# %% [markdown]
# **Q5 · Product fusion.** Write `product_fusion(z, present=None)` for `z` and `present`
# as in Q1 (every `z[m]` is `(N, d)`): return the element-wise (Hadamard) product of the
# modalities' vectors, `(N, d)`, $F = z_1 \odot z_2 \odot \dots \odot z_M$. A missing
# modality counts as a vector of ones, so that it leaves the product unchanged.

# %% [raw]
# # BEGIN SOLUTION

# %%
def product_fusion(z, present=None):
    # BEGIN SOLUTION
    stacked = torch.stack([z[m] for m in z], dim=1)  # (N, M, d)
    if present is not None:
        stacked = torch.where(present.unsqueeze(-1), stacked, torch.ones_like(stacked))
    return stacked.prod(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_z = {"image": torch.tensor([[2.0, 3.0], [1.0, -1.0]]), "text": torch.tensor([[4.0, 0.5], [5.0, 2.0]])}
assert product_fusion(_z).tolist() == [[8.0, 1.5], [5.0, -2.0]]
assert product_fusion(_z, torch.tensor([[True, True], [False, True]])).tolist() == [[8.0, 1.5], [5.0, 2.0]]

# %%
# HIDDEN
from mmcourse.nn.fusion import ProductFusion

_ = torch.manual_seed(hidden_seed(4))
_dims = {"image": 6, "text": 5, "audio": 4}
_ref = ProductFusion(_dims, dim=7)
_emb = {m: torch.randn(9, d) for m, d in _dims.items()}
_proj = {m: _ref.project[m](_emb[m]).detach() for m in _dims}
_present = torch.rand(9, 3) > 0.4
_present[:, 1] |= ~_present.any(dim=1)
with forbidding(*_ANSWERS):
    _got_all, _got_some = product_fusion(_proj, None), product_fusion(_proj, _present)
assert_same(_got_all, _ref(_emb), atol=1e-6, what="product_fusion(z, None)")
assert_same(_got_some, _ref(_emb, _present), atol=1e-6, what="product_fusion(z, present)")
_hand = torch.ones(9, 7)
for _i, _m in enumerate(_dims):
    _hand = _hand * torch.where(_present[:, _i:_i + 1], _proj[_m], torch.ones(9, 7))
assert_same(_got_some, _hand, atol=1e-6, what="product_fusion(z, present)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6_conv_fusion
# points: 2

# %% [markdown]
# **Q6 · Convolutional fusion.** Stack the modalities' vectors into `(N, M, d)` (missing
# ones as zeros) and read the M modalities as the M input channels of a 1-D convolution
# along the feature axis: each kernel spans all M modalities at once and `k` neighbouring
# features. Write `conv_fusion(z, weight, bias, present=None)` with `z` and `present` as
# in Q1, `weight` of shape `(C, M, k)` (C output channels, an odd kernel size `k`) and
# `bias` `(C,)`:
#
# $$y[n, c, j] = \mathrm{relu}\Big(b_c + \sum_{m<M}\sum_{u<k} W[c, m, u]\,
#   Z[n, m, j + u - \lfloor k/2 \rfloor]\Big)$$
#
# with `Z` zero outside `0 ≤ j < d` (padding `k // 2`, so `y` keeps `d` features). Return
# `y` flattened to `(N, C·d)` (channel-major, `y.flatten(1)`). Build it from tensor
# operations (`F.pad`, slicing or `unfold`, `einsum`, …); do **not** call `F.conv1d`,
# `torch.conv1d` or `nn.Conv1d`. With `k = 1` and one channel it is a learned,
# unnormalised weighted sum (Q1); a wider kernel also mixes neighbouring features.

# %% [raw]
# # BEGIN SOLUTION

# %%
import torch.nn.functional as F


def conv_fusion(z, weight, bias, present=None):
    # BEGIN SOLUTION
    stacked = torch.stack([z[m] for m in z], dim=1)  # (N, M, d)
    if present is not None:
        stacked = stacked * present.unsqueeze(-1).to(stacked.dtype)
    k = weight.shape[2]
    d = stacked.shape[2]
    padded = F.pad(stacked, (k // 2, k // 2))  # (N, M, d + k - 1)
    windows = torch.stack([padded[:, :, u:u + d] for u in range(k)], dim=-1)  # (N, M, d, k)
    y = torch.einsum("nmju,cmu->ncj", windows, weight) + bias[None, :, None]
    return torch.relu(y).flatten(1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# one channel, kernel 3: y[j] = relu(b + Σ_m (z_m[j-1] + 2 z_m[j] - z_m[j+1]))
_z = {"image": torch.tensor([[1.0, 2.0, 3.0]]), "text": torch.tensor([[0.0, 1.0, 0.0]])}
_w = torch.tensor([[[1.0, 2.0, -1.0], [1.0, 2.0, -1.0]]])
assert conv_fusion(_z, _w, torch.tensor([0.5])).tolist() == [[0.0, 4.5, 9.5]]
assert conv_fusion(_z, _w, torch.tensor([0.5]), torch.tensor([[True, False]])).tolist() == [[0.5, 2.5, 8.5]]

# %%
# HIDDEN
import torch.nn.functional as _F

from mmcourse.nn.fusion import ConvFusion

_NO_CONV = ("torch.nn.functional.conv1d", "torch.conv1d", "torch.nn.Conv1d.forward",
            "torch.nn.Conv1d._conv_forward", "torch.convolution", "torch.nn.functional.conv2d",
            "torch.conv2d")
_ = torch.manual_seed(hidden_seed(5))
_dims = {"image": 6, "text": 5, "audio": 4}
for _channels, _k in [(4, 3), (2, 5), (1, 1)]:
    _ref = ConvFusion(_dims, dim=8, channels=_channels, kernel_size=_k)
    _emb = {m: torch.randn(7, d) for m, d in _dims.items()}
    _proj = {m: _ref.project[m](_emb[m]).detach() for m in _dims}
    _present = torch.rand(7, 3) > 0.4
    _present[:, 0] |= ~_present.any(dim=1)
    _wt, _bs = _ref.conv.weight.detach(), _ref.conv.bias.detach()
    with forbidding(*_ANSWERS, *_NO_CONV):
        _got = conv_fusion(_proj, _wt, _bs, _present)
        _got_all = conv_fusion(_proj, _wt, _bs)
    assert_same(_got, _ref(_emb, _present), atol=1e-5, what=f"conv_fusion {(_channels, _k)}")
    _stack = torch.stack([_proj[m] for m in _dims], dim=1)
    _want = torch.relu(_F.conv1d(_stack, _wt, _bs, padding=_k // 2)).flatten(1)
    assert_same(_got_all, _want, atol=1e-5, what=f"conv_fusion {(_channels, _k)}")
# float64 in, float64 out, and a kernel of size 1 is a weighted sum
_z64 = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.randn(3, 4, dtype=torch.float64)}
_w64 = torch.tensor([[[0.25], [0.75]]], dtype=torch.float64)
with forbidding(*_ANSWERS, *_NO_CONV):
    _got = conv_fusion(_z64, _w64, torch.zeros(1, dtype=torch.float64))
assert_same(_got, torch.relu(0.25 * _z64["a"] + 0.75 * _z64["b"]), atol=1e-12)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q7_interpret
# points: 2

# %% [markdown]
# **Q7 · Does late fusion of simple models pay off?** The cell below fits one logistic
# regression per AV-digits modality and stores each one's predicted class probabilities
# on the test split in `probabilities` (a dict of `(600, 10)` arrays). Set
# `late_accuracy` to the test accuracy of their late fusion (the argmax of the mean of
# the three probability arrays), `best_single_accuracy` to the best single modality's
# test accuracy, and `late_fusion_helps` to whether late fusion beats it.

# %%
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

av = data.load_av_digits(seed=0)
vectorizer = CountVectorizer().fit(av.train.texts)
features = {
    "image": (av.train.images.reshape(len(av.train), -1), av.test.images.reshape(len(av.test), -1)),
    "audio": (data.pooled_mfcc(av.train.mfcc), data.pooled_mfcc(av.test.mfcc)),
    "text": (vectorizer.transform(av.train.texts).toarray(), vectorizer.transform(av.test.texts).toarray()),
}
probabilities = {}
for name, (train_x, test_x) in features.items():
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probabilities[name] = model.fit(train_x, av.train.labels).predict_proba(test_x)
labels = av.test.labels

# %% [raw]
# # BEGIN SOLUTION

# %%
late_accuracy = float((np.mean(list(probabilities.values()), axis=0).argmax(1) == labels).mean())  # SOLUTION
best_single_accuracy = max(float((p.argmax(1) == labels).mean()) for p in probabilities.values())  # SOLUTION
late_fusion_helps = late_accuracy > best_single_accuracy  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert 0.0 <= late_accuracy <= 1.0 and 0.0 <= best_single_accuracy <= 1.0
assert isinstance(late_fusion_helps, (bool, np.bool_))

# %%
# HIDDEN
_mean = np.mean([probabilities[m] for m in ("image", "audio", "text")], axis=0)
_late = float((_mean.argmax(1) == labels).mean())
_best = max(float((probabilities[m].argmax(1) == labels).mean()) for m in probabilities)
assert abs(late_accuracy - _late) < 1e-9 and abs(best_single_accuracy - _best) < 1e-9
assert bool(late_fusion_helps) == (_late > _best)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
