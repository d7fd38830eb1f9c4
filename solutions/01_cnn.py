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
# name: 01_cnn
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/01_cnn.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/01_cnn.ipynb)
#
# # Exercise 01 · The CNN image encoder
#
# Companion to `notebooks/01_cnn.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# You will compute the output size of a convolution, build a convolution layer and 2 × 2
# max pooling from tensor operations (checked against PyTorch, values and gradients),
# implement the blog post's formula $f(I; W, b) = \max_{i,j} W_{ij} \cdot I_{ij} + b$,
# and measure on a real Fashion-MNIST image how it differs from a convolution.

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
grader = Notebook("01_cnn.ipynb")

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F

from mmcourse import data
from mmcourse.nn import scratch

test_images, test_labels = data.load_fashion("test")
# A test image whose first 2 and last 3 columns are empty, so that a shift of 2 pixels
# to the right loses nothing: image (1, 1, 28, 28), float64 in [0, 1].
image_index = next(i for i in range(len(test_labels))
                   if test_images[i, :, :2].max() == 0 and test_images[i, :, -3:].max() == 0)
image = torch.from_numpy(test_images[image_index].copy()).double().div(255)[None, None]


def shift_right(x, pixels):
    """Move x (..., H, W) ``pixels`` columns to the right, filling the left with zeros."""
    return F.pad(x, (pixels, 0))[..., :x.shape[-1]]


sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
                     dtype=torch.float64)[None, None]  # (1, 1, 3, 3) vertical-edge kernel
W_post = torch.randn(28, 28, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(1))  # one weight per pixel
print(f"image {image_index}: {data.FASHION_CLASSES[test_labels[image_index]]}, "
      f"{tuple(image.shape)} {image.dtype}")

# %% [raw]
# # BEGIN QUESTION
# name: q1_output_size
# points: 1

# %% [markdown]
# **Q1 · Output size.** Write `conv_output_size(h, k, s=1, p=0)`: the number of
# outputs along one axis of length `h` for a convolution (or pooling) with kernel size
# `k`, stride `s` and zero padding `p` on both sides, assuming the kernel fits
# (`h + 2p ≥ k`). Return a Python `int`. For example a 3 × 3 kernel with stride 1 and
# no padding turns 28 pixels into 26.

# %% [raw]
# # BEGIN SOLUTION

# %%
def conv_output_size(h, k, s=1, p=0):
    # BEGIN SOLUTION
    return (h + 2 * p - k) // s + 1
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert conv_output_size(28, 3) == 26
assert conv_output_size(28, 3, 1, 1) == 28

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

assert type(conv_output_size(28, 3, 1, 1)) is int
assert conv_output_size(224, 7, 2, 3) == 112
assert conv_output_size(28, 3, 2, 0) == 13
assert conv_output_size(5, 5, 3, 0) == 1
_g = torch.Generator().manual_seed(hidden_seed(11))
for _ in range(40):
    _h, _k, _s, _p = (int(v) for v in (torch.randint(4, 30, (1,), generator=_g),
                                       torch.randint(1, 6, (1,), generator=_g),
                                       torch.randint(1, 5, (1,), generator=_g),
                                       torch.randint(0, 3, (1,), generator=_g)))
    if _h + 2 * _p < _k:
        continue
    _want = F.conv2d(torch.zeros(1, 1, _h, 1), torch.zeros(1, 1, _k, 1),
                     stride=(_s, 1), padding=(_p, 0)).shape[2]
    assert conv_output_size(_h, _k, _s, _p) == _want, (_h, _k, _s, _p)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_conv2d
# points: 3

# %% [markdown]
# **Q2 · Convolution from `unfold`.** Write `conv2d_unfold(x, weight, bias=None,
# stride=1, padding=0)` for an input `x` of shape `(N, C, H, W)`, a kernel `weight` of
# shape `(O, C, kH, kW)` and an optional `bias` of shape `(O,)`. It must compute
#
# $$y[n,o,i,j] = b_o + \sum_{c}\sum_{u<k_H}\sum_{v<k_W} W[o,c,u,v]\;
#   x[n,c,\,s_h i+u-p_h,\,s_w j+v-p_w]$$
#
# with `x` zero outside the image, and return `y` of shape `(N, O, H_out, W_out)` (sizes
# as in Q1). `stride` and `padding` are each an `int` or an `(h, w)` pair.
#
# Use `torch.nn.functional.unfold` to lay out every patch as a column of length
# `C·kH·kW` (it returns `(N, C·kH·kW, H_out·W_out)`), then one matrix product with the
# kernel flattened to `(O, C·kH·kW)`, add the bias, and reshape. Do **not** call
# `F.conv2d` (or `torch.conv2d`); use only differentiable torch operations, so that
# gradients flow to `x`, `weight` and `bias`. The tests compare values and gradients
# with `F.conv2d` in float64 (relative error ≤ 1e-6).

# %% [raw]
# # BEGIN SOLUTION

# %%
def conv2d_unfold(x, weight, bias=None, stride=1, padding=0):
    # BEGIN SOLUTION
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    h_out, w_out = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    columns = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))
    y = weight.reshape(o, -1) @ columns
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(n, o, h_out, w_out)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.arange(16.0).reshape(1, 1, 4, 4)
_y = conv2d_unfold(_x, torch.ones(1, 1, 2, 2))
assert _y.shape == (1, 1, 3, 3)
assert _y[0, 0].tolist() == [[10.0, 14.0, 18.0], [26.0, 30.0, 34.0], [42.0, 46.0, 50.0]]
_x = torch.randn(2, 3, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
_w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
assert scratch.relative_error(conv2d_unfold(_x, _w, padding=1), F.conv2d(_x, _w, padding=1)) < 1e-6

# %%
# HIDDEN
def _conv_grads(fn, x, w, b, stride, padding, upstream):
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    inputs = [x, w]
    if b is not None:
        b = b.clone().requires_grad_(True)
        inputs.append(b)
    y = fn(x, w, b, stride=stride, padding=padding)
    grads = torch.autograd.grad((y * upstream).sum(), inputs)
    return y.detach(), grads


_g = torch.Generator().manual_seed(hidden_seed(2024))
_cases = [((2, 3, 9, 11), (5, 3, 3, 2), True, 2, 1), ((1, 1, 6, 6), (1, 1, 1, 1), False, 1, 0),
          ((3, 2, 10, 7), (4, 2, 4, 3), True, (2, 1), (0, 2)), ((2, 4, 8, 8), (3, 4, 5, 5), True, 3, 2),
          ((1, 2, 5, 12), (6, 2, 2, 4), False, (1, 3), (1, 0)), ((2, 1, 28, 28), (8, 1, 3, 3), True, 1, 1)]
for _xs, _ws, _has_b, _s, _p in _cases:
    _x = torch.randn(*_xs, dtype=torch.float64, generator=_g)
    _w = torch.randn(*_ws, dtype=torch.float64, generator=_g)
    _b = torch.randn(_ws[0], dtype=torch.float64, generator=_g) if _has_b else None
    _up = torch.randn(F.conv2d(_x, _w, _b, _s, _p).shape, dtype=torch.float64, generator=_g)
    _want, _want_grads = _conv_grads(F.conv2d, _x, _w, _b, _s, _p, _up)
    with forbidding("torch.nn.functional.conv2d", "torch.conv2d"):  # conv2d_unfold must not call them
        _got, _got_grads = _conv_grads(conv2d_unfold, _x, _w, _b, _s, _p, _up)
    assert_same(_got, _want, values=False, what=f"conv2d_unfold on {_xs}, {_ws}")
    assert scratch.relative_error(_got, _want) < 1e-6, (_xs, _ws, _s, _p)
    assert_same(_got_grads, _want_grads, values=False, what="gradients")
    for _a, _c in zip(_got_grads, _want_grads):
        assert scratch.relative_error(_a, _c) < 1e-6, (_xs, _ws, _s, _p, "gradient")

# real Fashion-MNIST images, float32, against the package's from-scratch layer
_batch = torch.from_numpy(test_images[:16].copy()).float().div(255)[:, None]
_w = torch.randn(6, 1, 5, 5, generator=_g)
_b = torch.randn(6, generator=_g)
assert_same(conv2d_unfold(_batch, _w, _b, stride=2, padding=2),
            scratch.conv2d(_batch, _w, _b, stride=2, padding=2), atol=1e-4)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_max_pool
# points: 2

# %% [markdown]
# **Q3 · 2 × 2 max pooling.** Write `max_pool_2x2(x)` for `x` of shape `(N, C, H, W)`:
# return `y` of shape `(N, C, H // 2, W // 2)` with
# $y[n,c,i,j] = \max_{u,v \in \{0,1\}} x[n,c,2i+u,2j+v]$ (non-overlapping windows; when
# `H` or `W` is odd the last row or column is dropped, as `F.max_pool2d(x, 2)` does).
# Build it from tensor operations (slicing, `reshape`, `amax`, …); do **not** call
# `F.max_pool2d`. It must keep `x`'s dtype and let gradients flow to `x`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def max_pool_2x2(x):
    # BEGIN SOLUTION
    n, c, h, w = x.shape
    x = x[:, :, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[1.0, 2.0, 5.0, 0.0], [3.0, 4.0, 1.0, 1.0],
                   [0.0, 0.0, 7.0, 8.0], [9.0, 0.0, 6.0, 2.0]])[None, None]
assert max_pool_2x2(_x).tolist() == [[[[4.0, 5.0], [9.0, 8.0]]]]

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(7))
for _shape in [(2, 3, 8, 8), (1, 2, 7, 9), (3, 1, 5, 4), (2, 4, 2, 3)]:
    _x = torch.randn(*_shape, dtype=torch.float64, generator=_g) - 5.0  # all negative
    _xg = _x.clone().requires_grad_(True)
    _want = F.max_pool2d(_xg, 2)
    _up = torch.randn(_want.shape, dtype=torch.float64, generator=_g)
    (_want_grad,) = torch.autograd.grad((_want * _up).sum(), _xg)
    _xg = _x.clone().requires_grad_(True)
    with forbidding("torch.nn.functional.max_pool2d", "torch.max_pool2d"):
        _got = max_pool_2x2(_xg)
    assert_same(_got, _want, rtol=0, atol=0, what=f"max_pool_2x2 on {_shape}")
    (_got_grad,) = torch.autograd.grad((_got * _up).sum(), _xg)
    assert scratch.relative_error(_got_grad, _want_grad) < 1e-12, _shape

# real images, against the package's from-scratch pooling
_batch = torch.from_numpy(test_images[:32].copy()).float()[:, None]
assert_same(max_pool_2x2(_batch), scratch.max_pool2d(_batch, 2), rtol=0, atol=0)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_post_formula
# points: 1

# %% [markdown]
# **Q4 · The post's formula.** The blog post models a CNN image encoder as
# $f(I; W, b) = \max_{i,j} W_{ij} \cdot I_{ij} + b$. Implement it literally as
# `post_cnn(I, W, b)`: `I` is a batch of images of shape `(N, H, W)`, `W` one weight per
# pixel of shape `(H, W)`, `b` a Python float. Return a tensor of shape `(N,)`, one
# number per image: the largest elementwise product of that image with `W`, plus `b`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def post_cnn(I, W, b):
    # BEGIN SOLUTION
    return (W * I).amax(dim=(-2, -1)) + b
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_I = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
_W = torch.tensor([[1.0, 1.0], [2.0, 0.5]])
assert post_cnn(_I, _W, 0.5).tolist() == [6.5]

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(5))
_I = torch.randn(5, 6, 9, dtype=torch.float64, generator=_g)
_W = torch.randn(6, 9, dtype=torch.float64, generator=_g)
_got = post_cnn(_I, _W, -1.25)
_want = torch.tensor([max(float(_W[i, j] * _I[n, i, j]) for i in range(6) for j in range(9))
                      for n in range(5)], dtype=torch.float64) - 1.25
assert_same(_got, _want, atol=1e-12)
_batch = torch.from_numpy(test_images[:10].copy()).double().div(255)
_got = post_cnn(_batch, W_post, 0.0)
assert_same(_got, (_batch * W_post).flatten(1).max(dim=1).values, atol=1e-12)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_shift
# points: 2

# %% [markdown]
# **Q5 · Shift the image.** The setup cell loaded a Fashion-MNIST test image `image`
# `(1, 1, 28, 28)` (float64, empty borders) and defined `shift_right(x, pixels)`, the
# vertical-edge kernel `sobel` `(1, 1, 3, 3)` and the post's weights `W_post` `(28, 28)`.
# Let `shifted = shift_right(image, 2)`. Compute, as Python floats:
#
# * `post_diff` — $|f(\text{shifted}) - f(\text{image})|$ for the post's formula with
#   `W_post` and $b = 0$;
# * `conv_gap` — the largest absolute difference, over all positions, between
#   conv(shifted) and shift_right(conv(image), 2), where conv is the convolution with
#   `sobel`, stride 1, padding 1 (your `conv2d_unfold` or `F.conv2d`);
# * `pooled_diff` — the absolute difference between the global maximum of conv(shifted)
#   and the global maximum of conv(image) (global max pooling over the whole map).
#
# Then set `unchanged` to the **set** of names, among `"post"`, `"conv_map"` and
# `"pooled_conv"`, of the outputs that are *identical* (difference below 1e-9) for the
# image and its shifted copy: the post's number, the convolution's output map itself,
# and its global maximum.

# %% [raw]
# # BEGIN SOLUTION

# %%
shifted = shift_right(image, 2)
# BEGIN SOLUTION
conv_image = conv2d_unfold(image, sobel, padding=1)
conv_shifted = conv2d_unfold(shifted, sobel, padding=1)
map_diff = (conv_shifted - conv_image).abs().max().item()
# END SOLUTION
post_diff = abs(post_cnn(shifted[:, 0], W_post, 0.0) - post_cnn(image[:, 0], W_post, 0.0)).item()  # SOLUTION
conv_gap = (conv_shifted - shift_right(conv_image, 2)).abs().max().item()  # SOLUTION
pooled_diff = abs(conv_shifted.max() - conv_image.max()).item()  # SOLUTION
unchanged = {n for n, d in [("post", post_diff), ("conv_map", map_diff), ("pooled_conv", pooled_diff)] if d < 1e-9}  # SOLUTION
print("post_diff =", post_diff, " conv_gap =", conv_gap, " pooled_diff =", pooled_diff)
print("unchanged:", unchanged)

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert all(isinstance(v, float) for v in (post_diff, conv_gap, pooled_diff))
assert isinstance(unchanged, set) and unchanged <= {"post", "conv_map", "pooled_conv"}

# %%
# HIDDEN
_shifted = shift_right(image, 2)
_post = lambda x: (W_post * x[0, 0]).max().item()
assert abs(post_diff - abs(_post(_shifted) - _post(image))) < 1e-9
assert post_diff > 1e-3
_ci, _cs = F.conv2d(image, sobel, padding=1), F.conv2d(_shifted, sobel, padding=1)
assert conv_gap < 1e-9
assert abs(pooled_diff - abs(_cs.max() - _ci.max()).item()) < 1e-9
assert unchanged == {"pooled_conv"}

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6_parameters
# points: 2

# %% [markdown]
# **Q6 · Weight sharing in numbers.** A 28 × 28 grey image goes through a convolution
# layer with 16 output channels, 5 × 5 kernels, padding 2, stride 1 and a bias per
# channel, so its output has shape `(16, 28, 28)`. Set
#
# * `params_conv` — the number of parameters (weights and biases) of that layer;
# * `params_dense` — the number of parameters of a fully connected layer (with bias)
#   that maps the 784 pixels to an output of the same size, 16 · 28 · 28 numbers;
# * `params_post` — the number of parameters of the post's formula (`W` and `b`) for a
#   28 × 28 image;
# * `dense_over_conv` — how many times more parameters the dense layer has than the
#   convolution (a float).
#
# All counts are Python `int`s. Count them with a formula, or build the layers and count
# (`sum(p.numel() for p in layer.parameters())`; a 10-million-parameter layer can be
# built on `device="meta"` to take no memory).

# %% [raw]
# # BEGIN SOLUTION

# %%
params_conv = 16 * (1 * 5 * 5 + 1)  # SOLUTION
params_dense = 28 * 28 * (16 * 28 * 28) + 16 * 28 * 28  # SOLUTION
params_post = 28 * 28 + 1  # SOLUTION
dense_over_conv = params_dense / params_conv  # SOLUTION
print("conv:", params_conv, " dense:", params_dense, " ratio:", dense_over_conv,
      " post:", params_post)

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert all(isinstance(v, int) for v in (params_conv, params_dense, params_post))
assert params_conv > 0 and params_dense > 0 and params_post > 0

# %%
# HIDDEN
_count = lambda layer: sum(p.numel() for p in layer.parameters())
assert params_conv == _count(torch.nn.Conv2d(1, 16, 5, padding=2, device="meta"))
assert params_dense == _count(torch.nn.Linear(784, 16 * 28 * 28, device="meta"))
assert params_post == 785
assert abs(dense_over_conv - params_dense / params_conv) < 1e-6 * dense_over_conv

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
