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
# name: 06_finetune
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/06_finetune.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/06_finetune.ipynb)
#
# # Exercise 06 · Fine-tuning the full multimodal model
#
# Write the code where you see `...`, then run the `grader.check(...)` cell below it: it
# runs the public tests. Your instructor grades with more, hidden tests, so make your
# code correct, not just the examples. Do not delete or reorder cells.
#
# **Fine-tuning (微调)** continues training a model whose encoders were pretrained, now
# on the task at hand: all of its weights, or only some of them. You will repair the shapes of the blog post's sketch
# of the full model, write a LoRA layer (low-rank adaptation, which trains a small update
# beside a frozen weight), give each part of a model its own learning rate and weight
# decay, freeze all but the last stages of an encoder and count what is left to train,
# and work out how much LoRA saves on a MiniLM-sized text encoder.

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
grader = Notebook("06_finetune.ipynb")

# %%
import torch
from torch import nn
from torch.nn import functional as F

from mmcourse.nn import encoders

# The post's sketch: three encoders whose outputs are ResNet-50's 1000 ImageNet logits
# per input (random numbers stand in for them here), concatenated and fed to an LSTM,
# whose result goes to a linear classifier over 10 classes.
_gen = torch.Generator().manual_seed(0)
x1, x2, x3 = (torch.randn(4, 1000, generator=_gen) for _ in range(3))  # (N, 1000) each
post_lstm = nn.LSTM(input_size=2048, hidden_size=512, num_layers=2, batch_first=True)
post_head = nn.Linear(512, 10)

for what, step in (
        ("the LSTM on torch.cat((x1, x2, x3), dim=1)",
         lambda: post_lstm(torch.cat((x1, x2, x3), dim=1))),
        ("the Linear layer on what the LSTM returns",
         lambda: post_head(post_lstm(torch.randn(4, 3, 2048, generator=_gen))))):
    try:
        step()
    except (RuntimeError, TypeError) as err:
        print(f"{what}: {type(err).__name__}: {err}")

# %% [raw]
# # BEGIN QUESTION
# name: q1_post_shapes
# points: 2

# %% [markdown]
# **Q1 · The post's model, shape by shape.** In short, the post builds its full model as
#
# ```python
# x = torch.cat((x1, x2, x3), dim=1)   # x1, x2, x3: resnet50 outputs, (N, 1000) each
# lstm = nn.LSTM(input_size=2048, hidden_size=512, num_layers=2, batch_first=True)
# fc = nn.Linear(512, 10)
# out = fc(lstm(x))
# ```
#
# and, as the cell above shows, it does not run. Three things are wrong (the second
# raises no error of its own: once the widths fit, it silently computes the wrong thing):
#
# * **width** — the concatenation has shape `(N, 3000)`, but the LSTM expects features
#   of width `input_size = 2048`;
# * **rank** — a batch-first LSTM reads a batch of *sequences* `(N, L, input_size)`. A 2-D
#   input is taken as one unbatched sequence of `N` steps, so the samples of the batch
#   would be read one after another as if they were time steps;
# * **return value** — `nn.LSTM` returns a tuple `(output, (h_n, c_n))`, not a tensor.
#
# The repaired model gives each of the `M` modalities a `D`-wide embedding (ResNet-50's
# pooled features before its classifier are 2048 wide), reads the modalities as a
# sequence of `M` steps, and classifies the last layer's final hidden state. Write:
#
# * `concat_width(widths)` — `widths` is a list or tuple of `int`s, the widths `w_i` of
#   tensors of shape `(N, w_i)`; return, as a Python `int`, the width of their
#   concatenation along `dim=1` (0 for an empty list).
# * `as_lstm_sequence(embeddings)` — `embeddings` is a list or tuple of `M ≥ 1` tensors of
#   shape `(N, D)` (same dtype); return the tensor of shape `(N, M, D)` whose
#   `[:, m]` is `embeddings[m]`, ready for a batch-first LSTM. Use differentiable torch
#   operations (no Python loop over the samples).
# * `last_state(lstm_output)` — `lstm_output` is the tuple `(output, (h_n, c_n))` that a
#   one-directional `nn.LSTM` returns (any `num_layers`, `batch_first` true or false,
#   plain or packed input); `h_n` has shape `(num_layers, N, H)`. Return the final hidden
#   state of the last layer, shape `(N, H)`. Take it from `h_n`, not from `output`
#   (whose layout depends on `batch_first`, and which is a `PackedSequence` for packed
#   input).

# %% [raw]
# # BEGIN SOLUTION

# %%
def concat_width(widths):
    # BEGIN SOLUTION
    return int(sum(int(w) for w in widths))
    # END SOLUTION


def as_lstm_sequence(embeddings):
    # BEGIN SOLUTION
    return torch.stack(tuple(embeddings), dim=1)
    # END SOLUTION


def last_state(lstm_output):
    # BEGIN SOLUTION
    _, (h_n, _) = lstm_output
    return h_n[-1]
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert concat_width([1000, 1000, 1000]) == 3000  # not the 2048 the post's LSTM expects
_seq = as_lstm_sequence([torch.full((4, 2048), float(_m)) for _m in range(3)])
assert _seq.shape == (4, 3, 2048) and bool((_seq[:, 2] == 2).all())
_h = last_state(post_lstm(_seq))
assert _h.shape == (4, 512)
assert post_head(_h).shape == (4, 10)

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed, in_submission

_g = torch.Generator().manual_seed(hidden_seed(21))
assert type(concat_width([1000, 1000, 1000])) is int
assert concat_width([]) == 0 and concat_width((7,)) == 7
for _ in range(30):
    _ws = [int(_w) for _w in torch.randint(1, 50, (int(torch.randint(1, 6, (1,), generator=_g)),),
                                           generator=_g)]
    _want = torch.cat([torch.zeros(2, _w) for _w in _ws], dim=1).shape[1]
    assert concat_width(_ws) == _want and concat_width(tuple(_ws)) == _want, _ws
    assert type(concat_width(tuple(_ws))) is int

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(22))
for _n, _m, _d in ((1, 1, 1), (2, 5, 3), (7, 3, 16), (3, 7, 4), (16, 2, 33)):
    for _dtype in (torch.float32, torch.float64, torch.float16):
        _embs = [torch.randn(_n, _d, generator=_g).to(_dtype) for _ in range(_m)]
        _want = torch.stack(_embs, dim=1)
        for _arg in (list(_embs), tuple(_embs)):
            _got = as_lstm_sequence(_arg)
            assert_same(_got, _want, rtol=0, atol=0, what=f"as_lstm_sequence {(_n, _m, _d)}")
# gradients reach every embedding, and a batch-first LSTM reads M steps
_embs = [torch.randn(5, 6, generator=_g, requires_grad=True) for _ in range(4)]
_lstm = nn.LSTM(6, 3, batch_first=True)
_out, _ = _lstm(as_lstm_sequence(_embs))
assert _out.shape == (5, 4, 3)
_out.sum().backward()
assert all(_e.grad is not None and bool(_e.grad.abs().sum() > 0) for _e in _embs)

# %%
# HIDDEN
_ = torch.manual_seed(hidden_seed(23))
for _layers in (1, 2, 3):
    for _bf in (True, False):
        for _n, _len in ((5, 3), (2, 6), (1, 1)):
            _lstm = nn.LSTM(input_size=4, hidden_size=7, num_layers=_layers, batch_first=_bf)
            _x = torch.randn(_n, _len, 4) if _bf else torch.randn(_len, _n, 4)
            _res = _lstm(_x)
            _got = last_state(_res)
            assert_same(_got, _res[1][0][-1], rtol=0, atol=0,
                        what=f"last_state {(_layers, _bf, _n, _len)}")
# packed, padded sequences of different lengths: the final state of each sequence
_lstm = nn.LSTM(input_size=3, hidden_size=5, num_layers=2, batch_first=True)
_x = torch.randn(4, 6, 3)
_lengths = torch.tensor([6, 2, 4, 1])
_packed = nn.utils.rnn.pack_padded_sequence(_x, _lengths, batch_first=True, enforce_sorted=False)
_res = _lstm(_packed)
_got = last_state(_res)
assert_same(_got, _res[1][0][-1], rtol=0, atol=0, what="last_state of a packed batch")
assert_same(_got[1], _lstm(_x[1:2, :2])[1][0][-1, 0], atol=1e-6)
# the post's model, repaired, from 2048-wide embeddings to 10 class scores
_repaired = nn.LSTM(2048, 512, num_layers=2, batch_first=True)
_logits = nn.Linear(512, 10)(last_state(_repaired(as_lstm_sequence([torch.randn(3, 2048)] * 3))))
assert _logits.shape == (3, 10)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_lora
# points: 3

# %% [markdown]
# **Q2 · A LoRA layer.** Fine-tuning every weight of a large model is costly: each
# trained weight needs its gradient and the optimiser's state. LoRA (low-rank
# adaptation) keeps a pretrained linear layer's weight `W` `(out, in)` and bias `b`
# `(out,)` frozen and trains only a low-rank update `ΔW = (α / r) · B A`, with
# `A` of shape `(r, in)`, `B` of shape `(out, r)` and a small rank `r = A.shape[0]`.
# `B` starts at zero, so training starts from the pretrained layer. Write
#
# * `lora_forward(x, weight, bias, A, B, alpha)` — `x` has shape `(..., in)` (any number
#   of leading dimensions, also none), `bias` is a tensor `(out,)` or `None`, `alpha` a
#   Python float. Return `y` of shape `(..., out)`:
#
#   $$y = x W^\top + b + \frac{\alpha}{r}\,(x A^\top) B^\top .$$
#
#   Compute the update through the thin product `x Aᵀ` of shape `(..., r)`: that takes
#   `r · (in + out)` multiplications per row, fewer than forming the `(out, in)` matrix
#   `B A` first.
# * `lora_merge(weight, A, B, alpha)` — return the new `(out, in)` weight
#   `W + (α / r) · B A` of a plain linear layer that computes the same function as
#   `lora_forward` (with the same bias), for serving the fine-tuned model without the
#   extra matrices.
#
# Use differentiable torch operations (`@`, `F.linear`, …), keep the inputs' dtype, and
# do not change any argument in place. The tests check values in float64 to 1e-10 and
# that gradients reach `A` and `B` when `W` and `b` are frozen (`requires_grad=False`).

# %% [raw]
# # BEGIN SOLUTION

# %%
def lora_forward(x, weight, bias, A, B, alpha):
    # BEGIN SOLUTION
    scale = alpha / A.shape[0]
    return F.linear(x, weight, bias) + scale * ((x @ A.T) @ B.T)
    # END SOLUTION


def lora_merge(weight, A, B, alpha):
    # BEGIN SOLUTION
    return weight + (alpha / A.shape[0]) * (B @ A)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[1.0, 2.0]])
_W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
_b = torch.tensor([0.0, 0.0, 1.0])
_A = torch.tensor([[1.0, 1.0]])          # r = 1
_B = torch.tensor([[1.0], [0.0], [2.0]])
assert lora_forward(_x, _W, _b, _A, _B, 2.0).tolist() == [[7.0, 2.0, 16.0]]
assert lora_merge(_W, _A, _B, 2.0).tolist() == [[3.0, 2.0], [0.0, 1.0], [5.0, 5.0]]
assert lora_forward(_x, _W, _b, _A, torch.zeros(3, 1), 2.0).tolist() == [[1.0, 2.0, 4.0]]

# %%
# HIDDEN
def _lora_ref(x, W, b, A, B, alpha):
    y = x @ W.T + (alpha / A.shape[0]) * ((x @ A.T) @ B.T)
    return y if b is None else y + b


_g = torch.Generator().manual_seed(hidden_seed(31))
_kw = {"generator": _g, "dtype": torch.float64}
for _in, _out, _r, _lead in ((5, 3, 1, (2,)), (16, 8, 4, (3, 7)), (32, 64, 8, (2, 2, 5)),
                             (7, 7, 7, ()), (40, 12, 2, (1,)), (9, 30, 3, (6, 1, 2))):
    for _alpha in (1.0, 8.0, 16.0, 0.5):
        for _with_bias in (True, False):
            _x = torch.randn(*_lead, _in, **_kw)
            _W, _A = torch.randn(_out, _in, **_kw), torch.randn(_r, _in, **_kw)
            _B = torch.randn(_out, _r, **_kw)
            _b = torch.randn(_out, **_kw) if _with_bias else None
            _saved = [t.clone() for t in (_x, _W, _A, _B)]
            _got = lora_forward(_x, _W, _b, _A, _B, _alpha)
            _want = _lora_ref(_x, _W, _b, _A, _B, _alpha)
            assert_same(_got, _want, values=False)
            assert float((_got - _want).abs().max()) <= 1e-10 * max(1.0, float(_want.abs().max())), \
                (_in, _out, _r, _alpha)
            _merged = lora_merge(_W, _A, _B, _alpha)
            assert_same(_merged, _W, values=False, what="lora_merge(...)")
            _served = _x @ _merged.T + (0 if _b is None else _b)
            assert float((_served - _got).abs().max()) <= 1e-10 * max(1.0, float(_got.abs().max()))
            assert all(torch.equal(_s, _t) for _s, _t in zip(_saved, (_x, _W, _A, _B))), \
                "an argument was changed in place"
# float32 stays float32
_x, _W = torch.randn(4, 10, generator=_g), torch.randn(6, 10, generator=_g)
_A, _B, _b = torch.randn(3, 10, generator=_g), torch.randn(6, 3, generator=_g), torch.randn(6, generator=_g)
assert_same(lora_merge(_W, _A, _B, 4.0), _W, values=False, what="lora_merge(...)")
assert_same(lora_forward(_x, _W, _b, _A, _B, 4.0), _lora_ref(_x, _W, _b, _A, _B, 4.0), atol=1e-4)

# %%
# HIDDEN
# B = 0 is the pretrained layer, and gradients reach only A and B when W and b are frozen
def _lora_ref(x, W, b, A, B, alpha):
    y = x @ W.T + (alpha / A.shape[0]) * ((x @ A.T) @ B.T)
    return y if b is None else y + b


_g = torch.Generator().manual_seed(hidden_seed(32))
_kw = {"generator": _g, "dtype": torch.float64}
for _in, _out, _r, _alpha in ((6, 4, 2, 16.0), (20, 11, 5, 3.0), (8, 8, 8, 1.0)):
    _x = torch.randn(5, _in, **_kw)
    _W, _b = torch.randn(_out, _in, **_kw), torch.randn(_out, **_kw)
    _A = torch.randn(_r, _in, **_kw)
    _zero = torch.zeros(_out, _r, dtype=torch.float64)
    assert_same(lora_forward(_x, _W, _b, _A, _zero, _alpha), F.linear(_x, _W, _b), rtol=0, atol=1e-12)
    assert_same(lora_merge(_W, _A, _zero, _alpha), _W, rtol=0, atol=0, what="lora_merge(...)")
    _up = torch.randn(5, _out, **_kw)
    for _B0 in (torch.randn(_out, _r, **_kw), _zero):
        _grads = []
        for _fn in (lora_forward, _lora_ref):
            _Wf, _bf = _W.clone(), _b.clone()
            _Al, _Bl = _A.clone().requires_grad_(True), _B0.clone().requires_grad_(True)
            _y = _fn(_x, _Wf, _bf, _Al, _Bl, _alpha)
            assert _y.requires_grad
            (_y * _up).sum().backward()
            assert _Wf.grad is None and _bf.grad is None
            _grads.append((_Al.grad, _Bl.grad))
        for _p, _q in zip(*_grads):
            assert _p is not None and torch.allclose(_p, _q, rtol=1e-10, atol=1e-12)
        if _B0 is _zero:  # at the start of training only B moves
            assert float(_grads[0][0].abs().max()) == 0.0
            assert float(_grads[0][1].abs().max()) > 0.0
# the same in a real layer: a frozen nn.Linear with trainable A and B
_ = torch.manual_seed(hidden_seed(33))
_base = nn.Linear(12, 5).double().requires_grad_(False)
_A = nn.Parameter(torch.randn(4, 12, dtype=torch.float64) * 0.1)
_B = nn.Parameter(torch.randn(5, 4, dtype=torch.float64) * 0.1)
_x = torch.randn(3, 12, dtype=torch.float64)
_y = lora_forward(_x, _base.weight, _base.bias, _A, _B, 8.0)
_y.square().sum().backward()
assert _base.weight.grad is None and _base.bias.grad is None
assert _A.grad is not None and _B.grad is not None
assert_same(_y, _base(_x) + 2.0 * (_x @ _A.T @ _B.T), atol=1e-12)

# %%
# HIDDEN
# the same function as the course's own LoRA layer, where the installed mmcourse has one
try:
    from mmcourse.nn.finetune import LoRALinear as _LoRALinear
except ImportError:
    _LoRALinear = None
if _LoRALinear is not None:
    _ = torch.manual_seed(hidden_seed(36))
    for _in, _out, _rank, _alpha in ((12, 5, 4, 8.0), (30, 17, 8, 16.0), (6, 9, 1, 1.0)):
        _base = nn.Linear(_in, _out).double()
        _layer = _LoRALinear(_base, rank=_rank, alpha=_alpha).eval()
        with torch.no_grad():
            _ = _layer.lora_B.normal_()
        _x = torch.randn(2, 3, _in, dtype=torch.float64)
        _want = _layer(_x).detach()
        _got = lora_forward(_x, _base.weight, _base.bias, _layer.lora_A, _layer.lora_B, _alpha)
        assert_same(_got, _want, values=False)
        assert float((_got.detach() - _want).abs().max()) <= 1e-10 * max(1.0, float(_want.abs().max()))
        _merged = lora_merge(_base.weight, _layer.lora_A, _layer.lora_B, _alpha).detach()
        assert_same(_merged, _layer.merged().weight, rtol=1e-12, atol=1e-12, what="lora_merge(...)")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_param_groups
# points: 3

# %% [markdown]
# **Q3 · Learning rates and weight decay per part.** Pretrained encoders are usually
# fine-tuned with a smaller learning rate than a new, randomly initialised head, and
# weight decay is applied to weight matrices only, not to biases or normalisation
# weights. Write `parameter_groups(model, lrs, weight_decay)`:
#
# * `model` is an `nn.Module`; `lrs` maps parameter-name prefixes (as in
#   `model.named_parameters()`, e.g. `"encoders.image"`, `"encoders.text"`, `"head"`) to
#   learning rates; `weight_decay` is a float.
# * A prefix `p` matches a parameter named `name` when `name == p` or `name` starts with
#   `p + "."` (so `"head"` matches `"head.weight"` but not `"header.weight"`). Each
#   parameter takes the learning rate of its **longest** matching prefix.
# * Leave out frozen parameters (`requires_grad` false). A trainable parameter that no
#   prefix matches is an error: raise `ValueError` with the parameter's name in the
#   message.
# * Parameters with fewer than 2 dimensions (biases, LayerNorm weights, a scalar such as
#   a temperature) get weight decay 0; all others get `weight_decay`.
#
# Return a list of dicts, one for each prefix and kind (decayed or not) that receives at
# least one parameter, each with the keys `"params"` (a list of the parameters
# themselves), `"lr"` and `"weight_decay"`, so that `torch.optim.AdamW(groups)` accepts
# it. The order of the groups does not matter; leave out empty groups.

# %% [raw]
# # BEGIN SOLUTION

# %%
def parameter_groups(model, lrs, weight_decay):
    # BEGIN SOLUTION
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        matches = [p for p in lrs if name == p or name.startswith(p + ".")]
        if not matches:
            raise ValueError(f"no learning rate for parameter {name!r}")
        prefix = max(matches, key=len)
        decay = param.dim() >= 2
        key = (prefix, decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": lrs[prefix],
                           "weight_decay": weight_decay if decay else 0.0}
        groups[key]["params"].append(param)
    return list(groups.values())
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_ = torch.manual_seed(0)
_model = nn.Module()
_model.encoders = nn.ModuleDict({"image": nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4)),
                                 "text": nn.Linear(6, 4)})
_model.head = nn.Linear(4, 2)
_ = _model.encoders["text"].bias.requires_grad_(False)  # frozen: left out
_groups = parameter_groups(_model, {"encoders": 1e-4, "encoders.image": 1e-5, "head": 1e-3}, 0.01)
_p = dict(_model.named_parameters())
_ids = lambda *names: frozenset(id(_p[n]) for n in names)
_got = {frozenset(id(q) for q in g["params"]): (g["lr"], g["weight_decay"]) for g in _groups}
assert len(_groups) == 5
assert _got == {
    _ids("encoders.image.0.weight"): (1e-5, 0.01),
    _ids("encoders.image.0.bias", "encoders.image.1.weight", "encoders.image.1.bias"): (1e-5, 0.0),
    _ids("encoders.text.weight"): (1e-4, 0.01),
    _ids("head.weight"): (1e-3, 0.01),
    _ids("head.bias"): (1e-3, 0.0),
}
_opt = torch.optim.AdamW(_groups)

# %%
# HIDDEN
# The models live where the answers run: the helpers below build them there, call the
# answers and return names and numbers, which are checked here against the same models
# built here.
_TREE = '''
import torch
from torch import nn


def _tree(seed, frozen=(), extra=None):
    torch.manual_seed(seed)
    model = nn.Module()
    model.encoders = nn.ModuleDict({
        "image": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                               nn.Linear(16, 6), nn.LayerNorm(6)),
        "text": nn.Sequential(nn.Embedding(20, 6), nn.LSTM(6, 6, batch_first=True)),
        "audio": nn.Conv1d(2, 6, 3, bias=False)})
    model.fusion = nn.Linear(18, 6)
    model.head = nn.Sequential(nn.Linear(6, 6), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 3))
    model.header = nn.Linear(3, 2)
    model.temperature = nn.Parameter(torch.tensor(0.07))
    if extra is not None:  # "trainable" or "frozen"
        model.extra = nn.Linear(2, 2)
        model.extra.requires_grad_(extra == "trainable")
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return model
'''
_helpers = in_submission(_TREE + '''

def _groups_by_name(seed, frozen, lrs, wd, extra=None):
    model = _tree(seed, frozen, extra)
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        groups = parameter_groups(model, lrs, wd)
    except ValueError as err:
        return {"ValueError": str(err)}
    listed = [{"params": [names.get(id(q), "?") for q in g["params"]], "lr": g["lr"],
               "weight_decay": g["weight_decay"]} for g in groups]
    adamw = torch.optim.AdamW(groups)
    seen = [{"params": [names.get(id(q), "?") for q in pg["params"]], "lr": pg["lr"],
             "weight_decay": pg["weight_decay"]} for pg in adamw.param_groups]
    return {"groups": listed, "adamw": seen}
''')
exec(_TREE)


def _expected_groups(model, lrs, wd):
    out = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            prefix = max((k for k in lrs if name == k or name.startswith(k + ".")), key=len)
            decay = param.dim() >= 2
            out.setdefault((prefix, decay), set()).add(name)
    return {frozenset(v): (lrs[k[0]], wd if k[1] else 0.0) for k, v in out.items()}


def _check(seed, lrs, wd, frozen=(), extra=None):
    frozen = sorted(frozen)
    _reply = _helpers._groups_by_name(seed, frozen, lrs, wd, extra)
    assert isinstance(_reply, dict) and "groups" in _reply, _reply
    _groups = _reply["groups"]
    assert isinstance(_groups, list) and all(isinstance(g, dict) for g in _groups)
    assert all(len(g["params"]) > 0 for g in _groups), "empty group"
    _got = {}
    for g in _groups:
        assert "?" not in g["params"], "a group holds something that is not the model's parameter"
        _key = frozenset(g["params"])
        assert len(_key) == len(g["params"]) and _key not in _got
        _got[_key] = (g["lr"], g["weight_decay"])
    _model = _tree(seed, frozen, extra)
    _want = _expected_groups(_model, lrs, wd)
    assert len(_groups) == len(_want), (len(_groups), len(_want))
    assert _got == _want, (sorted(_got.values()), sorted(_want.values()))
    # AdamW accepts the groups and every trainable parameter gets its prefix's lr
    _lr_of = {n: pg["lr"] for pg in _reply["adamw"] for n in pg["params"]}
    _wd_of = {n: pg["weight_decay"] for pg in _reply["adamw"] for n in pg["params"]}
    for name, param in _model.named_parameters():
        if not param.requires_grad:
            assert name not in _lr_of, f"frozen {name} was given to the optimiser"
            continue
        prefix = max((k for k in lrs if name == k or name.startswith(k + ".")), key=len)
        assert _lr_of[name] == lrs[prefix], name
        assert _wd_of[name] == (wd if param.dim() >= 2 else 0.0), name


_check(0, {"encoders": 1e-4, "fusion": 5e-4, "head": 1e-3, "header": 2e-3,
           "temperature": 1e-2}, 0.05)
_check(0, {"encoders": 1e-4, "encoders.image": 1e-5, "encoders.image.3": 3e-5,
           "encoders.text.1": 2e-4, "fusion": 5e-4, "head": 1e-3, "head.3": 3e-3,
           "header": 2e-3, "temperature": 1e-2}, 0.1)
# "head" must not catch "header.weight": header's lr has to come from its own prefix
_check(0, {"encoders": 1e-4, "fusion": 5e-4, "head": 1e-3, "header.weight": 7e-4,
           "header.bias": 8e-4, "temperature": 1e-2}, 0.01)
# random frozen parts; prefixes in random order; frozen parameters need no prefix
_g = torch.Generator().manual_seed(hidden_seed(34))
_prefixes = ["encoders", "encoders.image", "encoders.image.0", "encoders.text",
             "encoders.audio", "fusion", "head", "head.0", "header", "temperature"]
for _seed in range(1, 9):
    _frozen = [_name for _name, _ in _tree(_seed).named_parameters()
               if float(torch.rand(1, generator=_g)) < 0.3]
    _order = torch.randperm(len(_prefixes), generator=_g).tolist()
    _lrs = {_prefixes[i]: 10.0 ** -int(torch.randint(2, 6, (1,), generator=_g)) * (i + 1)
            for i in _order}
    _check(_seed, _lrs, float(torch.rand(1, generator=_g)), _frozen)
_check(9, {"fusion": 1e-3, "head": 1e-3, "header": 1e-3, "temperature": 1e-3}, 0.01,
       [_name for _name, _ in _tree(9).named_parameters() if _name.startswith("encoders.")])
# a trainable parameter that no prefix matches raises ValueError naming it
_reply = _helpers._groups_by_name(10, [], {"encoders": 1e-4, "fusion": 1e-3, "head": 1e-3,
                                           "header": 1e-3, "temperature": 1e-2}, 0.01, "trainable")
assert "ValueError" in _reply, "a trainable parameter without a prefix must raise ValueError"
assert "extra.weight" in _reply["ValueError"] or "extra.bias" in _reply["ValueError"], _reply
_reply = _helpers._groups_by_name(10, [], {"encoders": 1e-4, "fusion": 1e-3, "head": 1e-3,
                                           "extra": 1e-3, "temperature": 1e-2}, 0.01, "trainable")
assert "ValueError" in _reply, "'head' must not match 'header.weight'"
assert "header." in _reply["ValueError"], _reply
_check(10, {"encoders": 1e-4, "fusion": 1e-3, "head": 1e-3, "header": 1e-3,
            "temperature": 1e-2}, 0.01, extra="frozen")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_trainable
# points: 2

# %% [markdown]
# **Q4 · Freeze all but the last stages, and count.** A common middle way between a
# frozen encoder and full fine-tuning trains only its last stages. Write
#
# * `count_trainable(model)` — the number of trainable numbers in `model`: the elements
#   of its parameters with `requires_grad` true, each parameter counted once even when
#   two modules share it. Buffers (such as batch-norm running statistics) are not
#   parameters. Return a Python `int`.
# * `freeze_all_but_last(model, seq, k)` — `seq` is an `nn.Sequential` inside `model`
#   and `k ≥ 0` an `int`. Afterwards the parameters of the last `k` children of `seq`
#   (all of them when `k ≥ len(seq)`, none when `k = 0`) have `requires_grad` true and
#   every other parameter of `model` has it false, whatever it was before. Change only
#   `requires_grad`, in place; return nothing.
#
# For example, `m = encoders.efficientnet_lite0(pretrained=False)` holds its 7 block
# stages in `m.blocks`, an `nn.Sequential`: `freeze_all_but_last(m, m.blocks, 2)` leaves
# the last two stages to train and freezes the stem, the other stages and the head.

# %% [raw]
# # BEGIN SOLUTION

# %%
def count_trainable(model):
    # BEGIN SOLUTION
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    # END SOLUTION


def freeze_all_but_last(model, seq, k):
    # BEGIN SOLUTION
    for param in model.parameters():
        param.requires_grad_(False)
    children = list(seq.children())
    for child in children[max(len(children) - k, 0):]:
        for param in child.parameters():
            param.requires_grad_(True)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
assert count_trainable(_net) == 23
_ = freeze_all_but_last(_net, _net, 1)
assert count_trainable(_net) == 8
_model = nn.Module()
_model.stem = nn.Conv2d(1, 2, 3)                                          # 20 parameters
_model.blocks = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))  # 6 + 9
_model.head = nn.Linear(3, 1)                                             # 4
_ = freeze_all_but_last(_model, _model.blocks, 2)
assert count_trainable(_model) == 9
_ = freeze_all_but_last(_model, _model.blocks, 3)
assert count_trainable(_model) == 15

# %%
# HIDDEN
# Built, frozen and counted where the answers run; checked here on the same models.
_STAGED = '''
import torch
from torch import nn


def _staged_model(seed):
    torch.manual_seed(seed)
    model = nn.Module()
    model.stem = nn.Conv2d(3, 2, 3)
    model.blocks = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3), nn.LayerNorm(3),
                                 nn.Linear(3, 5))
    model.head = nn.Linear(5, 1)
    return model
'''
_helpers4 = in_submission(_STAGED + '''

def _mlp_count():
    return count_trainable(nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)))


def _tied_counts():
    emb = nn.Embedding(10, 4)
    out = nn.Linear(4, 10, bias=False)
    out.weight = emb.weight
    tied = nn.Sequential(emb, nn.BatchNorm1d(4), out)
    first = count_trainable(tied)
    tied[1].requires_grad_(False)
    return first, count_trainable(tied)


def _freeze(seed, before, k):
    model = _staged_model(seed)
    for name, param in model.named_parameters():
        param.requires_grad_(bool(before[name]))
    freeze_all_but_last(model, model.blocks, k)
    return ({name: bool(p.requires_grad) for name, p in model.named_parameters()},
            count_trainable(model))
''')
exec(_STAGED)
_mlp_count = _helpers4._mlp_count()
assert type(_mlp_count) is int and _mlp_count == 26
# shared parameters count once; buffers do not count
assert _helpers4._tied_counts() == (40 + 8, 40)
# every k, from any previous state (k = 0 freezes everything)
_g = torch.Generator().manual_seed(hidden_seed(41))
_staged = _staged_model(41)
_sizes = {_name: _param.numel() for _name, _param in _staged.named_parameters()}
for _k in (0, 1, 2, 3, 4, 5, 6, 9, 0, 2):
    _before = {_name: bool(torch.rand(1, generator=_g) < 0.5) for _name in _sizes}
    _flags, _counted = _helpers4._freeze(41, _before, _k)
    _blocks = list(_staged.blocks)
    _keep = {f"blocks.{i}.{_n}" for i in range(max(0, len(_blocks) - _k), len(_blocks))
             for _n, _ in _blocks[i].named_parameters()}
    assert _flags == {_name: _name in _keep for _name in _sizes}, (_k, _flags)
    assert _counted == sum(_sizes[_name] for _name in _keep), _k

# %%
# HIDDEN
# EfficientNet-Lite0 (no pretrained weights): its 7 block stages
_helpers_enet = in_submission('''
from mmcourse.nn import encoders


def _enet_counts(ks):
    model = encoders.efficientnet_lite0(pretrained=False)
    counts = {"all": count_trainable(model)}
    for k in ks:
        freeze_all_but_last(model, model.blocks, k)
        counts[k] = (count_trainable(model),
                     any(p.requires_grad for p in model.conv_stem.parameters()),
                     any(p.requires_grad for p in model.conv_head.parameters()))
    return counts
''')
_ks = (0, 1, 2, 3, 5, 7, 8)
_counts = _helpers_enet._enet_counts(_ks)
_enet = encoders.efficientnet_lite0(pretrained=False)
assert _counts["all"] == sum(p.numel() for p in _enet.parameters())
_stages = list(_enet.blocks)
for _k in _ks:
    _want = sum(p.numel() for s in _stages[max(0, len(_stages) - _k):] for p in s.parameters())
    assert _counts[_k] == (_want, False, False), (_k, _counts[_k], _want)
assert _counts[_ks[-1]][0] == sum(p.numel() for p in _enet.blocks.parameters())

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_interpret
# points: 1

# %% [markdown]
# **Q5 · What LoRA saves.** A MiniLM-sized text encoder (such as the course's
# all-MiniLM-L6-v2) has 6 transformer layers with hidden size 384. Fine-tune only the
# query and value projections of each layer's attention, each a 384 × 384 weight matrix
# (leave the biases out of the count), in two ways: fully, or with LoRA of rank `r = 8`
# on each of those matrices (an `A` and a `B` as in Q2). Set
#
# * `full_params` — the number of weights full fine-tuning of those projections trains
#   (an `int`);
# * `lora_params` — the number of weights LoRA trains instead (an `int`);
# * `lora_fraction` — `lora_params / full_params` (a `float`);
# * `answer` — the letter (`"a"`, `"b"`, `"c"` or `"d"`) of the true statement:
#   - **a** — LoRA trains about 0.4 % of those weights: one in 240.
#   - **b** — LoRA trains about 4 % of those weights: one in 24. The share is `2r / 384`
#     for each matrix, so rank 16 would train twice as many.
#   - **c** — LoRA trains about 4 % of those weights, but the share grows with depth:
#     with 12 layers it would be about 8 %.
#   - **d** — LoRA trains about half of those weights: `A` and `B` together are half as
#     big as the matrix they adapt.

# %% [raw]
# # BEGIN SOLUTION

# %%
full_params = 6 * 2 * 384 * 384  # SOLUTION
lora_params = 6 * 2 * (8 * 384 + 384 * 8)  # SOLUTION
lora_fraction = lora_params / full_params  # SOLUTION
answer = "b"  # SOLUTION
print("full:", full_params, " LoRA:", lora_params, " fraction:", lora_fraction)

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert isinstance(full_params, int) and isinstance(lora_params, int)
assert isinstance(lora_fraction, float) and 0 < lora_fraction < 1
assert answer in ("a", "b", "c", "d")

# %%
# HIDDEN
_proj = nn.Linear(384, 384, bias=False, device="meta")
_rank8 = torch.empty(8, 384, device="meta").numel() + torch.empty(384, 8, device="meta").numel()
assert full_params == 6 * 2 * _proj.weight.numel() == 1_769_472
assert lora_params == 6 * 2 * _rank8 == 73_728
assert abs(lora_fraction - 1 / 24) < 1e-6
assert answer == "b"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
