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
# name: 03_crnn
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/03_crnn.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/03_crnn.ipynb)
#
# # Exercise 03 · The CRNN audio encoder
#
# Companion to `notebooks/03_crnn.ipynb`. You build the audio side of the course from
# the waveform up: the mel scale and its filterbank, log-mel features of a real spoken
# caption, masked mean pooling, and the forward pass of a CRNN that gives the same
# embedding to a clip whether it is padded or not, and SpecAugment's masks. Write the
# code where you see `...`, then run the `grader.check(...)` cell below it: it runs the
# public tests. Your instructor grades with more, hidden tests, so make your code
# correct, not just the examples. Do not delete or reorder cells.

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
grader = Notebook("03_crnn.ipynb")

# %%
import numpy as np
import torch
import torchaudio

from mmcourse import data, preprocessing as prep
from mmcourse.nn import scratch

stamps = data.load_stamps()
digits = data.load_spoken_digits()

# %% [raw]
# # BEGIN QUESTION
# name: q1_mel_scale
# points: 1

# %% [markdown]
# **Q1 · The mel scale.** Write `hz_to_mel(f)` and its inverse `mel_to_hz(m)` for the
# HTK mel scale
#
# $$\mathrm{mel}(f) = 2595 \log_{10}\!\left(1 + \frac{f}{700}\right).$$
#
# Both take a tensor of any shape (or a Python float) and work elementwise; for a tensor
# input return a tensor of the same shape and dtype. Check on paper first: what is
# $\mathrm{mel}(700)$, and why is $\mathrm{mel}(1000)$ almost exactly 1000?

# %% [raw]
# # BEGIN SOLUTION

# %%
def hz_to_mel(f):
    # BEGIN SOLUTION
    f = torch.as_tensor(f)
    return 2595.0 * torch.log10(1.0 + f / 700.0)
    # END SOLUTION


def mel_to_hz(m):
    # BEGIN SOLUTION
    m = torch.as_tensor(m)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert abs(float(hz_to_mel(torch.tensor(0.0)))) < 1e-6
assert abs(float(hz_to_mel(torch.tensor(1000.0))) - 1000.0) < 0.5
assert abs(float(mel_to_hz(hz_to_mel(torch.tensor(440.0)))) - 440.0) < 1e-2

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

_f = torch.linspace(0, 22050, 997, dtype=torch.float64).reshape(997, 1)
_m = hz_to_mel(_f)
assert_same(_m, 2595 * torch.log10(1 + _f / 700), rtol=1e-12, atol=1e-9)
assert abs(float(hz_to_mel(torch.tensor(700.0, dtype=torch.float64))) - 2595 * np.log10(2)) < 1e-9
assert_same(mel_to_hz(_m), _f, rtol=1e-10, atol=1e-8)
_mels = torch.rand(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(hidden_seed(1))) * 4000
assert_same(hz_to_mel(mel_to_hz(_mels)), _mels, rtol=1e-10, atol=1e-8)
assert_same(mel_to_hz(torch.zeros(2, dtype=torch.float32)), torch.empty(2), values=False)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_filterbank
# points: 2

# %% [markdown]
# **Q2 · The mel filterbank.** Write `mel_filterbank(n_freqs, n_mels, sample_rate)`
# returning a float32 tensor `H` of shape `(n_freqs, n_mels)`, the triangular filters
# that turn a power spectrogram `P (n_freqs, T)` into mel bands `S = Hᵀ P`:
#
# * the `n_freqs` FFT bins lie at frequencies $\phi_k$ evenly spaced from 0 to
#   `sample_rate / 2`, both included;
# * take `n_mels + 2` points equally spaced **in mel** from $\mathrm{mel}(0)$ to
#   $\mathrm{mel}(\text{sample\_rate}/2)$ and convert them back to Hz:
#   $f_0 < f_1 < \dots < f_{M+1}$ (with $M$ = `n_mels`);
# * filter $m = 0, \dots, M-1$ is the triangle that rises from 0 at $f_m$ to 1 at
#   $f_{m+1}$ and falls back to 0 at $f_{m+2}$:
#   $$H[k, m] = \max\!\Big(0,\ \min\!\Big(\frac{\phi_k - f_m}{f_{m+1} - f_m},\
#   \frac{f_{m+2} - \phi_k}{f_{m+2} - f_{m+1}}\Big)\Big).$$
#
# Your `hz_to_mel` and `mel_to_hz` from Q1 are useful here. (No area normalisation:
# this is torchaudio's default "htk" filterbank with `norm=None`.)

# %% [raw]
# # BEGIN SOLUTION

# %%
def mel_filterbank(n_freqs, n_mels, sample_rate):
    # BEGIN SOLUTION
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]
    top = hz_to_mel(torch.tensor(sample_rate / 2, dtype=torch.float64))
    points = mel_to_hz(torch.linspace(0, float(top), n_mels + 2, dtype=torch.float64))
    low, centre, high = points[:-2], points[1:-1], points[2:]
    rising = (freqs - low) / (centre - low)
    falling = (high - freqs) / (high - centre)
    return torch.minimum(rising, falling).clamp(min=0).float()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_H = mel_filterbank(201, 40, 16000)
assert _H.shape == (201, 40) and _H.dtype == torch.float32
assert _H.min() >= 0 and _H.max() <= 1 + 1e-6
assert (_H.argmax(dim=0).diff() >= 0).all()  # the filters' peaks rise with m

# %%
# HIDDEN
import warnings

for _nf, _nm, _sr in [(201, 64, 16000), (257, 80, 16000), (513, 128, 22050), (129, 20, 8000),
                      (201, 128, 16000), (65, 3, 16000)]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty filters when n_mels is too high
        _ref = torchaudio.functional.melscale_fbanks(_nf, 0.0, _sr / 2, _nm, _sr)
    _got = mel_filterbank(_nf, _nm, _sr)
    assert_same(_got, _ref, atol=1e-4, what=f"mel_filterbank{(_nf, _nm, _sr)}")
# the filterbank gives torchaudio's mel spectrogram of a real clip
_wave = prep.load_audio(next(s for s in stamps if s.name.endswith("/koala")).spoken_path("en"))
_power = torchaudio.transforms.Spectrogram(n_fft=400, hop_length=160, power=2.0)(_wave[0])
_mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160,
                                            n_mels=40)(_wave[0])
assert scratch.relative_error(mel_filterbank(201, 40, 16000).T @ _power, _mel) < 1e-3

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_masked_mean
# points: 2

# %% [markdown]
# **Q3 · Masked mean pooling.** A batch of padded sequences `x (N, T, D)` comes with
# `lengths (N,)` (int64, each between 1 and T): sequence `n` is real for
# `t < lengths[n]` and padding afterwards. Write `masked_mean(x, lengths)` returning the
# `(N, D)` tensor
#
# $$e[n] = \frac{1}{L_n} \sum_{t < L_n} x[n, t],$$
#
# in the dtype of `x`. The padding may hold **anything**, NaN and infinities included:
# it must never change the result, nor its gradient with respect to `x`. (Multiplying
# by a 0/1 mask is not enough: NaN · 0 is NaN.)

# %% [raw]
# # BEGIN SOLUTION

# %%
def masked_mean(x, lengths):
    # BEGIN SOLUTION
    lengths = torch.as_tensor(lengths, device=x.device)
    mask = (torch.arange(x.shape[1], device=x.device) < lengths[:, None])[..., None]
    return torch.where(mask, x, 0.0).sum(dim=1) / lengths[:, None].to(x.dtype)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
_out = masked_mean(_x, torch.tensor([2, 3]))
assert _out.shape == (2, 1)
assert torch.allclose(_out, torch.tensor([[2.0], [4.0]]))

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(5))
for _n, _t, _d in [(7, 11, 5), (1, 1, 3), (4, 30, 1)]:
    _x = torch.randn(_n, _t, _d, dtype=torch.float64, generator=_g)
    _len = torch.randint(1, _t + 1, (_n,), generator=_g)
    _len[0] = _t
    for _i, _l in enumerate(_len.tolist()):  # garbage in the padding
        _x[_i, _l:] = torch.tensor([float("nan"), float("inf"), -1e30])[_i % 3]
    _x.requires_grad = True
    _got = masked_mean(_x, _len)
    assert_same(_got, scratch.masked_mean(_x, _len), rtol=1e-10, atol=1e-12)
    assert torch.isfinite(_got).all()
    (_got * torch.arange(1, _d + 1, dtype=torch.float64)).sum().backward()
    _want = (torch.arange(_t)[None, :] < _len[:, None]).double()[..., None] / _len[:, None, None]
    assert_same(_x.grad, _want * torch.arange(1, _d + 1, dtype=torch.float64), what="gradient")
# real MFCC frames, padded with NaN
_clips = [torch.from_numpy(digits.mfcc[i]) for i in range(0, 3000, 250)]
_padded, _len, _ = prep.pad_sequences(_clips, float("nan"))
_want = torch.stack([c.mean(dim=0) for c in _clips])
assert_same(masked_mean(_padded, _len), _want, atol=1e-4)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_crnn_embed
# points: 3

# %% [markdown]
# **Q4 · A CRNN forward pass with masks.** Write `crnn_embed(x, lengths, params)` for a
# batch of padded spectrograms `x (N, F, T)` (frequency × frames) with `lengths (N,)`
# valid frames. `params` is a dict of tensors:
#
# | key | shape | role |
# |---|---|---|
# | `"conv_weight"` | `(C, 1, k, k)`, `k` odd | convolution kernels |
# | `"conv_bias"` | `(C,)` | convolution biases |
# | `"W"` | `(H, C·(F // 2))` | input weights of the recurrence |
# | `"U"` | `(H, H)` | recurrent weights |
# | `"b"` | `(H,)` | recurrence bias |
#
# Compute, for each clip $n$ with $L = $ `lengths[n]`:
#
# 1. set every padded frame $t \ge L$ of $X$ to **0** (so the padding holds exactly the
#    zeros that a clip of length $L$ on its own sees at its border);
# 2. $Z = \mathrm{ReLU}(W_c * X + b_c)$: a stride-1 convolution with "same" zero padding
#    $\lfloor k/2 \rfloor$ on both axes — use `scratch.conv2d` on `x` viewed as
#    `(N, 1, F, T)`; $Z$ is `(N, C, F, T)`;
# 3. max pooling over **frequency only**, in non-overlapping pairs of rows:
#    $Q[n, c, f, t] = \max(Z[n, c, 2f, t], Z[n, c, 2f+1, t])$ for $f < F // 2$ (a last
#    odd row is dropped);
# 4. the frame vector $z_t \in \mathbb{R}^{C \cdot (F//2)}$ lists $Q[n, :, :, t]$
#    channel by channel: entry $c \cdot (F // 2) + f$ is $Q[n, c, f, t]$;
# 5. the Elman recurrence $h_t = \tanh(W z_t + U h_{t-1} + b)$ from $h_{-1} = 0$, for
#    $t = 0, \dots, L - 1$;
# 6. return $e[n] = \frac{1}{L} \sum_{t < L} h_t$, as an `(N, H)` tensor in the dtype of
#    `x` (the tests use float32 and float64).
#
# The result must not depend on what the padding holds (NaN included) and must be
# differentiable with respect to every parameter. You may use your `masked_mean`; do not
# use `scratch.CRNN`, `scratch.RNN` or `torch.nn` recurrent layers.

# %% [raw]
# # BEGIN SOLUTION

# %%
def crnn_embed(x, lengths, params):
    # BEGIN SOLUTION
    n, n_freq, steps = x.shape
    lengths = torch.as_tensor(lengths, device=x.device)
    mask = torch.arange(steps, device=x.device) < lengths[:, None]  # (N, T)
    x = torch.where(mask[:, None, :], x, 0.0)
    weight = params["conv_weight"]
    z = torch.relu(scratch.conv2d(x[:, None], weight, params["conv_bias"],
                                  padding=weight.shape[-1] // 2))
    half = n_freq // 2
    z = z[:, :, :2 * half].reshape(n, z.shape[1], half, 2, steps).amax(dim=3)
    frames = z.permute(0, 3, 1, 2).reshape(n, steps, -1)  # (N, T, C·F//2)
    h = frames.new_zeros(n, params["U"].shape[0])
    outputs = []
    for t in range(steps):
        new = torch.tanh(frames[:, t] @ params["W"].T + h @ params["U"].T + params["b"])
        h = torch.where(mask[:, t, None], new, h)
        outputs.append(h)
    return masked_mean(torch.stack(outputs, dim=1), lengths)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
# one channel, a 1×1 kernel of weight 1, a single recurrent unit with W = 1, U = 0, b = 0:
# e = mean over the valid frames of tanh(max(ReLU(x[0, t]), ReLU(x[1, t])))
_params = {"conv_weight": torch.ones(1, 1, 1, 1), "conv_bias": torch.zeros(1),
           "W": torch.ones(1, 1), "U": torch.zeros(1, 1), "b": torch.zeros(1)}
_x = torch.tensor([[[1.0, -2.0, 3.0], [0.5, 4.0, 9.0]]])
_e = crnn_embed(_x, torch.tensor([2]), _params)
assert _e.shape == (1, 1)
assert torch.allclose(_e, (torch.tanh(torch.tensor(1.0)) + torch.tanh(torch.tensor(4.0))) / 2)

# %%
# HIDDEN
def _crnn_params(model):
    return {"conv_weight": model.conv.weight, "conv_bias": model.conv.bias,
            "W": model.rnn.cell.W, "U": model.rnn.cell.U, "b": model.rnn.cell.b}


_g = torch.Generator().manual_seed(hidden_seed(11))
for _f, _c, _h, _k, _n, _t in [(13, 3, 8, 3, 5, 17), (16, 2, 5, 5, 3, 9), (7, 4, 6, 1, 4, 6)]:
    _gen = torch.manual_seed(hidden_seed(_f))
    _model = scratch.CRNN(_f, _c, _h, kernel_size=_k).double()
    _x = torch.randn(_n, _f, _t, dtype=torch.float64, generator=_g)
    _len = torch.randint(1, _t + 1, (_n,), generator=_g)
    _len[0], _len[-1] = _t, 1
    _want = _model(_x, _len)
    _got = crnn_embed(_x, _len, _crnn_params(_model))
    assert_same(_got, _want, rtol=1e-8, atol=1e-10, what=f"crnn_embed {(_f, _c, _h, _k)}")
    # NaN in the padding changes nothing
    _dirty = _x.clone()
    for _i, _l in enumerate(_len.tolist()):
        _dirty[_i, :, _l:] = float("nan")
    assert_same(crnn_embed(_dirty, _len, _crnn_params(_model)), _want, rtol=1e-8, atol=1e-10)
    # the gradients with respect to every parameter are the reference's
    _model.zero_grad()
    (_want * torch.linspace(-1, 1, _h, dtype=torch.float64)).sum().backward()
    _ref_grads = {k: v.grad.clone() for k, v in _crnn_params(_model).items()}
    _model.zero_grad()
    (crnn_embed(_dirty, _len, _crnn_params(_model))
     * torch.linspace(-1, 1, _h, dtype=torch.float64)).sum().backward()
    for _key, _grad in _ref_grads.items():
        assert _crnn_params(_model)[_key].grad is not None, _key
        assert_same(_crnn_params(_model)[_key].grad, _grad, rtol=1e-7, atol=1e-10, what=_key)
# a real batch of spoken-digit MFCCs: each clip in the batch = the clip alone
_clips = [torch.from_numpy(digits.mfcc[i]).double() for i in (3, 777, 1500, 2999)]
_padded, _len, _ = prep.pad_sequences(_clips, 7.0)
_gen = torch.manual_seed(hidden_seed(0))
_model = scratch.CRNN(13, 4, 12).double()
with torch.no_grad():
    _batch = crnn_embed(_padded.transpose(1, 2), _len, _crnn_params(_model))
    assert_same(_batch, _model(_padded.transpose(1, 2), _len), rtol=1e-8, atol=1e-10)
    for _i, _clip in enumerate(_clips):
        _alone = crnn_embed(_clip.T[None], torch.tensor([len(_clip)]), _crnn_params(_model))
        assert_same(_alone, _batch[_i:_i + 1], rtol=1e-8, atol=1e-10)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5_clip_features
# points: 2

# %% [markdown]
# **Q5 · Log-mel features of a spoken caption.** Write `clip_features(path, n_mels=64)`
# that turns a spoken stamp caption into the features the chapter's language CRNN reads.
# Return a float32 tensor `(T, n_mels)`, **frames first**:
#
# 1. load the clip as 16 kHz mono with `prep.load_audio` and cut its silence with
#    `prep.trim_silence` (defaults); call the waveform $x$, with $S$ samples;
# 2. power spectrogram $P = |X|^2$ of the short-time Fourier transform (`torch.stft`)
#    with 400-sample frames every 160 samples, a 400-sample Hann window
#    (`torch.hann_window`), centred frames with reflect padding, complex output; it has
#    201 bins and $T = 1 + \lfloor S / 160 \rfloor$ frames;
# 3. mel power $S = H^\top P$ with the `n_mels`-band filterbank of Q2 at 16 kHz
#    (your `mel_filterbank`, or `torchaudio.functional.melscale_fbanks` with
#    `f_min=0`, `f_max=8000`);
# 4. decibels floored 80 dB below the clip's maximum:
#    $L = \max\big(10 \log_{10} \max(S, 10^{-10}),\ \max(L_0) - 80\big)$ where
#    $L_0 = 10 \log_{10} \max(S, 10^{-10})$ and the max is over all bands and frames;
# 5. standardise each band over time (`prep.normalize_per_utterance`), then transpose.
#
# Do not use `prep.log_mel`, `prep.LogMel` or torchaudio's `MelSpectrogram` /
# `AmplitudeToDB`: the point is to write steps 2–4 yourself.

# %% [raw]
# # BEGIN SOLUTION

# %%
def clip_features(path, n_mels=64):
    # BEGIN SOLUTION
    wave = prep.trim_silence(prep.load_audio(path))[0]
    stft = torch.stft(wave, 400, hop_length=160, window=torch.hann_window(400), center=True,
                      pad_mode="reflect", return_complex=True)
    mel = mel_filterbank(201, n_mels, 16000).T @ stft.abs() ** 2
    db = 10 * torch.log10(mel.clamp(min=1e-10))
    db = torch.maximum(db, db.max() - 80)
    return prep.normalize_per_utterance(db).T.contiguous().float()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_zebra = next(s for s in stamps if s.name.endswith("/zebra"))
_feat = clip_features(_zebra.spoken_path("fr"))
_samples = prep.trim_silence(prep.load_audio(_zebra.spoken_path("fr"))).shape[-1]
assert _feat.shape == (1 + _samples // 160, 64) and _feat.dtype == torch.float32
assert torch.allclose(_feat.mean(dim=0), torch.zeros(64), atol=1e-3)

# %%
# HIDDEN
for _j, _stamp in enumerate(stamps[40::320]):
    for _lang in sorted(_stamp.spoken)[:2]:
        _wave = prep.trim_silence(prep.load_audio(_stamp.spoken_path(_lang)))
        for _nm in (64, 32) if _j == 0 else (64,):
            _ref = prep.normalize_per_utterance(prep.log_mel(_wave, n_mels=_nm)).T
            _got = clip_features(_stamp.spoken_path(_lang), n_mels=_nm)
            assert_same(_got, _ref, atol=1e-3, what=f"clip_features({_stamp.name}, {_lang}, {_nm})")

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6_interpret
# points: 2

# %% [markdown]
# **Q6 · How much of a padded batch is padding?** The spoken digits `digits` (loaded
# above) hold 13 MFCCs per 10 ms frame; `digits.mfcc[i]` is clip `i`'s `(T_i, 13)` array
# and `digits.labels[i]` its digit.
#
# * Set `mean_frames_by_digit` to a NumPy array of shape `(10,)`: entry `d` is the mean
#   number of frames of the clips of digit `d`.
# * Set `longest_digit` to the digit (an `int`) whose clips are longest on average.
# * If all 3,000 clips were padded into one `(3000, T_max, 13)` tensor, what fraction of
#   its frames would be padding? Set `padding_fraction` to that number (between 0 and 1).
#
# Then think about what this fraction means for a mean over time that ignores the
# lengths, and for a recurrence that keeps running over the padding.

# %% [raw]
# # BEGIN SOLUTION

# %%
lengths = digits.lengths
mean_frames_by_digit = np.array([lengths[digits.labels == d].mean() for d in range(10)])  # SOLUTION
longest_digit = int(np.argmax(mean_frames_by_digit))  # SOLUTION
padding_fraction = 1 - lengths.sum() / (len(lengths) * lengths.max())  # SOLUTION
print("mean frames per digit:", mean_frames_by_digit)
print("longest digit:", longest_digit, "padding fraction:", padding_fraction)

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert np.shape(mean_frames_by_digit) == (10,)
assert longest_digit in range(10)
assert 0 < padding_fraction < 1

# %%
# HIDDEN
_lens = np.array([len(m) for m in digits.mfcc])
_means = np.array([_lens[digits.labels == _d].mean() for _d in range(10)])
assert_same(np.asarray(mean_frames_by_digit, dtype=float), _means, atol=1e-6)
assert int(longest_digit) == int(np.argmax(_means))
assert abs(float(padding_fraction) - (1 - _lens.mean() / _lens.max())) < 1e-4

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q7_spec_augment
# points: 2

# %% [markdown]
# **Q7 · SpecAugment.** The chapter trains on augmented clips: SpecAugment hides a band of
# frequencies and a stretch of time, so that the encoder cannot lean on any one of them.
# Write `spec_augment_mask(spec, freq_width, time_width, seed)` for a spectrogram (or
# MFCC matrix) `spec` of shape `(F, T)`, with `freq_width ≤ F` and `time_width ≤ T`:
#
# 1. make a generator `g = torch.Generator().manual_seed(seed)`;
# 2. draw the band's first row `f0 = torch.randint(0, F - freq_width + 1, (1,), generator=g)`,
#    **then** the stretch's first column
#    `t0 = torch.randint(0, T - time_width + 1, (1,), generator=g)` (in this order);
# 3. return a **copy** of `spec` in which rows `f0 … f0 + freq_width − 1` and columns
#    `t0 … t0 + time_width − 1` are 0, with `spec`'s shape and dtype. `spec` itself
#    must not change.
#
# The same seed must give the same mask; a width of 0 masks nothing along that axis. Do
# not call `prep.spec_augment` or torchaudio's masking transforms.

# %% [raw]
# # BEGIN SOLUTION

# %%
def spec_augment_mask(spec, freq_width, time_width, seed):
    # BEGIN SOLUTION
    g = torch.Generator().manual_seed(seed)
    n_freq, n_time = spec.shape
    f0 = int(torch.randint(0, n_freq - freq_width + 1, (1,), generator=g))
    t0 = int(torch.randint(0, n_time - time_width + 1, (1,), generator=g))
    out = spec.clone()
    out[f0:f0 + freq_width, :] = 0
    out[:, t0:t0 + time_width] = 0
    return out
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_spec = torch.arange(1.0, 61.0).reshape(6, 10)
_out = spec_augment_mask(_spec, 2, 3, seed=0)
assert _out.shape == (6, 10) and _out.dtype == torch.float32
assert int((_out == 0).sum()) == 2 * 10 + 3 * 6 - 2 * 3  # a band, a stretch, their overlap once
assert torch.equal(_out, spec_augment_mask(_spec, 2, 3, seed=0))
assert float(_spec.min()) == 1.0

# %%
# HIDDEN
_NO_MASKING = ("mmcourse.preprocessing.spec_augment", "mmcourse.preprocessing.audio.spec_augment",
               "torchaudio.transforms.FrequencyMasking.forward",
               "torchaudio.transforms.TimeMasking.forward",
               "torchaudio.functional.mask_along_axis", "torchaudio.functional.mask_along_axis_iid")


def _spec_augment_reference(spec, fw, tw, seed):
    _g = torch.Generator().manual_seed(seed)
    _f0 = int(torch.randint(0, spec.shape[0] - fw + 1, (1,), generator=_g))
    _t0 = int(torch.randint(0, spec.shape[1] - tw + 1, (1,), generator=_g))
    _want = spec.clone()
    _want[_f0:_f0 + fw] = 0
    _want[:, _t0:_t0 + tw] = 0
    return _want


_base = hidden_seed(300) % 10_000
# real MFCC matrices of spoken digits, (13, T), shifted to be nowhere 0
for _i, (_fw, _tw) in zip(range(0, 3000, 500), [(2, 5), (4, 10), (1, 1), (13, 0), (0, 7), (3, 20)]):
    _spec = torch.from_numpy(np.asarray(digits.mfcc[_i], dtype=np.float64).T.copy())
    _spec = _spec - _spec.min() + 1.0
    _tw = min(_tw, _spec.shape[1])
    _before = _spec.clone()
    _seed = _base + _i
    with forbidding(*_NO_MASKING):
        _got = spec_augment_mask(_spec, _fw, _tw, _seed)
        _again = spec_augment_mask(_spec, _fw, _tw, _seed)
    _want = _spec_augment_reference(_spec, _fw, _tw, _seed)
    assert_same(_got, _want, values=False, what=f"spec_augment_mask on clip {_i}")
    assert torch.equal(_spec, _before), "the input was changed"
    assert torch.equal(_got, _again), "the same seed gave another mask"
    _F, _T = _spec.shape
    _masked = int((_got == 0).sum())
    assert _masked == _fw * _T + _tw * _F - _fw * _tw, (_i, _fw, _tw, _masked)
    assert_same(_got, _want, rtol=0, atol=0, what=f"spec_augment_mask on clip {_i}")
    _kept = _got != 0
    assert torch.equal(_got[_kept], _spec[_kept])
# different seeds move the mask
_spec = torch.rand(40, 100, generator=torch.Generator().manual_seed(hidden_seed(301))) + 1.0
_masks = {tuple((spec_augment_mask(_spec, 5, 10, _base + _s) == 0).nonzero()[0].tolist())
          for _s in range(8)}
assert len(_masks) > 1
# float32 stays float32
assert_same(spec_augment_mask(torch.ones(8, 30), 2, 4, 1), torch.empty(8, 30), values=False)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
