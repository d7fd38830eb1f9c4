"""What chapter 03's two recipes share: audio classification tasks, their loaders, a CRNN
model, inference helpers and a pooled-statistics baseline.

Two classification tasks on variable-length feature frames:

* spoken digits (:func:`load_digits_task`) — the Free Spoken Digit Dataset's 13 MFCCs per
  frame, 10 digits, a seeded stratified split: 72 % train, 8 % validation, 20 % test (the
  test part is the same as a plain 80/20 split with the same seed);
* spoken-caption language (:func:`load_language_task`) — log-mel bands per frame of the
  spoken stamp captions, one class per language, split by stamp so that no test sentence
  is heard in training.

Samples are dicts ``{"audio": FloatTensor (T, F), "label": int}`` batched by
:func:`mmcourse.preprocessing.collate_multimodal` into ``audio`` (B, T_max, F),
``audio_lengths`` (B,), ``audio_mask`` (B, T_max) and ``label`` (B,); the model
(:func:`crnn_model`, a one-modality :class:`~mmcourse.nn.models.MultimodalModel`) reads
``audio`` and ``audio_lengths`` of that dict.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mmcourse import data
from mmcourse.nn.models import MultimodalModel, build_model
from mmcourse.preprocessing import collate_multimodal, spec_augment
from mmcourse.runtime import config
from mmcourse.training.metrics import accuracy
from mmcourse.training.train import embed, predict

LANGUAGES = ("fr", "ru", "ro", "ca", "bg", "es", "be", "el")
"""The eight languages with the most spoken captions (657–925 clips each)."""
N_MFCC = 13
"""MFCCs per frame of the spoken digits."""
DIGIT_FRACTIONS = (0.72, 0.08, 0.20)
"""Train / validation / test shares of the spoken digits: 80/20, with 10 % of the 80 %
held out for validation."""
STAMP_FRACTIONS = (0.7, 0.15, 0.15)
"""Train / validation / test shares of the stamps (all clips of a stamp stay together)."""
SPEC_AUGMENT = {"freq_mask": 8, "time_mask": 20, "n_masks": 2}
"""SpecAugment settings for the spoken captions (64 mel bands, ~100–200 frames a clip)."""


@dataclass
class AudioTask:
    """Variable-length feature frames with labels and a fixed split.

    ``features[i]`` is float32 (T_i, F); ``labels`` int64 (N,) index into ``classes``;
    ``split`` maps ``"train"``, ``"val"`` and ``"test"`` to sorted int64 index arrays;
    ``groups`` names the stamp of each clip (None when clips have no groups).
    """

    features: list
    labels: np.ndarray
    classes: list
    split: dict
    groups: list | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_features(self) -> int:
        """F, the number of features per frame."""
        return int(self.features[0].shape[1])

    def part(self, name: str) -> tuple[list, np.ndarray]:
        """Features (list of (T_i, F)) and labels (n,) of split part ``name``."""
        idx = self.split[name]
        return [self.features[i] for i in idx], self.labels[idx]


def load_digits_task(per_class: int | None = None, seed: int = config.SPLIT_SEED) -> AudioTask:
    """FSDD clips as MFCC frames (T_i, 13), split by :data:`DIGIT_FRACTIONS`.

    ``per_class`` keeps the first clips of each digit (for the fast switch); None keeps
    all 3,000. The split is stratified by digit. FSDD stores no speaker ids, so the same
    six speakers appear in every part.
    """
    digits = data.load_spoken_digits()
    keep = np.sort(np.concatenate([np.flatnonzero(digits.labels == d)[:per_class]
                                   for d in range(10)]))
    labels = digits.labels[keep]
    parts = data.stratified_split(labels, DIGIT_FRACTIONS, seed=seed)
    return AudioTask([digits.mfcc[i] for i in keep], labels, [str(d) for d in range(10)],
                     dict(zip(("train", "val", "test"), parts)))


def load_language_task(stamps=None, languages=LANGUAGES, per_language: int | None = None,
                       n_mels: int = 64, seed: int = config.SPLIT_SEED) -> AudioTask:
    """Spoken captions as log-mel frames (T_i, n_mels), labelled by language, split by stamp.

    Features come from :func:`mmcourse.data.load_spoken_captions` (silence trimmed,
    standardised per utterance, cached). The stamps are split by
    :func:`mmcourse.data.split_stamps` (:data:`STAMP_FRACTIONS`, stratified by category)
    and every clip goes to its stamp's part, so a test sentence is never heard in
    training, in any language. ``per_language`` keeps the first clips of each language.
    """
    stamps = data.load_stamps() if stamps is None else stamps
    captions = data.load_spoken_captions(stamps, list(languages), n_mels=n_mels,
                                         per_language=per_language)
    part_of = {s.name: part for part, members in
               data.split_stamps(stamps, STAMP_FRACTIONS, seed=seed).items() for s in members}
    names = np.array([part_of[name] for name in captions.stamp_names])
    split = {part: np.flatnonzero(names == part) for part in ("train", "val", "test")}
    return AudioTask(captions.features, captions.labels, list(languages), split,
                     captions.stamp_names)


class FrameDataset(Dataset):
    """Samples ``{"audio": FloatTensor (T_i, F), "label": int}`` of a list of frame arrays.

    Training-time options draw from PyTorch's global generator, which
    :func:`mmcourse.training.train.fit` reseeds each epoch: ``max_frames`` cuts a random window
    of at most that many frames from longer clips, and ``augment`` (keyword arguments of
    :func:`mmcourse.preprocessing.spec_augment`) applies fresh SpecAugment masks.
    """

    def __init__(self, features: list, labels, augment: dict | None = None,
                 max_frames: int | None = None):
        self.features = [torch.as_tensor(f, dtype=torch.float32) for f in features]
        self.labels = [int(y) for y in labels]
        self.augment = augment
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        """Frames per sample after cropping to ``max_frames``."""
        return [min(len(f), self.max_frames or len(f)) for f in self.features]

    def __getitem__(self, i: int) -> dict:
        audio = self.features[i]
        if self.max_frames is not None and len(audio) > self.max_frames:
            start = int(torch.randint(len(audio) - self.max_frames + 1, ()))
            audio = audio[start:start + self.max_frames]
        if self.augment:
            audio = spec_augment(audio.T, **self.augment).T
        return {"audio": audio, "label": self.labels[i]}


class BucketBatchSampler(Sampler):
    """Random batches of clips of similar length, so that little of a batch is padding.

    Each epoch the indices are shuffled and cut into pools of ``pool`` batches; each pool
    is sorted by length and cut into batches of ``batch_size``, and the order of all
    batches is shuffled (PyTorch's global generator).
    """

    def __init__(self, lengths: list[int], batch_size: int, pool: int = 50):
        self.lengths, self.batch_size, self.pool = lengths, batch_size, pool

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths)).tolist()
        size = self.pool * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=self.lengths.__getitem__)
            batches += [chunk[i:i + self.batch_size]
                        for i in range(0, len(chunk), self.batch_size)]
        for k in torch.randperm(len(batches)).tolist():
            yield batches[k]


collate_audio = functools.partial(collate_multimodal, pad_keys=("audio",))
"""Collate audio samples, always giving ``audio_lengths`` and ``audio_mask``."""


def make_loader(task: AudioTask, part: str, batch_size: int = 64, shuffle: bool = False,
                augment: dict | None = None, max_frames: int | None = None) -> DataLoader:
    """A DataLoader of dict batches over split ``part`` of ``task`` (see the module doc).

    ``shuffle`` draws random batches of similar length (:class:`BucketBatchSampler`);
    otherwise the clips keep their order. ``augment`` and ``max_frames`` go to
    :class:`FrameDataset`.
    """
    features, labels = task.part(part)
    dataset = FrameDataset(features, labels, augment, max_frames)
    if shuffle:
        return DataLoader(dataset, batch_sampler=BucketBatchSampler(dataset.lengths(),
                                                                    batch_size),
                          collate_fn=collate_audio)
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_audio)


def task_loaders(task: AudioTask, batch_size: int, augment: dict | None = None,
                 max_frames: int | None = None) -> dict[str, DataLoader]:
    """Train, validation and test loaders of ``task`` (:func:`make_loader`).

    Only the training loader shuffles (bucketed by length), crops to ``max_frames`` and
    augments; validation and test clips are whole, in split order, ``2 * batch_size``
    per batch.
    """
    return {"train": make_loader(task, "train", batch_size, shuffle=True, augment=augment,
                                 max_frames=max_frames),
            "val": make_loader(task, "val", 2 * batch_size),
            "test": make_loader(task, "test", 2 * batch_size)}


def crnn_model(n_features: int, num_classes: int, seed: int = 0,
               **encoder_options) -> MultimodalModel:
    """A CRNN classifier on frames (T, ``n_features``): an
    :class:`~mmcourse.nn.encoders.AudioCRNNEncoder` (``encoder_options`` go to it) and a
    linear head, built by :func:`mmcourse.nn.models.build_model` and initialised from
    ``seed``; the global random state is left as it was.

    Batch dict (``audio`` (B, T, F), ``audio_lengths`` (B,)) → logits (B, num_classes);
    ``model.embed(batch)["audio"]`` is the embedding (B, out_dim).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model({"encoders": {"audio": {"type": "audio_crnn",
                                                   "n_features": n_features,
                                                   **encoder_options}},
                            "head": {"num_classes": num_classes}})


def predictions(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes (N,) and true labels (N,) of every clip of ``loader``, in order.

    Each batch runs on the model's device (:func:`mmcourse.training.train.predict`); the results
    are NumPy arrays on the CPU.
    """
    logits, labels = predict(model, loader)
    return logits.argmax(-1).numpy(), labels.numpy()


def embeddings(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """CRNN embeddings float32 (N, out_dim) and labels (N,) of every clip of ``loader``.

    ``model.embed(batch)["audio"]`` on the model's device (:func:`mmcourse.training.train.embed`);
    the results are NumPy arrays on the CPU.
    """
    vectors, labels = embed(model, loader)
    return vectors["audio"].numpy(), labels.numpy()


def pooled_statistics(features: list) -> np.ndarray:
    """Per-feature statistics over time of each clip (T_i, F) → float32 (N, 8·F).

    Mean, standard deviation, minimum and maximum of the frames
    (:func:`mmcourse.data.pooled_mfcc`) and of their frame-to-frame differences (how
    fast each band changes). A clip of one frame has zero differences.
    """
    deltas = [np.diff(f, axis=0) if len(f) > 1 else np.zeros_like(f) for f in features]
    return np.hstack([data.pooled_mfcc(features), data.pooled_mfcc(deltas)])


def baseline(task: AudioTask, features=data.pooled_mfcc, C: float = 1.0
             ) -> tuple[float, np.ndarray]:
    """Logistic regression on ``features(clips)`` (N, D): test accuracy and predictions
    (n_test,) in the order of ``task.split["test"]``.

    It is fitted on the train and validation parts together (it has no epochs to pick)
    after standardisation with their statistics.
    """
    fit_idx = np.concatenate([task.split["train"], task.split["val"]])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
    model.fit(features([task.features[i] for i in fit_idx]), task.labels[fit_idx])
    test_x, test_y = task.part("test")
    predicted = model.predict(features(test_x))
    return accuracy(predicted, test_y), predicted
