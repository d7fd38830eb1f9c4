"""Batches cut from tensors that already sit on the training device.

A data set that fits in memory — the 738 protocol stamps are 145 MB as uint8 pictures at
256 px — is decoded and resized once, cached on disk, and then held as tensors on the
device (:class:`TensorSet`). :class:`DeviceBatches` serves dict batches from it: pictures
are cropped, flipped and normalised on the device (:func:`crop_flip_normalize`), so no
training step waits for PIL or for a worker process, and nothing is copied from the host
after the first transfer (from pinned memory on CUDA).

Under ``torch.distributed`` each process takes its share ``rows[rank::world]`` of every
global batch, so that ``world`` processes see together what one process sees with the
same global batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAD_MULTIPLE = 16
"""Padded sequences are cut to a multiple of this length, so that only a few batch shapes
occur (each new shape costs the CPU's convolution library a new plan)."""


@dataclass
class TensorSet:
    """Equal-length tensors {name: (N, …)}: ``"image"`` uint8 (N, 3, S, S), ``"label"``
    int64 (N,), and any other per-sample inputs (word pieces, audio frames, presence
    masks)."""

    tensors: dict

    def __len__(self) -> int:
        return len(self.tensors["label"])

    def to(self, device: torch.device | str) -> TensorSet:
        """The same tensors on ``device`` (through pinned memory when it is a GPU)."""
        device = torch.device(device)
        pin = device.type == "cuda"
        return TensorSet({k: (v.pin_memory() if pin else v).to(device, non_blocking=pin)
                          for k, v in self.tensors.items()})

    @property
    def device(self) -> torch.device:
        """Where the tensors are."""
        return self.tensors["label"].device


def crop_flip_normalize(images: Tensor, size: int, train: bool, mean: float = 0.5,
                        std: float = 0.5, channels_last: bool = False) -> Tensor:
    """uint8 pictures (B, 3, S, S) → float (B, 3, size, size), normalised, on their device.

    In training each picture gets its own random ``size``×``size`` window and is mirrored
    left–right with probability ½ (offsets and flips drawn from PyTorch's global CPU
    generator, which :func:`mmcourse.training.train.fit` reseeds every epoch); otherwise the
    central window is taken. Values become ``(x / 255 − mean) / std``.
    """
    b, _, s, _ = images.shape
    if size > s:
        raise ValueError(f"crop size {size} is larger than the pictures ({s} px)")
    steps = torch.arange(size)
    if train:
        oy, ox = torch.randint(0, s - size + 1, (2, b))
        flip = torch.rand(b) < 0.5
    else:
        oy = ox = torch.full((b,), (s - size) // 2)
        flip = torch.zeros(b, dtype=torch.bool)
    rows = oy[:, None] + steps
    cols = torch.where(flip[:, None], ox[:, None] + size - 1 - steps, ox[:, None] + steps)
    dev = images.device
    out = images[torch.arange(b, device=dev)[:, None, None, None],
                 torch.arange(3, device=dev)[None, :, None, None],
                 rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]
    out = (out.float() / 255 - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


class DeviceBatches:
    """Dict batches of the rows ``index`` of a :class:`TensorSet`, made on its device.

    Args:
        data: the tensors (already on the training device).
        index: int64 (n,) rows to serve.
        batch_size: the global batch size.
        size: pictures are cropped to ``size``×``size`` (random in training when
            ``augment``, central otherwise).
        shuffle: a new order every epoch, from PyTorch's global CPU generator.
        sample_weights: float (n,) — draw n rows with replacement with these weights
            instead (a balanced sampler gives each class the same total weight).
        augment: random crops and flips.
        rank, world: this process's share of every global batch under
            ``torch.distributed``; an incomplete last batch is dropped when world > 1, so
            every process gets the same number of rows.
        channels_last: pictures in channels-last memory layout (faster convolutions on
            GPUs).
        keys: the tensors a batch holds (default: all of them). A padded sequence
            ``x`` that comes with ``x_lengths`` is cut to the longest one in the batch.
    """

    def __init__(self, data: TensorSet, index, batch_size: int, size: int, *,
                 shuffle: bool = False, sample_weights: Tensor | None = None,
                 augment: bool = False, rank: int = 0, world: int = 1,
                 channels_last: bool = False, keys=None):
        self.data, self.index = data, torch.as_tensor(index, dtype=torch.long)
        self.batch_size, self.size = batch_size, size
        self.shuffle, self.augment, self.channels_last = shuffle, augment, channels_last
        self.sample_weights = sample_weights
        self.rank, self.world = rank, world
        self.keys = list(data.tensors) if keys is None else list(keys)
        if batch_size % world:
            raise ValueError(f"the global batch size {batch_size} must be a multiple of the "
                             f"number of processes {world}")

    def __len__(self) -> int:
        n = len(self.index)
        return n // self.batch_size if self.world > 1 else -(-n // self.batch_size)

    def order(self) -> Tensor:
        """The rows of one epoch, in the order they are served."""
        if self.sample_weights is not None:
            picks = torch.multinomial(self.sample_weights, len(self.index), replacement=True)
            return self.index[picks]
        if self.shuffle:
            return self.index[torch.randperm(len(self.index))]
        return self.index

    def batch(self, rows: Tensor) -> dict:
        """The batch dict of ``rows`` (CPU int64): every tensor of the set indexed on its
        device, the pictures cropped and normalised."""
        picked = rows.to(self.data.device)
        out = {key: self.data.tensors[key][picked] for key in self.keys}
        for key in self.keys:  # padded sequences: cut to the batch's longest, rounded up
            if f"{key}_lengths" in out and out[key].ndim >= 2:
                longest = -(-int(out[f"{key}_lengths"].max()) // PAD_MULTIPLE) * PAD_MULTIPLE
                out[key] = out[key][:, :longest]
        if "image" in out:
            out["image"] = crop_flip_normalize(out["image"], self.size, self.augment,
                                               channels_last=self.channels_last)
        return out

    def __iter__(self):
        order = self.order()
        for b in range(len(self)):
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.batch(rows[self.rank::self.world])


def balanced_weights(labels: Tensor) -> Tensor:
    """Per-sample weights (N,) = 1 / (count of the sample's class): every class gets the
    same total weight, so a sampler drawing with them sees the classes equally often."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Loss weights (K,) = N / (K · count_k), the inverse class frequency scaled to mean 1
    over the samples: rare classes count as much as common ones in the loss."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts.clamp(min=1))

