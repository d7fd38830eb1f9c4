"""Frozen features of the stamps, shared by chapter 05's stamp recipes (this module is not
a recipe itself).

Each stamp gives a picture and an English caption. Both go once through a frozen
pretrained tower — EfficientNet-Lite0 (1,280-d) for the picture, all-MiniLM-L6-v2
(384-d) for the caption — and the features are cached on disk. :func:`stamp_split`
splits the stamps 70/15/15 by category and standardises every feature dimension with the
training stamps' mean and standard deviation, so that neither tower's scale or offset
gives the modality away for free; :meth:`StampSplit.loader` serves them as dict batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from mmcourse.data import load_stamps, split_stamps, stratified_split
from mmcourse.nn.encoders import ImageEncoder, efficientnet_inputs, sentence_encoder
from mmcourse.preprocessing import collate_multimodal, standardize
from mmcourse.runtime import cache
from mmcourse.training.train import embed

TEXT_DIM = 384
"""Size of an all-MiniLM-L6-v2 sentence embedding."""


def stamp_features(stamps, size: int = 224, batch_size: int = 64) -> dict:
    """Frozen features of ``stamps`` (N of them), cached on disk by stamp name and size.

    ``image``: float32 (N, 1280) from EfficientNet-Lite0 on the picture letterboxed to
    ``size``·256/224 px on white and centre-cropped to ``size``
    (:func:`mmcourse.nn.encoders.efficientnet_inputs`);
    ``text``: float32 (N, 384), the unit-length all-MiniLM-L6-v2 embedding of the
    English caption.
    """
    def compute() -> dict:
        encoder = ImageEncoder(pretrained=True).eval()
        with torch.no_grad():
            image = [encoder(x) for x in efficientnet_inputs(stamps, size, batch_size)]
        text = sentence_encoder().encode([s.caption for s in stamps], batch_size=batch_size,
                                         convert_to_numpy=True, show_progress_bar=False)
        return {"image": torch.cat(image).numpy().astype(np.float32),
                "text": np.asarray(text, dtype=np.float32)}

    return cache.arrays("stamp-features", [size, *(s.name for s in stamps)], compute)


def standardize_each(features: dict, train_idx) -> dict:
    """Each modality's features (N, D) standardised with the rows ``train_idx``
    (:func:`mmcourse.preprocessing.standardize`): float32 (N, D) each."""
    return {modality: standardize(x, train_idx) for modality, x in features.items()}


class FeaturePairs(torch.utils.data.Dataset):
    """Stamps' feature pairs as sample dicts {"image": (1280,), "text": (384,), "label": int}.

    ``features`` holds the chosen stamps' rows {"image": (n, 1280), "text": (n, 384)},
    ``labels`` their categories int64 (n,), ``index`` their positions among all stamps
    of the split.
    """

    def __init__(self, features: dict, labels: np.ndarray, index: np.ndarray):
        self.features, self.labels, self.index = features, labels, index
        self._image = torch.from_numpy(features["image"])
        self._text = torch.from_numpy(features["text"])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return {"image": self._image[i], "text": self._text[i], "label": int(self.labels[i])}


@dataclass
class StampSplit:
    """The stamps of one split: ``stamps`` (N), standardised ``features``
    {"image": float32 (N, 1280), "text": float32 (N, 384)}, category ``labels`` int64 (N,),
    the ``categories`` (names, in label order) and ``idx`` {"train", "val", "test"} → int
    arrays into the N stamps."""

    stamps: list
    features: dict
    labels: np.ndarray
    categories: list
    idx: dict

    def pairs(self, part: str) -> FeaturePairs:
        """The stamps of ``part`` ("train", "val" or "test") as a dataset."""
        rows = self.idx[part]
        return FeaturePairs({m: x[rows] for m, x in self.features.items()}, self.labels[rows],
                            rows)

    def loader(self, part: str, batch_size: int | None = None,
               shuffle: bool = False) -> DataLoader:
        """Batches {"image": (B, 1280), "text": (B, 384), "label": int64 (B,)} of ``part``;
        ``batch_size`` None puts all its stamps in one batch. A shuffled loader draws its
        order from PyTorch's global generator, which :func:`mmcourse.training.train.fit` reseeds
        every epoch."""
        data = self.pairs(part)
        return DataLoader(data, batch_size=batch_size or len(data), shuffle=shuffle,
                          collate_fn=collate_multimodal)


def stamp_split(limit: int | None = None, seed: int = 0, size: int = 224) -> StampSplit:
    """All stamps (or a category-stratified subset of ``limit`` of them, drawn with
    ``seed``), their :func:`stamp_features` at image ``size`` standardised on the training
    stamps, and a 70/15/15 train/val/test split stratified by category with ``seed``."""
    stamps = load_stamps()
    categories = stamps.categories()
    stamps = list(stamps)
    if limit is not None and limit < len(stamps):
        share = limit / len(stamps)
        keep = stratified_split([s.category for s in stamps], (share, 1 - share), seed)[0]
        stamps = [stamps[i] for i in keep]
    labels = np.array([categories.index(s.category) for s in stamps])
    index = {s.name: i for i, s in enumerate(stamps)}
    idx = {part: np.array([index[s.name] for s in chosen])
           for part, chosen in split_stamps(stamps, seed=seed).items()}
    features = standardize_each(stamp_features(stamps, size), idx["train"])
    return StampSplit(stamps, features, labels, categories, idx)


def embeddings(model: torch.nn.Module, loader) -> dict:
    """``model.embed`` of every batch of ``loader``, run on the model's device:
    {"image": float32 (N, D), "text": float32 (N, D)} NumPy arrays on the CPU."""
    z, _ = embed(model, loader)
    return {m: v.numpy() for m, v in z.items()}

