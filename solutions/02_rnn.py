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
# name: 02_rnn
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/02_rnn.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/02_rnn.ipynb)
#
# # Exercise 02 · The RNN text encoder
#
# Companion to `notebooks/02_rnn.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.
#
# Notation as in the chapter: a batch of N sequences, T time steps, inputs of size `in`
# (for text: V, the vocabulary size), hidden size H. Weights follow PyTorch's layout:
# `W` is (rows, in) and `U` is (rows, H), so one step on a batch computes `x @ W.T`.
# Build everything from tensor operations (`@`, `torch.tanh`, `torch.sigmoid`, indexing);
# do not call `torch.nn` layers, `torch.nn.functional` recurrences or `mmcourse.nn.scratch`
# in your answers — the tests compare against those.

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
grader = Notebook("02_rnn.ipynb")

# %%
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import data, preprocessing as prep
from mmcourse.nn import scratch

stamps = data.load_stamps()

# %% [raw]
# # BEGIN QUESTION
# name: q1_chars
# points: 2

# %% [markdown]
# **Q1 · Characters to ids.** A character-level text encoder reads ids, one per
# character. Write two functions, without using `prep.Tokenizer` or `prep.Vocabulary`:
#
# * `char_vocabulary(texts)`: for a list of strings, return the vocabulary as a `list`
#   of tokens, where a token's id is its position. It starts with `"<pad>"` (id 0) and
#   `"<unk>"` (id 1), followed by every distinct character of the **cleaned** texts
#   (`prep.normalize_text(text)`; the space between words is a character too), most
#   frequent first over all texts, ties broken by the character itself in Python's string
#   order.
# * `encode_chars(text, tokens)`: clean `text` the same way and return a `torch.long`
#   tensor of shape `(L,)`, one id per character of the cleaned text; a character that
#   is not in `tokens` gets id 1 (`<unk>`). An empty cleaned text gives shape `(0,)`.

# %% [raw]
# # BEGIN SOLUTION

# %%
from collections import Counter


def char_vocabulary(texts):
    # BEGIN SOLUTION
    counts = Counter(ch for text in texts for ch in prep.normalize_text(text))
    return ["<pad>", "<unk>", *sorted(counts, key=lambda ch: (-counts[ch], ch))]
    # END SOLUTION


def encode_chars(text, tokens):
    # BEGIN SOLUTION
    ids = {tok: i for i, tok in enumerate(tokens)}
    return torch.tensor([ids.get(ch, 1) for ch in prep.normalize_text(text)], dtype=torch.long)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_tokens = char_vocabulary(["abca", "B!"])
assert _tokens == ["<pad>", "<unk>", "a", "b", "c"]
_ids = encode_chars("Cab z", _tokens)
assert _ids.dtype == torch.long and _ids.tolist() == [4, 2, 3, 1, 1]

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_train = [s.caption for s in stamps[::2]]
_reference = prep.Tokenizer(level="char").fit(_train)
_tokens = char_vocabulary(_train)
assert isinstance(_tokens, list) and _tokens == _reference.vocab.tokens
for _stamp in stamps[1::9]:
    for _lang in ("en", "fr", "de", "ru", "zh_CN", "el"):
        if _lang in _stamp.captions:
            _got = encode_chars(_stamp.captions[_lang], _tokens)
            _want = _reference.encode(_stamp.captions[_lang])
            assert_same(_got, _want)
_empty = encode_chars(" !?… ", _tokens)
assert _empty.dtype == torch.long and _empty.shape == (0,)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_rnn_step
# points: 2

# %% [markdown]
# **Q2 · One RNN step.** Write `rnn_step(x, h, W, U, b)` for the Elman cell
#
# $$h' = \tanh(W x + U h + b)$$
#
# on a batch: `x` is `(N, in)`, `h` is `(N, H)`, `W` is `(H, in)`, `U` is `(H, H)`,
# `b` is `(H,)`. Return `h'` of shape `(N, H)` with the dtype of the inputs. (PyTorch's
# `nn.RNNCell` keeps two biases, `bias_ih` and `bias_hh`; they are only ever added, so
# their sum is this `b`.)

# %% [raw]
# # BEGIN SOLUTION

# %%
def rnn_step(x, h, W, U, b):
    # BEGIN SOLUTION
    return torch.tanh(x @ W.T + h @ U.T + b)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
_h = torch.tensor([[0.5], [-0.5]])
_out = rnn_step(_x, _h, torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0]]), torch.tensor([0.0]))
assert _out.shape == (2, 1)
assert torch.allclose(_out, torch.tanh(torch.tensor([[2.0], [1.0]])))

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(21))
for _n, _in, _hid in [(1, 1, 1), (5, 7, 3), (16, 30, 24), (3, 2, 40)]:
    _cell = nn.RNNCell(_in, _hid).double()
    with torch.no_grad():
        for _p in _cell.parameters():
            _done = _p.copy_(2 * torch.randn(_p.shape, generator=_g, dtype=torch.float64))
    _x = torch.randn(_n, _in, generator=_g, dtype=torch.float64)
    _h = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    _want = _cell(_x, _h)
    _got = rnn_step(_x, _h, _cell.weight_ih, _cell.weight_hh, _cell.bias_ih + _cell.bias_hh)
    assert _got.shape == (_n, _hid) and _got.dtype == torch.float64
    assert scratch.relative_error(_got, _want) < 1e-10
    assert scratch.relative_error(_got, scratch.RNNCell.from_torch(_cell)(_x, _h)) < 1e-10
_x32, _h32 = torch.randn(4, 6), torch.randn(4, 5)
_W32, _U32, _b32 = torch.randn(5, 6), torch.randn(5, 5), torch.randn(5)
assert_same(rnn_step(_x32, _h32, _W32, _U32, _b32), torch.empty(4, 5), values=False)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_last_state
# points: 3

# %% [markdown]
# **Q3 · Over time, with lengths.** A padded batch holds sequences of different lengths.
# Write `rnn_last_state(x, lengths, W, U, b)`: `x` is `(N, T, in)`, `lengths` a
# `torch.long` tensor `(N,)` with `1 ≤ lengths[n] ≤ T`, and `W`, `U`, `b` as in Q2.
# Start from `h_0 = 0` and apply the step of Q2 along time; return, for every sequence
# `n`, its state after its **last real step** `t = lengths[n] − 1`, stacked into
# `(N, H)`. The values of `x[n, t]` for padded steps `t ≥ lengths[n]` are arbitrary
# (not necessarily zero) and must not change the result. This is the state that
# `torch.nn.RNN` returns for a `pack_padded_sequence` batch. Gradients must flow to
# `x`, `W`, `U` and `b` (no `.detach()`, no in-place changes of the inputs). You may use
# your `rnn_step`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def rnn_last_state(x, lengths, W, U, b):
    # BEGIN SOLUTION
    n, steps, _ = x.shape
    h = x.new_zeros(n, U.shape[0])
    for t in range(steps):
        keep = (t < lengths)[:, None].to(x.device)
        h = torch.where(keep, rnn_step(x[:, t], h, W, U, b), h)
    return h
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[[1.0], [1.0], [1.0]], [[1.0], [5.0], [-7.0]]])
_W, _U, _b = torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([0.0])
_out = rnn_last_state(_x, torch.tensor([3, 1]), _W, _U, _b)
assert _out.shape == (2, 1)
assert torch.allclose(_out, torch.tanh(torch.tensor([[1.0], [1.0]])))

# %%
# HIDDEN
from torch.nn.utils.rnn import pack_padded_sequence

_g = torch.Generator().manual_seed(hidden_seed(5))
for _n, _t, _in, _hid in [(1, 1, 3, 2), (6, 9, 4, 5), (12, 25, 10, 16), (3, 4, 1, 1)]:
    _rnn = nn.RNN(_in, _hid, batch_first=True).double()
    _lengths = torch.randint(1, _t + 1, (_n,), generator=_g)
    _lengths[0] = _t                                       # the longest and the
    _lengths[-1] = 1 if _n > 1 else _lengths[-1]           # shortest possible
    _x = torch.randn(_n, _t, _in, generator=_g, dtype=torch.float64)
    _pad = torch.arange(_t)[None, :] >= _lengths[:, None]
    _x[_pad] = 100 * torch.randn(int(_pad.sum()), _in, generator=_g, dtype=torch.float64)
    _x_ours = _x.clone().requires_grad_()
    _x_torch = _x.clone().requires_grad_()
    _W = _rnn.weight_ih_l0.detach().clone().requires_grad_()
    _U = _rnn.weight_hh_l0.detach().clone().requires_grad_()
    _b = (_rnn.bias_ih_l0 + _rnn.bias_hh_l0).detach().clone().requires_grad_()
    _got = rnn_last_state(_x_ours, _lengths, _W, _U, _b)
    _, _h_n = _rnn(pack_padded_sequence(_x_torch, _lengths, batch_first=True,
                                        enforce_sorted=False))
    _want = _h_n[0]
    assert_same(_got, _want, values=False)
    assert scratch.relative_error(_got, _want) < 1e-9
    _, _ref_last = scratch.RNN.from_torch(_rnn)(_x, lengths=_lengths)
    assert scratch.relative_error(_got, _ref_last) < 1e-9
    _r = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    (_got * _r).sum().backward()
    (_want * _r).sum().backward()
    assert scratch.relative_error(_x_ours.grad, _x_torch.grad) < 1e-8
    assert torch.all(_x_ours.grad[_pad] == 0)
    assert scratch.relative_error(_W.grad, _rnn.weight_ih_l0.grad) < 1e-8
    assert scratch.relative_error(_U.grad, _rnn.weight_hh_l0.grad) < 1e-8
    assert scratch.relative_error(_b.grad, _rnn.bias_ih_l0.grad) < 1e-8

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_gru_step
# points: 3

# %% [markdown]
# **Q4 · One GRU step, PyTorch's way.** Write `gru_step(x, h, W, U, b_ih, b_hh)` with
# PyTorch's parameters and gate order (r, z, n): `W` is `weight_ih` `(3H, in)`, `U` is
# `weight_hh` `(3H, H)`, `b_ih` and `b_hh` are `(3H,)`; each is three blocks of `H` rows
# stacked in the order r, z, n (write `W_r`, `b_ir`, `b_hr`, … for the blocks). For
# `x` `(N, in)` and `h` `(N, H)` return `h'` `(N, H)`:
#
# $$r = \sigma(W_r x + b_{ir} + U_r h + b_{hr}), \qquad
#   z = \sigma(W_z x + b_{iz} + U_z h + b_{hz}),$$
# $$n = \tanh\big(W_n x + b_{in} + r \odot (U_n h + b_{hn})\big), \qquad
#   h' = (1 - z) \odot n + z \odot h .$$
#
# Note where the reset gate acts: on `U_n h + b_hn` together, bias included. The tests
# compare with `torch.nn.GRUCell` in float64, values and gradients.

# %% [raw]
# # BEGIN SOLUTION

# %%
def gru_step(x, h, W, U, b_ih, b_hh):
    # BEGIN SOLUTION
    x_r, x_z, x_n = (x @ W.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ U.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_h = torch.tensor([[1.0, -2.0]])
_zero = gru_step(torch.ones(1, 3), _h, torch.zeros(6, 3), torch.zeros(6, 2),
                 torch.zeros(6), torch.zeros(6))
assert _zero.shape == (1, 2)
assert torch.allclose(_zero, 0.5 * _h)       # r = z = 1/2 and n = 0: h' = h / 2

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(8))
for _n, _in, _hid in [(1, 1, 1), (4, 6, 3), (10, 20, 12)]:
    _cell = nn.GRUCell(_in, _hid).double()
    with torch.no_grad():
        for _p in _cell.parameters():
            _done = _p.copy_(torch.randn(_p.shape, generator=_g, dtype=torch.float64))
    _x = torch.randn(_n, _in, generator=_g, dtype=torch.float64)
    _h = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    _params = [_cell.weight_ih, _cell.weight_hh, _cell.bias_ih, _cell.bias_hh]
    _ours = [t.detach().clone().requires_grad_() for t in (_x, _h, *_params)]
    _theirs = [t.detach().clone().requires_grad_() for t in (_x, _h)]
    _got = gru_step(*_ours)
    _want = _cell(*_theirs)
    assert _got.shape == (_n, _hid) and _got.dtype == torch.float64
    assert scratch.relative_error(_got, _want) < 1e-10
    assert scratch.relative_error(_got, scratch.GRUCell.from_torch(_cell)(_x, _h)) < 1e-10
    _r = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    (_got * _r).sum().backward()
    (_want * _r).sum().backward()
    for _a, _b in zip(_ours, [*_theirs, *_params]):
        assert scratch.relative_error(_a.grad, _b.grad) < 1e-8

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_lstm_step
# points: 3

# %% [markdown]
# **Q5 · One LSTM step.** Write `lstm_step(x, h, c, W, U, b)` with PyTorch's layout and
# gate order (i, f, g, o): `W` is `weight_ih` `(4H, in)`, `U` is `weight_hh` `(4H, H)` and
# `b` is `(4H,)` (PyTorch's `bias_ih + bias_hh`); each is four blocks of `H` rows stacked
# in the order i, f, g, o. For `x` `(N, in)` and the state `h`, `c` (each `(N, H)`)
# return the pair `(h', c')`:
#
# $$i = \sigma(W_i x + U_i h + b_i), \quad f = \sigma(W_f x + U_f h + b_f), \quad
#   g = \tanh(W_g x + U_g h + b_g), \quad o = \sigma(W_o x + U_o h + b_o),$$
# $$c' = f \odot c + i \odot g, \qquad h' = o \odot \tanh(c') .$$
#
# The cell state `c` is the LSTM's answer to Q6's vanishing gradients: `c'` depends on
# `c` through a product with the forget gate only, without a squashing `tanh`. The tests
# compare with `torch.nn.LSTMCell` given the same weights, in float64, values and
# gradients; do not call `nn.LSTMCell`, `nn.LSTM`, `torch.lstm_cell` or
# `scratch.LSTMCell`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def lstm_step(x, h, c, W, U, b):
    # BEGIN SOLUTION
    i, f, g, o = (x @ W.T + h @ U.T + b).chunk(4, dim=1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)
    return h_next, c_next
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# all weights zero: i = f = o = 1/2 and g = 0, so c' = c / 2 and h' = tanh(c / 2) / 2
_h, _c = torch.tensor([[1.0, -2.0]]), torch.tensor([[2.0, -4.0]])
_hc = lstm_step(torch.ones(1, 3), _h, _c, torch.zeros(8, 3), torch.zeros(8, 2), torch.zeros(8))
assert isinstance(_hc, tuple) and len(_hc) == 2
assert _hc[0].shape == (1, 2) and _hc[1].shape == (1, 2)
assert torch.allclose(_hc[1], 0.5 * _c)
assert torch.allclose(_hc[0], 0.5 * torch.tanh(0.5 * _c))

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(41))
_no_lstm = ("torch.nn.LSTMCell.forward", "torch.nn.LSTM.forward", "torch.lstm_cell",
            "torch.lstm", "mmcourse.nn.scratch.LSTMCell.forward")
for _n, _in, _hid in [(1, 1, 1), (4, 6, 3), (9, 20, 12)]:
    _cell = nn.LSTMCell(_in, _hid).double()
    with torch.no_grad():
        for _p in _cell.parameters():
            _done = _p.copy_(torch.randn(_p.shape, generator=_g, dtype=torch.float64))
    _x = torch.randn(_n, _in, generator=_g, dtype=torch.float64)
    _h = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    _c = 2 * torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    _b = (_cell.bias_ih + _cell.bias_hh).detach()
    _ours = [t.detach().clone().requires_grad_()
             for t in (_x, _h, _c, _cell.weight_ih, _cell.weight_hh, _b)]
    _theirs = [t.detach().clone().requires_grad_() for t in (_x, _h, _c)]
    with forbidding(*_no_lstm):
        _got = lstm_step(*_ours)
    _want = _cell(_theirs[0], (_theirs[1], _theirs[2]))
    assert_same(_got, _want, values=False)
    for _a, _w in zip(_got, _want):
        assert scratch.relative_error(_a, _w) < 1e-10
    _rh = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    _rc = torch.randn(_n, _hid, generator=_g, dtype=torch.float64)
    (_got[0] * _rh + _got[1] * _rc).sum().backward()
    (_want[0] * _rh + _want[1] * _rc).sum().backward()
    _ref_grads = [*(t.grad for t in _theirs), _cell.weight_ih.grad, _cell.weight_hh.grad,
                  _cell.bias_ih.grad]
    for _a, _w in zip(_ours, _ref_grads):
        assert _a.grad is not None and scratch.relative_error(_a.grad, _w) < 1e-8
# float32 in, float32 out; a zero state with zero weights keeps the cell state at zero
_hc32 = lstm_step(torch.randn(3, 4), torch.zeros(3, 5), torch.zeros(3, 5),
                  torch.zeros(20, 4), torch.zeros(20, 5), torch.zeros(20))
assert_same(_hc32, (torch.empty(3, 5), torch.zeros(3, 5)), values=False)
assert_same(_hc32[1], torch.zeros(3, 5), rtol=0, atol=0)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Vanishing gradients
#
# Backpropagation through time multiplies one Jacobian per step,
#
# $$\frac{\partial h_T}{\partial h_0} = \prod_{k=1}^{T} \frac{\partial h_k}{\partial h_{k-1}}
#   = \prod_{k=1}^{T} \operatorname{diag}\!\left(1 - h_k^2\right) U ,$$
#
# so its size typically shrinks or grows geometrically with `T`. The next two questions
# measure it on real text: `text_steps` below is the first 50 characters of the stamps'
# English captions, one-hot, `(50, V)` in float64, and `make_weights(g)` returns
# seeded weights `(W, U, b)` of a tanh RNN with `H = 32` whose recurrent matrix `U` has
# entries of standard deviation `g / √H` (a larger **gain** `g` means a larger `U`).

# %%
english = " ".join(prep.normalize_text(s.caption) for s in stamps)[:50]
english_chars = prep.Tokenizer(level="char").fit([english])
text_steps = F.one_hot(english_chars.encode(english), len(english_chars.vocab)).double()
HIDDEN = 32
GAINS = (0.5, 1.0, 2.0, 4.0)


def make_weights(g, seed=0):
    """(W (H, V), U (H, H), b (H,)) in float64; U has N(0, g²/H) entries."""
    gen = torch.Generator().manual_seed(seed)
    n_in = text_steps.shape[1]
    W = torch.randn(HIDDEN, n_in, generator=gen, dtype=torch.float64) / n_in ** 0.5
    U = g * torch.randn(HIDDEN, HIDDEN, generator=gen, dtype=torch.float64) / HIDDEN ** 0.5
    b = 0.1 * torch.randn(HIDDEN, generator=gen, dtype=torch.float64)
    return W, U, b


print(repr(english), tuple(text_steps.shape))

# %% [raw]
# # BEGIN QUESTION
# name: q6_jacobian_norm
# points: 2

# %% [markdown]
# **Q6 · How far back does the gradient reach?** Write `jacobian_norm(W, U, b, xs)`
# for one unbatched sequence `xs` `(T, in)` (float64) and weights as in Q2: start from
# `h_0 = 0` (shape `(H,)`), run `h_t = tanh(W x_t + U h_{t−1} + b)` for
# `t = 1 … T` (with `x_t = xs[t − 1]`), and return the spectral norm (largest singular
# value) of the `(H, H)` Jacobian `∂h_T / ∂h_0`, evaluated at `h_0 = 0`, as a Python
# `float`. Use autograd to get the Jacobian (e.g. `torch.autograd.functional.jacobian`)
# and `torch.linalg.matrix_norm(..., ord=2)` for the norm.

# %% [raw]
# # BEGIN SOLUTION

# %%
def jacobian_norm(W, U, b, xs):
    # BEGIN SOLUTION
    def last_state(h0):
        h = h0
        for x_t in xs:
            h = torch.tanh(W @ x_t + U @ h + b)
        return h

    h0 = torch.zeros(U.shape[0], dtype=xs.dtype)
    jac = torch.autograd.functional.jacobian(last_state, h0)
    return torch.linalg.matrix_norm(jac, ord=2).item()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_W0, _b0 = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
_U0 = 0.5 * torch.eye(2, dtype=torch.float64)    # h stays 0, so ∂h_T/∂h_0 = 0.5^T I
assert abs(float(jacobian_norm(_W0, _U0, _b0, torch.zeros(3, 3, dtype=torch.float64))) - 0.125) < 1e-12


# %%
# HIDDEN
def _explicit_norm(W, U, b, xs):
    _hh, _jac = torch.zeros(U.shape[0], dtype=torch.float64), torch.eye(U.shape[0],
                                                                         dtype=torch.float64)
    for _x_t in xs:
        _hh = torch.tanh(W @ _x_t + U @ _hh + b)
        _jac = torch.diag(1 - _hh ** 2) @ U @ _jac
    return torch.linalg.matrix_norm(_jac, ord=2).item()


_g = torch.Generator().manual_seed(hidden_seed(13))
for _t, _in, _hid in [(1, 2, 3), (7, 5, 4), (20, 9, 16)]:
    _W = torch.randn(_hid, _in, generator=_g, dtype=torch.float64)
    _U = 1.5 * torch.randn(_hid, _hid, generator=_g, dtype=torch.float64) / _hid ** 0.5
    _b = torch.randn(_hid, generator=_g, dtype=torch.float64)
    _xs = torch.randn(_t, _in, generator=_g, dtype=torch.float64)
    _got = jacobian_norm(_W, _U, _b, _xs)
    assert isinstance(_got, float)
    assert abs(_got - _explicit_norm(_W, _U, _b, _xs)) <= 1e-9 * _explicit_norm(_W, _U, _b, _xs)
for _gain in (0.5, 2.0):
    _wts = make_weights(_gain, seed=3)
    _want = _explicit_norm(*_wts, text_steps[:30])
    assert abs(jacobian_norm(*_wts, text_steps[:30]) - _want) <= 1e-9 * _want

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q7_vanishing
# points: 2

# %% [markdown]
# **Q7 · Interpretation: vanishing or exploding?** With `make_weights(g)` (seed 0) and
# `text_steps`:
#
# * set `factors` to a dict mapping each gain `g` in `GAINS` to the **per-step factor**
#   $\|\partial h_{50} / \partial h_0\|_2^{1/50}$ over all 50 characters;
# * set `orders_lost` to how many **orders of magnitude** (powers of ten, a positive
#   float) the gradient's norm loses between `T = 5` and `T = 50` for `g = 0.5`, i.e.
#   $\log_{10}\big(\|\partial h_5/\partial h_0\| \,/\, \|\partial h_{50}/\partial h_0\|\big)$
#   with $h_5$ computed from the first 5 characters;
# * set `critical_gain` to the smallest `g` in `GAINS` whose per-step factor is above 1,
#   i.e. for which the gradient no longer vanishes but grows with the distance.

# %% [raw]
# # BEGIN SOLUTION

# %%
factors = {g: jacobian_norm(*make_weights(g), text_steps) ** (1 / 50) for g in GAINS}  # SOLUTION
orders_lost = math.log10(jacobian_norm(*make_weights(0.5), text_steps[:5]) / jacobian_norm(*make_weights(0.5), text_steps))  # SOLUTION
critical_gain = min(g for g in GAINS if factors[g] > 1)  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert isinstance(factors, dict) and set(factors) == set(GAINS)
assert all(f > 0 for f in factors.values())
assert orders_lost > 0 and critical_gain in GAINS


# %%
# HIDDEN
def _reference_norm(gain, steps):
    _W, _U, _b = make_weights(gain)
    _hh, _jac = torch.zeros(HIDDEN, dtype=torch.float64), torch.eye(HIDDEN, dtype=torch.float64)
    for _x_t in text_steps[:steps]:
        _hh = torch.tanh(_W @ _x_t + _U @ _hh + _b)
        _jac = torch.diag(1 - _hh ** 2) @ _U @ _jac
    return torch.linalg.matrix_norm(_jac, ord=2).item()


_factors = {_gain: _reference_norm(_gain, 50) ** (1 / 50) for _gain in GAINS}
for _gain in GAINS:
    assert abs(factors[_gain] - _factors[_gain]) < 1e-6
assert abs(orders_lost - math.log10(_reference_norm(0.5, 5) / _reference_norm(0.5, 50))) < 1e-3
assert critical_gain == min(_gain for _gain in GAINS if _factors[_gain] > 1)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
