"""Audio preprocessing: loading and trimming, waveform and spectrogram augmentation, features.

The three steps for audio:

1. **Cleaning** — :func:`load_audio` gives every clip one format (mono float32 at one
   sample rate) and :func:`trim_silence` cuts the silence around the speech.
2. **Augmentation** — :func:`time_shift` and :func:`add_noise` change the waveform;
   :func:`spec_augment` masks bands of frequencies and stretches of time in a spectrogram.
3. **Normalisation** — :class:`LogMel` / :func:`log_mel` and :func:`mfcc` compress the
   signal into a few features per 10 ms frame on a log (dB) scale, and
   :func:`normalize_per_utterance` gives each feature zero mean and unit variance.

Waveforms are float32 tensors (1, T) (channel, samples); features are (F, frames).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import soundfile
import torch
import torchaudio
from torch import nn

SAMPLE_RATE = 16000


@lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


class AudioReadError(OSError):
    """Raised when an existing file cannot be decoded as audio."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read an audio file as a mono float32 tensor (1, T) at ``sample_rate`` Hz.

    The file is decoded with ``soundfile`` (WAV, FLAC, OGG/Vorbis, …), its channels are
    averaged and it is resampled with :class:`torchaudio.transforms.Resample` (its filter is
    built once per pair of rates and reused); values lie in
    [-1, 1]. Raises :class:`FileNotFoundError` when ``path`` is not a file and
    :class:`AudioReadError` when it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such audio file", str(path))
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as err:
        raise AudioReadError(
            f"cannot read {path}: the file is corrupt or not audio ({err})") from err
    waveform = torch.from_numpy(data.T).mean(dim=0, keepdim=True)
    if rate != sample_rate:
        waveform = _resampler(rate, sample_rate)(waveform)
    return waveform.contiguous()


def trim_silence(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, top_db: float = 40.0,
                 frame_ms: float = 25.0) -> torch.Tensor:
    """Cut leading and trailing silence from a waveform (C, T) → (C, T') of the same dtype.

    The signal is cut into frames of ``frame_ms`` milliseconds; a frame is silent when its
    RMS energy (over all channels) is more than ``top_db`` dB below the loudest frame.
    Everything before the first and after the last loud frame is dropped. The loudest
    frame always stays, so the result is never empty unless the input is.
    """
    length = waveform.shape[-1]
    frame = max(1, round(sample_rate * frame_ms / 1000))
    n_frames = math.ceil(length / frame)
    if n_frames == 0:
        return waveform
    padded = nn.functional.pad(waveform.reshape(-1, length), (0, n_frames * frame - length))
    frames = padded.reshape(padded.shape[0], n_frames, frame)
    rms = frames.double().pow(2).mean(dim=(0, 2)).sqrt()
    db = 20 * torch.log10(rms + 1e-12)
    loud = torch.nonzero(db >= db.max() - top_db).flatten()
    start, end = int(loud[0]) * frame, min((int(loud[-1]) + 1) * frame, length)
    return waveform[..., start:end]


def time_shift(waveform: torch.Tensor, max_shift: float = 0.1,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift a waveform (..., T) in time by a random amount; same shape and dtype.

    ``max_shift`` is a fraction of the clip length: the shift is drawn uniformly from
    ``[-max_shift·T, +max_shift·T]`` samples (positive = later). The samples pushed past
    either end are dropped and the gap is filled with zeros (silence), rather than wrapped
    round, so no speech jumps from the end to the start.
    """
    if not 0.0 <= max_shift <= 1.0:
        raise ValueError(f"max_shift is a fraction of the length in [0, 1], not {max_shift}")
    length = waveform.shape[-1]
    limit = int(max_shift * length)
    shift = int(torch.randint(-limit, limit + 1, (1,), generator=generator))
    out = torch.zeros_like(waveform)
    if shift >= 0:
        out[..., shift:] = waveform[..., : length - shift]
    else:
        out[..., :shift] = waveform[..., -shift:]
    return out


def add_noise(waveform: torch.Tensor, snr_db: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Add white Gaussian noise at a signal-to-noise ratio of ``snr_db`` dB.

    ``waveform`` is float (..., T); the result has the same shape and dtype. The drawn
    noise is rescaled so that its measured power is exactly the signal's power divided by
    ``10 ** (snr_db / 10)`` (powers are means of squares over the whole tensor). A silent
    input stays silent.
    """
    noise = torch.randn(waveform.shape, generator=generator, dtype=waveform.dtype,
                        device=waveform.device)
    signal_power = waveform.pow(2).mean()
    scale = torch.sqrt(signal_power / (10 ** (snr_db / 10) * noise.pow(2).mean()))
    return waveform + scale * noise


def spec_augment(spec: torch.Tensor, freq_mask: int = 8, time_mask: int = 20,
                 n_masks: int = 2, mask_value: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment: mask random bands of a spectrogram (..., F, T); same shape and dtype.

    Applies ``n_masks`` frequency masks of up to ``freq_mask`` rows and ``n_masks`` time
    masks of up to ``time_mask`` columns (:class:`torchaudio.transforms.FrequencyMasking`,
    :class:`~torchaudio.transforms.TimeMasking`), setting them to ``mask_value`` — 0 is the
    mean after :func:`normalize_per_utterance`. All items of a batched input get the same
    masks, so call it per example (in the ``Dataset``) for independent masks.

    The torchaudio transforms draw from PyTorch's global CPU generator. With
    ``generator`` given, one seed is drawn from it and the masks are drawn inside
    :func:`torch.random.fork_rng` under that seed: the result depends only on
    ``generator`` and the global random state is left as it was. Without it, the global
    generator is used (and advanced).
    """
    if generator is None:
        return _mask(spec, freq_mask, time_mask, n_masks, mask_value)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return _mask(spec, freq_mask, time_mask, n_masks, mask_value)


def _mask(spec: torch.Tensor, freq_mask: int, time_mask: int, n_masks: int,
          mask_value: float) -> torch.Tensor:
    freq = torchaudio.transforms.FrequencyMasking(freq_mask)
    time = torchaudio.transforms.TimeMasking(time_mask)
    for _ in range(n_masks):
        spec = freq(spec, mask_value)
        spec = time(spec, mask_value)
    return spec


class LogMel(nn.Module):
    """Log-mel spectrogram: waveform (1, T) or (T,) → float32 (n_mels, 1 + T // hop_length).

    A power mel spectrogram (:class:`torchaudio.transforms.MelSpectrogram`, centred frames
    of ``n_fft`` samples every ``hop_length`` samples — 25 ms every 10 ms at 16 kHz) in
    decibels (:class:`~torchaudio.transforms.AmplitudeToDB`), floored ``top_db`` below the
    clip's maximum. A batched input (B, T) gives (B, n_mels, frames).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_mels: int = 64, n_fft: int = 400,
                 hop_length: int = 160, top_db: float = 80.0):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.to_db = torchaudio.transforms.AmplitudeToDB("power", top_db=top_db)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 2 and waveform.shape[0] == 1:
            waveform = waveform[0]
        return self.to_db(self.mel(waveform))


def log_mel(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_mels: int = 64,
            n_fft: int = 400, hop_length: int = 160) -> torch.Tensor:
    """Functional :class:`LogMel`: waveform (1, T) or (T,) → float32 (n_mels, 1 + T // hop)."""
    return _log_mel_module(sample_rate, n_mels, n_fft, hop_length).to(waveform.device)(waveform)


@lru_cache(maxsize=8)
def _log_mel_module(sample_rate: int, n_mels: int, n_fft: int, hop_length: int) -> LogMel:
    return LogMel(sample_rate, n_mels, n_fft, hop_length)


def mfcc(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_mfcc: int = 13,
         n_mels: int = 40, n_fft: int = 400, hop_length: int = 160) -> torch.Tensor:
    """MFCCs: waveform (1, T) or (T,) → float32 (n_mfcc, 1 + T // hop_length).

    :class:`torchaudio.transforms.MFCC` over ``n_mels`` mel bands (40, not torchaudio's
    default 128, which leaves empty filters with a 400-point FFT at 16 kHz).
    """
    if waveform.dim() == 2 and waveform.shape[0] == 1:
        waveform = waveform[0]
    transform = torchaudio.transforms.MFCC(
        sample_rate=sample_rate, n_mfcc=n_mfcc,
        melkwargs={"n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels})
    return transform.to(waveform.device)(waveform)


def normalize_per_utterance(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each feature row over time: (..., F, T) → (..., F, T), float.

    Every row gets zero mean and unit (population) standard deviation over the last
    dimension; ``eps`` is added to the standard deviation so a constant row becomes zeros
    instead of NaN. Apply it before padding, so pad frames do not enter the statistics.
    """
    mean = features.mean(dim=-1, keepdim=True)
    std = features.std(dim=-1, keepdim=True, correction=0)
    return (features - mean) / (std + eps)
