"""The from-scratch layers against torch.nn, in float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcourse.nn.scratch import (
    CRNN, GRU, LSTM, RNN, Conv2d, GRUCell, LSTMCell, RNNCell, avg_pool2d, conv2d,
    masked_mean, max_pool2d, relative_error, run_over_time, valid_mask,
)

TOL = 1e-6


@pytest.fixture(autouse=True)
def float64():
    """Every test runs in float64 with a fixed seed, on one thread (the tensors are tiny)."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def leaf(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, requires_grad=True)


def grads(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The .grad of each tensor, then cleared."""
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    error = relative_error(a, b)
    assert error <= TOL, f"relative error {error:.1e} > {TOL:.0e}"


def test_relative_error():
    a = torch.tensor([1.0, 2.0, 0.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, torch.tensor([1.0, 2.2, 0.0])) == pytest.approx(0.2 / 4.2)
    with pytest.raises(ValueError, match="shapes"):
        relative_error(a, a[:2])


CONV_CASES = [  # N, C_in, C_out, H, W, kernel, stride, padding, bias
    (2, 3, 4, 7, 6, (3, 3), 1, 0, True),
    (1, 2, 3, 8, 9, (2, 3), 2, 1, True),
    (2, 1, 2, 6, 7, (3, 1), (2, 1), (1, 0), True),
    (3, 2, 2, 5, 5, (1, 4), (1, 3), (0, 2), False),
]


@pytest.mark.parametrize("n, c_in, c_out, h, w, kernel, stride, padding, bias", CONV_CASES)
def test_conv2d_matches_torch(n, c_in, c_out, h, w, kernel, stride, padding, bias):
    x, weight = leaf(n, c_in, h, w), leaf(c_out, c_in, *kernel)
    b = leaf(c_out) if bias else None
    params = [x, weight] + ([b] if bias else [])
    ours = conv2d(x, weight, b, stride, padding)
    theirs = F.conv2d(x, weight, b, stride, padding)
    assert ours.shape == theirs.shape
    assert_close(ours, theirs)
    upstream = torch.randn_like(ours)
    (ours * upstream).sum().backward()
    our_grads = grads(*params)
    (theirs * upstream).sum().backward()
    for mine, reference in zip(our_grads, grads(*params)):
        assert_close(mine, reference)


def test_conv2d_gradcheck():
    x, weight, b = leaf(1, 2, 5, 4), leaf(3, 2, 2, 3), leaf(3)
    assert gradcheck(lambda *a: conv2d(*a, stride=(2, 1), padding=1), (x, weight, b))


def test_conv2d_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="3 input channels but weight .* expects 2"):
        conv2d(torch.randn(1, 3, 5, 5), torch.randn(4, 2, 3, 3))


def test_conv2d_rejects_kernel_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3))


def test_conv2d_module_matches_torch_and_init_bounds():
    reference = nn.Conv2d(3, 5, (3, 2), stride=(1, 2), padding=(1, 0))
    x = torch.randn(2, 3, 6, 7)
    assert_close(Conv2d.from_torch(reference)(x), reference(x))
    layer = Conv2d(3, 5, (3, 2))
    bound = 1 / (3 * 3 * 2) ** 0.5
    assert {name for name, _ in layer.named_parameters()} == {"weight", "bias"}
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert layer.weight.abs().max() > bound / 2
    assert Conv2d(3, 5, 1, bias=False).bias is None


def test_conv2d_from_torch_rejects_unsupported_settings():
    with pytest.raises(ValueError, match="groups"):
        Conv2d.from_torch(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(TypeError):
        Conv2d.from_torch(nn.Conv1d(1, 1, 3))


POOL_CASES = [(2, None), ((2, 3), None), (3, 1), ((3, 2), (2, 1))]


@pytest.mark.parametrize("ours_fn, torch_fn", [(max_pool2d, F.max_pool2d),
                                               (avg_pool2d, F.avg_pool2d)])
@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_pooling_matches_torch(ours_fn, torch_fn, kernel, stride):
    x = leaf(2, 3, 7, 8)
    ours, theirs = ours_fn(x, kernel, stride), torch_fn(x, kernel, stride)
    assert ours.shape == theirs.shape
    assert_close(ours, theirs)
    upstream = torch.randn_like(ours)
    (ours * upstream).sum().backward()
    (mine,) = grads(x)
    (theirs * upstream).sum().backward()
    assert_close(mine, grads(x)[0])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_pooling_gradcheck(pool):
    x = leaf(1, 2, 5, 6)
    assert gradcheck(lambda t: pool(t, (2, 3), (1, 2)), (x,))


LAYERS = [(RNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)]
INPUT, HIDDEN = 3, 4


def matching_parameters(ours: nn.Module, theirs: nn.Module) -> list[tuple]:
    """(our parameter, torch parameter, rows of it) triples that get the same gradient."""
    cell, everything = ours.cell, slice(None)
    triples = [(cell.W, theirs.weight_ih_l0, everything), (cell.U, theirs.weight_hh_l0, everything),
               (cell.b, theirs.bias_ih_l0, everything)]
    if isinstance(cell, GRUCell):
        triples.append((cell.b_hn, theirs.bias_hh_l0, slice(2 * cell.hidden_size, None)))
    return triples


def initial_state(ours: nn.Module, n: int):
    """A random initial state for ours, and the same in torch's (layers, N, H) layout."""
    h = leaf(n, HIDDEN)
    if isinstance(ours, LSTM):
        c = leaf(n, HIDDEN)
        return (h, c), (h[None], c[None])
    return h, h[None]


def as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("ours_cls, torch_cls", LAYERS)
def test_recurrent_layer_matches_torch(ours_cls, torch_cls):
    theirs = torch_cls(INPUT, HIDDEN, batch_first=True)
    ours = ours_cls.from_torch(theirs)
    x = leaf(2, 5, INPUT)
    state, torch_state = initial_state(ours, 2)
    out, last = ours(x, state)
    ref_out, ref_last = theirs(x, torch_state)
    assert out.shape == (2, 5, HIDDEN)
    assert_close(out, ref_out)
    for mine, reference in zip(as_tuple(last), as_tuple(ref_last)):
        assert_close(mine, reference[0])

    leaves = [x, *as_tuple(state)]
    upstream = torch.randn_like(out)
    loss = (out * upstream).sum() + sum(s.sum() for s in as_tuple(last))
    loss.backward()
    our_grads = grads(*leaves)
    ref_loss = (ref_out * upstream).sum() + sum(s.sum() for s in as_tuple(ref_last))
    ref_loss.backward()
    for mine, reference in zip(our_grads, grads(*leaves)):
        assert_close(mine, reference)
    for mine, reference, rows in matching_parameters(ours, theirs):
        assert_close(mine.grad, reference.grad[rows])


@pytest.mark.parametrize("ours_cls, torch_cls", LAYERS)
def test_recurrent_layer_with_lengths_matches_packed_torch(ours_cls, torch_cls):
    theirs = torch_cls(INPUT, HIDDEN, batch_first=True)
    ours = ours_cls.from_torch(theirs)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, INPUT)
    x[1, 2:] = 1e3
    out, last = ours(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, ref_last = theirs(packed)
    ref_out, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=6)
    assert_close(out, ref_out)
    assert (out[1, 2:] == 0).all()
    for mine, reference in zip(as_tuple(last), as_tuple(ref_last)):
        assert_close(mine, reference[0])
    assert_close(as_tuple(last)[0], out[torch.arange(3), lengths - 1])
    unmasked, _ = ours(x)
    assert relative_error(unmasked[1, -1], out[1, 1]) > 1e-3


@pytest.mark.parametrize("ours_cls, torch_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell),
                                                 (GRUCell, nn.GRUCell)])
def test_cell_from_torch_cell(ours_cls, torch_cls):
    theirs = torch_cls(INPUT, HIDDEN)
    ours = ours_cls.from_torch(theirs)
    x, h = torch.randn(2, INPUT), torch.randn(2, HIDDEN)
    state = (h, torch.randn(2, HIDDEN)) if ours_cls is LSTMCell else h
    for mine, reference in zip(as_tuple(ours(x, state)), as_tuple(theirs(x, state))):
        assert_close(mine, reference)


@pytest.mark.parametrize("cell_cls", [RNNCell, LSTMCell, GRUCell])
def test_cell_gradcheck(cell_cls):
    """Gradients with respect to the input, the state and every parameter."""
    cell = cell_cls(INPUT, HIDDEN)
    names = [name for name, _ in cell.named_parameters()]
    k = 2 if cell_cls is LSTMCell else 1

    def step(x, *tensors):
        state = tensors[:k] if k == 2 else tensors[0]
        return functional_call(cell, dict(zip(names, tensors[k:])), (x, state))

    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    assert gradcheck(step, (leaf(2, INPUT), *(leaf(2, HIDDEN) for _ in range(k)), *params))


def test_cell_init_bounds():
    cell = GRUCell(5, 16)
    assert {n for n, _ in cell.named_parameters()} == {"W", "U", "b", "b_hn"}
    assert (cell.W.shape, cell.U.shape, cell.b.shape) == ((48, 5), (48, 16), (48,))
    assert all(0.2 < p.abs().max() <= 0.25 for p in cell.parameters())


def test_from_torch_rejects_unsupported_modules():
    with pytest.raises(ValueError, match="single-layer"):
        RNN.from_torch(nn.RNN(2, 3, num_layers=2))
    with pytest.raises(ValueError, match="single-layer"):
        GRU.from_torch(nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match="tanh"):
        RNN.from_torch(nn.RNN(2, 3, nonlinearity="relu"))
    with pytest.raises(ValueError, match="bias"):
        LSTM.from_torch(nn.LSTM(2, 3, bias=False))
    with pytest.raises(TypeError, match="LSTM"):
        LSTM.from_torch(nn.GRU(2, 3))


def test_run_over_time_drives_any_cell():
    cell = RNNCell(INPUT, HIDDEN)
    x, h = torch.randn(2, 4, INPUT), torch.zeros(2, HIDDEN)
    out, last = run_over_time(cell, x, h)
    for t in range(4):
        h = cell(x[:, t], h)
        assert_close(out[:, t], h)
    assert_close(last, h)


def test_valid_mask_and_masked_mean():
    lengths = torch.tensor([3, 1])
    assert valid_mask(lengths, 4).tolist() == [[True, True, True, False],
                                               [True, False, False, False]]
    x = torch.randn(2, 4, 5)
    x[0, 3] = float("nan")
    expected = torch.stack([x[0, :3].mean(0), x[1, 0]])
    assert_close(masked_mean(x, lengths), expected)
    for bad in ([0, 2], [5, 2]):
        with pytest.raises(ValueError, match="lengths must lie"):
            masked_mean(x, torch.tensor(bad))


N_FREQ, CHANNELS = 6, 3


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_crnn_shape_and_padding_invariance(cell):
    model = CRNN(N_FREQ, CHANNELS, HIDDEN, cell=cell)
    lengths = torch.tensor([7, 4, 5])
    x = torch.randn(3, N_FREQ, 7)
    x[1, :, 4:] = 50 * torch.randn(N_FREQ, 3)
    x[2, :, 5:] = -50
    e = model(x, lengths)
    assert e.shape == (3, HIDDEN)
    alone = torch.cat([model(x[i:i + 1, :, :n]) for i, n in enumerate(lengths.tolist())])
    assert relative_error(e, alone) <= 1e-12
    longer = torch.cat([x, 100 * torch.randn(3, N_FREQ, 6)], dim=2)
    assert relative_error(model(longer.unsqueeze(1), lengths), e) <= 1e-12
    assert relative_error(model(x)[1:], e[1:]) > 1e-3


def test_crnn_features_per_frame():
    model = CRNN(7, CHANNELS, HIDDEN, kernel_size=5)
    assert (model.rnn.cell.W.shape[1], model.conv.padding) == (CHANNELS * 3, (2, 2))


def test_crnn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        CRNN(N_FREQ, CHANNELS, HIDDEN, kernel_size=2)
    with pytest.raises(ValueError, match="cell must be"):
        CRNN(N_FREQ, CHANNELS, HIDDEN, cell="transformer")
    with pytest.raises(ValueError, match="CRNN expects"):
        CRNN(N_FREQ, CHANNELS, HIDDEN)(torch.randn(2, N_FREQ + 1, 5))


def test_crnn_gradcheck():
    model = CRNN(4, 2, 3, cell="gru")
    lengths = torch.tensor([4, 3])
    assert gradcheck(lambda x: model(x, lengths), (leaf(2, 1, 4, 4),))
