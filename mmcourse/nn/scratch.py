"""Convolution, pooling, recurrent layers and a CRNN written with plain tensor operations.

Every layer here is built from ``unfold``, matrix products and elementwise functions, so
each line can be read next to its equation. ``from_torch`` copies the weights of the
matching ``torch.nn`` layer, and ``relative_error`` compares the two.

Shapes use N for the batch, C for channels, H×W (or F×T) for the plane, T for time steps
and H for the hidden size of a recurrent layer.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Union[Tensor, tuple[Tensor, Tensor]]
"""A recurrent state: h (N, H), or (h, c) for the LSTM."""


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """(value, value) for an int, the tuple itself for an (h, w) pair."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _uniform(shape: tuple[int, ...], bound: float) -> Tensor:
    """A tensor of ``shape`` drawn from U(−bound, bound), torch's default layer init."""
    return torch.empty(shape).uniform_(-bound, bound)


def _assign(module: nn.Module, **tensors: Tensor) -> None:
    """Replace each named parameter of ``module`` by a detached copy of the given tensor."""
    for name, tensor in tensors.items():
        setattr(module, name, nn.Parameter(tensor.detach().clone()))


def relative_error(a: Tensor, b: Tensor) -> float:
    """CS231n's relative error: max_k |a_k − b_k| / max(|a_k| + |b_k|, 1e-8).

    ``a`` and ``b`` must have the same shape. In float64, values below 1e-6 mean the two
    computations agree; in float32 expect about 1e-5.
    """
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    denominator = (a.abs() + b.abs()).clamp(min=1e-8)
    return ((a - b).abs() / denominator).max().item()


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> Tensor:
    """2-D cross-correlation (what deep learning calls convolution), via ``unfold``.

        y[n,o,i,j] = b[o] + Σ_c Σ_u Σ_v W[o,c,u,v] · x[n,c, s·i+u−p, s·j+v−p]

    with x zero outside the image. ``unfold`` lays every kH×kW patch out as a column of
    length C_in·kH·kW, so the whole layer is one matrix product W (C_out, C_in·kH·kW) @
    columns (N, C_in·kH·kW, H_out·W_out).

    x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) → (N, C_out, H_out, W_out)
    with H_out = ⌊(H + 2p_h − kH) / s_h⌋ + 1 and likewise W_out. ``stride`` and ``padding``
    are an int or an (h, w) pair.
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"conv2d: x must be (N, C_in, H, W) and weight (C_out, C_in, kH, kW), "
                         f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    n, c_in, h, w = x.shape
    c_out, c_weight, kh, kw = weight.shape
    if c_in != c_weight:
        raise ValueError(f"conv2d: x has {c_in} input channels but weight {tuple(weight.shape)} "
                         f"expects {c_weight}")
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"conv2d: kernel {kh}×{kw} does not fit the padded {h}×{w} input")
    columns = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))
    y = weight.reshape(c_out, -1) @ columns
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(n, c_out, h_out, w_out)


def _windows(x: Tensor, kernel_size: int | tuple[int, int],
             stride: int | tuple[int, int] | None) -> Tensor:
    """Pooling windows of x (N, C, H, W) → (N, C, kH·kW, H_out, W_out), channels kept apart."""
    n, c, h, w = x.shape
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    columns = F.unfold(x.reshape(n * c, 1, h, w), (kh, kw), stride=(sh, sw))
    return columns.reshape(n, c, kh * kw, (h - kh) // sh + 1, (w - kw) // sw + 1)


def max_pool2d(x: Tensor, kernel_size: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None) -> Tensor:
    """Max pooling: y[n,c,i,j] = max_{u<kH, v<kW} x[n,c, s_h·i+u, s_w·j+v].

    x (N, C, H, W) → (N, C, ⌊(H − kH)/s_h⌋ + 1, ⌊(W − kW)/s_w⌋ + 1); stride defaults to
    the kernel size (non-overlapping windows).
    """
    return _windows(x, kernel_size, stride).max(dim=2).values


def avg_pool2d(x: Tensor, kernel_size: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None) -> Tensor:
    """Average pooling: y[n,c,i,j] = (1 / kH·kW) Σ_{u<kH, v<kW} x[n,c, s_h·i+u, s_w·j+v].

    Shapes as in :func:`max_pool2d`.
    """
    return _windows(x, kernel_size, stride).mean(dim=2)


class Conv2d(nn.Module):
    """A trainable :func:`conv2d`: y = W * x + b.

    weight (C_out, C_in, kH, kW) and bias (C_out,) start as U(−1/√fan_in, 1/√fan_in) with
    fan_in = C_in·kH·kW, as in ``nn.Conv2d``. forward: x (N, C_in, H, W) → (N, C_out, H_out, W_out).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.stride, self.padding = _pair(stride), _pair(padding)
        bound = 1 / math.sqrt(in_channels * kh * kw)
        self.weight = nn.Parameter(_uniform((out_channels, in_channels, kh, kw), bound))
        self.bias = nn.Parameter(_uniform((out_channels,), bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    @classmethod
    def from_torch(cls, conv: nn.Conv2d) -> Conv2d:
        """A copy of ``conv`` (zero padding given as numbers, no dilation, no groups)."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"Conv2d.from_torch needs an nn.Conv2d, got {type(conv).__name__}")
        if (isinstance(conv.padding, str) or conv.padding_mode != "zeros"
                or conv.dilation != (1, 1) or conv.groups != 1):
            raise ValueError("Conv2d.from_torch supports numeric zero padding only, "
                             "with dilation 1 and groups 1")
        copy = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                   conv.padding, bias=conv.bias is not None)
        _assign(copy, weight=conv.weight)
        if conv.bias is not None:
            _assign(copy, bias=conv.bias)
        return copy


def _torch_recurrent_parameters(module: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W_ih, W_hh, b_ih, b_hh) of a torch cell or of a one-layer, one-way torch layer."""
    suffix = ""
    if isinstance(module, nn.RNNBase):
        if module.num_layers != 1 or module.bidirectional or module.proj_size:
            raise ValueError("from_torch needs a single-layer, unidirectional layer "
                             "without projection")
        suffix = "_l0"
    if not module.bias:
        raise ValueError("from_torch needs a torch module built with bias=True")
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    w_ih, w_hh, b_ih, b_hh = (getattr(module, name + suffix) for name in names)
    return w_ih, w_hh, b_ih, b_hh


class _Cell(nn.Module):
    """What the recurrent cells share: W (G·H, input), U (G·H, H) and b (G·H,) for G gates.

    Every parameter starts as U(−1/√H, 1/√H), as in torch.
    """

    gates: int
    torch_types: tuple[type[nn.Module], ...]

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        size, bound = self.gates * hidden_size, 1 / math.sqrt(hidden_size)
        self.W = nn.Parameter(_uniform((size, input_size), bound))
        self.U = nn.Parameter(_uniform((size, hidden_size), bound))
        self.b = nn.Parameter(_uniform((size,), bound))

    def initial_state(self, x: Tensor) -> State:
        """The zero state h_0 (N, H) for a batch x (N, T, input)."""
        return x.new_zeros(x.shape[0], self.hidden_size)

    def _load(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> None:
        """Take torch's weights; torch's two biases act as their sum b = b_ih + b_hh."""
        _assign(self, W=w_ih, U=w_hh, b=b_ih + b_hh)

    @classmethod
    def from_torch(cls, module: nn.Module) -> _Cell:
        """A cell with the weights of the matching torch cell or one-layer torch layer."""
        if not isinstance(module, cls.torch_types):
            names = " or ".join(t.__name__ for t in cls.torch_types)
            raise TypeError(f"{cls.__name__}.from_torch needs nn.{names}, "
                            f"got {type(module).__name__}")
        if getattr(module, "nonlinearity", "tanh") != "tanh":
            raise ValueError(f"{cls.__name__}.from_torch needs nonlinearity='tanh'")
        cell = cls(module.input_size, module.hidden_size)
        cell._load(*_torch_recurrent_parameters(module))
        return cell


class RNNCell(_Cell):
    """Elman cell: h_t = tanh(W x_t + U h_{t−1} + b).

    W (H, input), U (H, H), b (H,); torch's b_ih + b_hh is b.
    forward: x_t (N, input), h (N, H) → h' (N, H).
    """

    gates = 1
    torch_types = (nn.RNN, nn.RNNCell)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(x @ self.W.T + h @ self.U.T + self.b)


class LSTMCell(_Cell):
    """LSTM cell, gates stacked in torch's order (i, f, g, o) along the rows of W, U and b:

        i = σ(W_i x + U_i h + b_i)        f = σ(W_f x + U_f h + b_f)
        g = tanh(W_g x + U_g h + b_g)     o = σ(W_o x + U_o h + b_o)
        c' = f ⊙ c + i ⊙ g                h' = o ⊙ tanh(c')

    W (4H, input), U (4H, H), b (4H,) = torch's b_ih + b_hh.
    forward: x (N, input), (h, c) each (N, H) → (h', c') each (N, H).
    """

    gates = 4
    torch_types = (nn.LSTM, nn.LSTMCell)

    def initial_state(self, x: Tensor) -> State:
        """The zero state (h_0, c_0), each (N, H), for a batch x (N, T, input)."""
        h = super().initial_state(x)
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        i, f, g, o = (x @ self.W.T + h @ self.U.T + self.b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GRUCell(_Cell):
    """GRU cell in torch's formulation, gates stacked in torch's order (r, z, n):

        r = σ(W_r x + U_r h + b_r)        z = σ(W_z x + U_z h + b_z)
        n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h

    W (3H, input), U (3H, H), b (3H,) = (b_r, b_z, b_in) and b_hn (H,). b_hn is kept apart
    because r multiplies it, so it cannot be merged into b_in.
    forward: x (N, input), h (N, H) → h' (N, H).
    """

    gates = 3
    torch_types = (nn.GRU, nn.GRUCell)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.b_hn = nn.Parameter(_uniform((hidden_size,), 1 / math.sqrt(hidden_size)))

    def _load(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> None:
        """Take torch's weights: b_r, b_z are sums of torch's two biases, b_in and b_hn are not."""
        rz = 2 * self.hidden_size
        _assign(self, W=w_ih, U=w_hh, b=torch.cat([b_ih[:rz] + b_hh[:rz], b_ih[rz:]]),
                b_hn=b_hh[rz:])

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        x_r, x_z, x_n = (x @ self.W.T + self.b).chunk(3, dim=1)
        h_r, h_z, h_n = (h @ self.U.T).chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * (h_n + self.b_hn))
        return (1 - z) * n + z * h


def _as_lengths(lengths: Tensor | None, batch: int, steps: int,
                device: torch.device) -> Tensor:
    """``lengths`` as a tensor on ``device``; None means every sequence has all ``steps``."""
    if lengths is None:
        return torch.full((batch,), steps, device=device)
    return torch.as_tensor(lengths, device=device)


def valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """mask[n, t] = (t < lengths[n]): lengths (N,) with 1 ≤ lengths ≤ steps → bool (N, steps)."""
    if lengths.dim() != 1 or lengths.numel() == 0:
        raise ValueError(f"lengths must be a non-empty (N,) tensor, "
                         f"got shape {tuple(lengths.shape)}")
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"lengths must lie in [1, {steps}], got {lengths.tolist()}")
    return torch.arange(steps, device=lengths.device) < lengths[:, None]


def _hidden(state: State) -> Tensor:
    """The output h of a state: h itself, or the h of (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def _where(keep: Tensor, new: State, old: State) -> State:
    """``new`` where keep (N, 1) is true, else ``old``, for a tensor or (h, c) state."""
    if isinstance(new, tuple):
        return tuple(torch.where(keep, a, b) for a, b in zip(new, old))
    return torch.where(keep, new, old)


def run_over_time(cell: Callable[[Tensor, State], State], x: Tensor, state: State,
                  lengths: Tensor | None = None) -> tuple[Tensor, State]:
    """Unroll ``cell`` over time: state_t = cell(x_t, state_{t−1}), output_t = h_t.

    x (N, T, input), state (N, H) or ((N, H), (N, H)) → outputs (N, T, H) and the last state.
    With ``lengths`` (N,), sequence n only updates while t < lengths[n]: afterwards its
    state is held, so the last state is the one at step lengths[n] − 1, and its outputs
    are zero, as ``pad_packed_sequence`` gives. Without, every step is valid.
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (N, T, input), got shape {tuple(x.shape)}")
    n, steps = x.shape[:2]
    mask = valid_mask(_as_lengths(lengths, n, steps, x.device), steps)
    outputs = []
    for t in range(steps):
        keep = mask[:, t, None]
        state = _where(keep, cell(x[:, t], state), state)
        outputs.append(torch.where(keep, _hidden(state), 0.0))
    return torch.stack(outputs, dim=1), state


class Recurrent(nn.Module):
    """A recurrent layer: the subclass's ``cell_type`` run over time by :func:`run_over_time`.

    forward: x (N, T, input) (batch first), h0 (the cell's state; zeros if None), lengths
    (N,) or None → (outputs (N, T, H), last state).
    """

    cell_type: type[_Cell]

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = self.cell_type(input_size, hidden_size)

    def forward(self, x: Tensor, h0: State | None = None,
                lengths: Tensor | None = None) -> tuple[Tensor, State]:
        state = self.cell.initial_state(x) if h0 is None else h0
        return run_over_time(self.cell, x, state, lengths)

    @classmethod
    def from_torch(cls, module: nn.Module) -> Recurrent:
        """A layer with the weights of a one-layer, unidirectional torch layer (or cell)."""
        layer = cls(module.input_size, module.hidden_size)
        layer.cell = cls.cell_type.from_torch(module)
        return layer


class RNN(Recurrent):
    """Elman RNN layer: h_t = tanh(W x_t + U h_{t−1} + b) for t = 0 … T−1.

    Returns (outputs (N, T, H), h_last (N, H)).
    """

    cell_type = RNNCell


class LSTM(Recurrent):
    """LSTM layer (:class:`LSTMCell` over time). Returns (outputs (N, T, H), (h_last, c_last))."""

    cell_type = LSTMCell


class GRU(Recurrent):
    """GRU layer (:class:`GRUCell` over time). Returns (outputs (N, T, H), h_last (N, H))."""

    cell_type = GRUCell


def masked_mean(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean over the valid steps: e[n] = (1 / L_n) Σ_{t < L_n} x[n, t].

    x (N, T, D), lengths (N,) → (N, D). Steps t ≥ L_n are ignored, whatever they hold.
    """
    mask = valid_mask(torch.as_tensor(lengths, device=x.device), x.shape[1])[..., None]
    return torch.where(mask, x, 0.0).sum(dim=1) / mask.sum(dim=1).to(x.dtype)


class CRNN(nn.Module):
    """Convolutional recurrent network for a spectrogram x (N, 1, F, T) or (N, F, T).

        z = ReLU(W * x + b)                          convolution over the (f, t) plane
        h_t = tanh(W_h z_t + U_h h_{t−1} + b_h)      recurrence over frames
        e = (1/L) Σ_{t<L} h_t                        mean over the L valid frames

    The convolution has odd ``kernel_size`` k with "same" padding k // 2 on both axes and
    stride 1; after the ReLU, max pooling with kernel (2, 1) halves frequency only, so z is
    (N, C, F // 2, T), flattened to one vector of C·(F // 2) numbers per frame. ``cell``
    picks the recurrence ("rnn" as above, "gru" or "lstm").

    With ``lengths`` (N,), frames t ≥ lengths[n] are zeroed before the convolution, so the
    kernel sees the same zeros a sequence of exactly that length sees in its padding; the
    recurrence and the mean skip those frames too. The embedding e (N, H) therefore does not
    depend on what the padding holds.
    """

    def __init__(self, n_freq: int, conv_channels: int, hidden_size: int,
                 kernel_size: int = 3, cell: str = "rnn") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"CRNN needs an odd kernel_size for 'same' padding, got {kernel_size}")
        layers = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
        if cell not in layers:
            raise ValueError(f"cell must be one of {sorted(layers)}, got {cell!r}")
        self.n_freq = n_freq
        self.conv = Conv2d(1, conv_channels, kernel_size, padding=kernel_size // 2)
        self.rnn = layers[cell](conv_channels * (n_freq // 2), hidden_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (N, 1, F, T) or (N, F, T), lengths (N,) of valid frames or None → e (N, H)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_freq:
            raise ValueError(f"CRNN expects (N, 1, {self.n_freq}, T) or (N, {self.n_freq}, T), "
                             f"got {tuple(x.shape)}")
        lengths = _as_lengths(lengths, x.shape[0], x.shape[3], x.device)
        x = torch.where(valid_mask(lengths, x.shape[3])[:, None, None, :], x, 0.0)
        z = max_pool2d(torch.relu(self.conv(x)), (2, 1))
        h, _ = self.rnn(z.permute(0, 3, 1, 2).flatten(2), lengths=lengths)
        return masked_mean(h, lengths)
