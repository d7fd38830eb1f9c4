"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files, gzipped)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets import FashionMNIST as TVFashion

from mmcourse.runtime import config
from mmcourse.runtime.install import fashion_dir, missing

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": "train", "test": "t10k"}


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (unsigned bytes) into an array of its stated shape."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {shape}, got {array.size} bytes")
    return array.reshape(shape)


def _download(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fetch Fashion-MNIST with torchvision into the cache (needs internet)."""
    ds = TVFashion(str(config.cache_dir("torchvision")), train=split == "train", download=True)
    return ds.data.numpy(), ds.targets.numpy()


def load_fashion(split: str = "train", download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images uint8 (N, 28, 28) and labels int64 (N,); N = 60,000 or 10,000.

    Reads the Debian package's files; with ``download=True`` and no package, downloads
    through torchvision instead (the same data).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = fashion_dir()
    images = folder / f"{_FILES[split]}-images-idx3-ubyte.gz"
    labels = folder / f"{_FILES[split]}-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        if download:
            return _download(split)
        raise missing("fashion", folder)
    return _read_idx(images), _read_idx(labels).astype(np.int64)


class FashionMNIST(Dataset):
    """Fashion-MNIST as a torch Dataset of (float32 image (1, 28, 28) in [0, 1], label).

    ``transform`` (optional) is applied to the image tensor; ``limit`` keeps the first
    ``limit`` items of a seeded permutation (for the fast switch).
    """

    def __init__(self, split: str = "train", transform=None, limit: int | None = None,
                 seed: int = 0):
        images, labels = load_fashion(split)
        if limit is not None and limit < len(labels):
            keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])
            images, labels = images[keep], labels[keep]
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)
        self.labels = torch.from_numpy(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        image = self.images[i].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]
