"""AV-digits: (handwritten image, spoken-digit MFCCs, text) triples of the same digit.

The pairing rule, fixed by ``seed``:

1. The 3,000 spoken clips are split 80/20 into train/test, stratified by digit; the 1,797
   images are split the same way with ``seed + 1``. Train and test share no clip and no
   image.
2. Within each split and digit, the clips (in index order) and the images are shuffled
   with ``numpy.random.default_rng(seed)``; clip ``k`` is paired with image ``k mod n``,
   where ``n`` is the number of images of that digit in the split, so each clip is used
   once and each image about 1.7 times.
3. Each triple's text states ``TEXT_PROPERTIES`` (three) different true properties of the
   digit, drawn at random from five (parity, size, primality, being a perfect square,
   being a multiple of three), e.g. "a digit that is even, greater than four and not
   prime". It never states the digit itself, and several digits fit most
   descriptions.
4. As in the AV-MNIST benchmark, images and clips are corrupted so that no single
   modality gives the label away: Gaussian pixel noise (σ = ``image_noise``) and a
   ``occlusion``×``occlusion`` black patch at a random place; Gaussian MFCC noise of
   ``audio_noise`` times each coefficient's training standard deviation, and a random
   ``frame_mask`` share of the frames replaced by the training mean. The corruption is
   drawn once per triple from the seed, so the data set is the same on every run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .digits import load_handwritten_digits, load_spoken_digits
from .splits import stratified_split

PROPERTIES = {
    "parity": lambda d: "even" if d % 2 == 0 else "odd",
    "size": lambda d: "greater than four" if d > 4 else "less than five",
    "prime": lambda d: "prime" if d in (2, 3, 5, 7) else "not prime",
    "square": lambda d: "a perfect square" if d in (0, 1, 4, 9) else "not a perfect square",
    "three": lambda d: "a multiple of three" if d % 3 == 0 else "not a multiple of three",
}
"""Each property maps a digit 0–9 to a true phrase about it."""
TEXT_PROPERTIES = 3


def describe_digit(digit: int, properties: tuple[str, ...]) -> str:
    """A true, partial description of ``digit`` from the named ``properties``."""
    phrases = [PROPERTIES[p](digit) for p in properties]
    if len(phrases) > 1:
        phrases = [", ".join(phrases[:-1]), phrases[-1]]
    return "a digit that is " + " and ".join(phrases)


@dataclass(frozen=True)
class Corruption:
    """Corruption levels (see the module docstring); ``Corruption.none()`` keeps data clean."""

    image_noise: float = 0.5
    occlusion: int = 3
    audio_noise: float = 1.0
    frame_mask: float = 0.3

    @classmethod
    def none(cls) -> "Corruption":
        """No corruption at all."""
        return cls(0.0, 0, 0.0, 0.0)


@dataclass
class AVDigitsSplit:
    """One split of AV-digits.

    ``images`` float32 (N, 8, 8); ``mfcc`` list of float32 (T_i, 13); ``texts`` list of str;
    ``labels`` int64 (N,); ``image_ids`` / ``clip_ids`` index the source data sets.
    """

    images: np.ndarray
    mfcc: list
    texts: list
    labels: np.ndarray
    image_ids: np.ndarray
    clip_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """MFCC frames per clip, int64 (N,)."""
        return np.array([len(m) for m in self.mfcc], dtype=np.int64)


@dataclass
class AVDigits:
    """The train and test splits and the settings that made them."""

    train: AVDigitsSplit
    test: AVDigitsSplit
    seed: int
    corruption: Corruption = field(default_factory=Corruption)


def _pair(clip_idx, clip_labels, image_idx, image_labels, rng):
    """Pair each clip with an image of the same digit (rule step 2)."""
    clips_out, images_out = [], []
    for digit in range(10):
        clips = clip_idx[clip_labels[clip_idx] == digit].copy()
        images = image_idx[image_labels[image_idx] == digit].copy()
        rng.shuffle(clips)
        rng.shuffle(images)
        clips_out.append(clips)
        images_out.append(images[np.arange(len(clips)) % len(images)])
    return np.concatenate(clips_out), np.concatenate(images_out)


def _build(clip_ids, image_ids, spoken, handwritten, corruption, mfcc_mean, mfcc_std, rng):
    labels = spoken.labels[clip_ids]
    images = handwritten.images[image_ids].copy()
    mfcc, texts = [], []
    names = list(PROPERTIES)
    for i, digit in enumerate(labels):
        chosen = rng.choice(len(names), size=TEXT_PROPERTIES, replace=False)
        texts.append(describe_digit(int(digit), tuple(names[j] for j in sorted(chosen))))
        clip = spoken.mfcc[clip_ids[i]].copy()
        if corruption.audio_noise:
            clip += rng.normal(0, corruption.audio_noise, clip.shape) * mfcc_std
        if corruption.frame_mask:
            masked = rng.random(len(clip)) < corruption.frame_mask
            clip[masked] = mfcc_mean
        mfcc.append(clip.astype(np.float32))
        if corruption.image_noise:
            images[i] += rng.normal(0, corruption.image_noise, (8, 8)).astype(np.float32)
        if corruption.occlusion:
            k = corruption.occlusion
            r, c = rng.integers(0, 8 - k + 1, size=2)
            images[i, r:r + k, c:c + k] = 0.0
    return AVDigitsSplit(images.astype(np.float32), mfcc, texts, labels.astype(np.int64),
                         image_ids, clip_ids)


def load_av_digits(seed: int = 0, corruption: Corruption | None = None,
                   test_fraction: float = 0.2) -> AVDigits:
    """Build AV-digits by the rule in the module docstring (3,000 triples in all)."""
    corruption = Corruption() if corruption is None else corruption
    spoken, handwritten = load_spoken_digits(), load_handwritten_digits()
    fr = (1 - test_fraction, test_fraction)
    clip_train, clip_test = stratified_split(spoken.labels, fr, seed)
    image_train, image_test = stratified_split(handwritten.labels, fr, seed + 1)
    rng = np.random.default_rng(seed)
    pairs = {name: _pair(c, spoken.labels, i, handwritten.labels, rng)
             for name, c, i in (("train", clip_train, image_train),
                                ("test", clip_test, image_test))}
    train_frames = np.concatenate([spoken.mfcc[i] for i in clip_train])
    mean, std = train_frames.mean(0), train_frames.std(0)
    splits = {name: _build(c, i, spoken, handwritten, corruption, mean, std, rng)
              for name, (c, i) in pairs.items()}
    return AVDigits(splits["train"], splits["test"], seed, corruption)


def pooled_mfcc(mfcc: list) -> np.ndarray:
    """Mean, std, min and max of each coefficient over time: float32 (N, 4 * 13)."""
    return np.stack([np.concatenate([m.mean(0), m.std(0), m.min(0), m.max(0)])
                     for m in mfcc]).astype(np.float32)


def modality_baselines(av: AVDigits) -> dict:
    """Test accuracy of a logistic regression on each modality alone and on all three.

    Features: the 64 pixels; :func:`pooled_mfcc`; a bag of words of the text; their
    concatenation. Each is standardised on the training split (C = 1.0).
    """
    vec = CountVectorizer(ngram_range=(1, 2)).fit(av.train.texts)

    def features(split):
        return {"image": split.images.reshape(len(split), -1),
                "audio": pooled_mfcc(split.mfcc),
                "text": vec.transform(split.texts).toarray().astype(np.float32)}

    train, test = features(av.train), features(av.test)
    train["all three"] = np.hstack([train["image"], train["audio"], train["text"]])
    test["all three"] = np.hstack([test["image"], test["audio"], test["text"]])
    scores = {}
    for name in train:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(train[name], av.train.labels)
        scores[name] = float(model.score(test[name], av.test.labels))
    return scores


class AVDigitsDataset:
    """One AV-digits split as a torch map-style dataset of sample dicts.

    Each item is ``{"image": float32 (1, 8, 8), "tokens": int64 (L,), "audio": float32
    (T, 13), "label": int}``; batch them with
    :func:`mmcourse.preprocessing.collate_multimodal`. ``tokenizer`` (a fitted
    :class:`mmcourse.preprocessing.Tokenizer`) encodes the texts; ``indices`` selects a
    subset of the split.
    """

    def __init__(self, split: AVDigitsSplit, tokenizer, indices=None):
        self.indices = np.arange(len(split)) if indices is None else np.asarray(indices)
        self.images = torch.from_numpy(split.images).unsqueeze(1)
        self.audio = [torch.from_numpy(m) for m in split.mfcc]
        self.tokens = [tokenizer.encode(t) for t in split.texts]
        self.labels = split.labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        j = self.indices[i]
        return {"image": self.images[j], "tokens": self.tokens[j], "audio": self.audio[j],
                "label": int(self.labels[j])}
