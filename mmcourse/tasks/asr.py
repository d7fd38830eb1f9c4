"""Speech recognition with CTC: a CRNN that emits one symbol distribution per frame.

:class:`CTCRecognizer` is chapter 03's :class:`~mmcourse.nn.encoders.AudioCRNNEncoder` whose
per-frame outputs (:meth:`~mmcourse.nn.encoders.AudioCRNNEncoder.sequence`) feed a linear
layer over the symbols (blank = 0 and the characters), instead of being pooled into one
vector. Samples are dicts ``{"audio": FloatTensor (T, F), "targets": LongTensor (S,)}``;
:func:`collate_transcripts` batches them into ``audio`` (B, T_max, F), ``audio_lengths``
(B,), ``targets`` (B, S_max) and ``targets_lengths`` (B,). :func:`ctc_step` is the
forward that :func:`mmcourse.training.train.fit` trains with (per-sample CTC losses);
:func:`transcribe` decodes a loader on the model's device.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mmcourse.nn.encoders import AudioCRNNEncoder, masked_pool, sequence_mask
from mmcourse.preprocessing import collate_multimodal, spec_augment
from mmcourse.training.train import model_device, to_device

from .ctc import beam_decode, greedy_decode


class CTCRecognizer(nn.Module):
    """Frames (N, T, F) → log-probabilities (N, T', C) over C = ``num_symbols`` symbols.

    ``time_stride`` k first averages every k consecutive input frames (T' = ⌈T / k⌉):
    fewer steps for the RNN, still several per character. The encoder
    (:class:`~mmcourse.nn.encoders.AudioCRNNEncoder`, ``encoder_options`` go to it) keeps
    the time axis; a linear layer maps each frame's output to C logits, then log-softmax.
    """

    def __init__(self, n_features: int, num_symbols: int, time_stride: int = 1,
                 **encoder_options):
        super().__init__()
        self.time_stride = time_stride
        self.encoder = AudioCRNNEncoder(n_features, **encoder_options)
        self.head = nn.Linear(self.encoder.out_dim, num_symbols)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frames after the time stride: ⌈lengths / k⌉, (N,)."""
        return torch.div(lengths + self.time_stride - 1, self.time_stride,
                         rounding_mode="floor")

    def average_frames(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Average every ``time_stride`` consecutive valid frames of ``x`` (N, T, F) →
        (N, ⌈T / k⌉, F) and the new lengths (N,); padded frames are left out, so a
        clip's output does not depend on how much its batch is padded."""
        k, (n, t, f) = self.time_stride, x.shape
        mask = sequence_mask(lengths.to(x.device), t).to(x.dtype)[..., None]
        pad = (-t) % k
        sums = F.pad(x * mask, (0, 0, 0, pad)).reshape(n, -1, k, f).sum(2)
        counts = F.pad(mask, (0, 0, 0, pad)).reshape(n, -1, k, 1).sum(2)
        return sums / counts.clamp(min=1), self.output_lengths(lengths)

    def frames(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Per-frame encoder outputs (N, T', out_dim) and their lengths (N,)."""
        x, lengths = batch["audio"], batch["audio_lengths"]
        if self.time_stride > 1:
            x, lengths = self.average_frames(x, lengths)
        return self.encoder.sequence(x, lengths), lengths

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Log-probabilities (N, T', C), batch first, and output lengths (N,)."""
        h, lengths = self.frames(batch)
        return self.head(h).log_softmax(-1), lengths

    def embed(self, batch: dict) -> dict:
        """``{"audio": (N, out_dim)}``: the per-frame outputs averaged over valid frames."""
        h, lengths = self.frames(batch)
        return {"audio": masked_pool(h, lengths, "mean")}


class TranscriptDataset(Dataset):
    """Samples ``{"audio": (T_i, F), "targets": (S_i,)}`` of frames and label ids.

    ``augment`` (keyword arguments of :func:`mmcourse.preprocessing.spec_augment`) masks
    every training sample afresh, drawing from PyTorch's global generator. ``texts``
    optionally keeps each sample's reference transcript (what error rates compare with)
    and ``symbols`` the character of each label id.
    """

    def __init__(self, features: Sequence, targets: Sequence[Sequence[int]],
                 augment: dict | None = None, texts: Sequence[str] | None = None,
                 symbols: Sequence[str] | None = None):
        self.features = [torch.as_tensor(f, dtype=torch.float32) for f in features]
        self.targets = [torch.as_tensor(list(t), dtype=torch.long) for t in targets]
        self.augment = augment
        self.texts = list(texts) if texts is not None else None
        self.symbols = list(symbols) if symbols is not None else None

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        audio = self.features[i]
        if self.augment:
            audio = spec_augment(audio.T, **self.augment).T
        return {"audio": audio, "targets": self.targets[i]}


collate_transcripts = functools.partial(collate_multimodal, pad_keys=("audio", "targets"))
"""Collate transcript samples: padded ``audio`` and ``targets`` with their lengths."""


def ctc_step(model: nn.Module, batch: dict) -> tuple[Tensor, Tensor]:
    """The forward :func:`mmcourse.training.train.fit` trains with: per-sample CTC losses (N,),
    each divided by its target length, and the target lengths (N,) as "targets".

    Train with ``loss_fn=mean_loss`` and ``monitor="val_loss"``. The loss is
    ``torch.nn.functional.ctc_loss`` (the optimised equivalent of
    :func:`mmcourse.tasks.ctc.ctc_loss`); an impossible alignment counts 0.
    """
    log_probs, lengths = model(batch)
    losses = F.ctc_loss(log_probs.float().transpose(0, 1), batch["targets"], lengths,
                        batch["targets_lengths"], blank=0, reduction="none",
                        zero_infinity=True)
    return losses / batch["targets_lengths"].clamp(min=1), batch["targets_lengths"]


def mean_loss(losses: Tensor, _targets: Tensor) -> Tensor:
    """The loss function that goes with :func:`ctc_step`: the batch mean."""
    return losses.mean()


@torch.no_grad()
def log_probs_of(model: nn.Module, loader: DataLoader) -> list[Tensor]:
    """Per-utterance log-probabilities (T'_i, C) on the CPU, in loader order; every
    batch runs on the model's device (:func:`mmcourse.training.train.model_device`)."""
    device = model_device(model)
    model.eval()
    out = []
    for batch in loader:
        log_probs, lengths = model(to_device(batch, device))
        out += [lp[:int(n)].float().cpu() for lp, n in zip(log_probs, lengths.cpu())]
    return out


def transcribe(model: nn.Module, loader: DataLoader, decode: Callable | str = "greedy",
               **options) -> list[list[int]]:
    """Label ids of every utterance of ``loader``: ``decode="greedy"``
    (:func:`mmcourse.tasks.ctc.greedy_decode`), ``"beam"`` (:func:`mmcourse.tasks.ctc.beam_decode`,
    ``options`` go to it) or a function of (log_probs (1, T, C), lengths (1,))."""
    decoders = {"greedy": greedy_decode, "beam": beam_decode}
    fn = decoders[decode] if isinstance(decode, str) else decode
    return [fn(lp[None], torch.tensor([len(lp)]), **options)[0]
            for lp in log_probs_of(model, loader)]


@torch.no_grad()
def utterance_embeddings(model: nn.Module, loader: DataLoader) -> np.ndarray:
    """``model.embed(batch)["audio"]`` of every utterance, float32 (N, D), on the model's
    device batch by batch."""
    device = model_device(model)
    model.eval()
    return torch.cat([model.embed(to_device(b, device))["audio"].float().cpu()
                      for b in loader]).numpy()



