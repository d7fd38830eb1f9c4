"""Spoken stamp captions as log-mel frames, decoded once and cached on disk.

Each stamp has recorded captions in up to 14 languages (44.1 kHz, ~1.4 s). Decoding and
resampling ~5,000 clips takes minutes on two cores, so the log-mel features are cached
under the course cache, keyed by the clips and the feature settings.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mmcourse.preprocessing import (AudioReadError, load_audio, log_mel, normalize_per_utterance,
                                    trim_silence)
from mmcourse.runtime import cache


@dataclass
class SpokenCaptions:
    """Log-mel features of spoken captions.

    ``features[i]`` float32 (T_i, n_mels) (frames first, standardised per utterance);
    ``labels`` int64 (N,) index into ``languages``; ``stamp_names[i]`` names the stamp, so
    splits can keep all clips of one stamp together; ``skipped`` counts unreadable clips.
    """

    features: list
    labels: np.ndarray
    languages: list
    stamp_names: list
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Frames per clip, int64 (N,)."""
        return np.array([len(f) for f in self.features], dtype=np.int64)


def clip_log_mel(path, n_mels: int = 64):
    """One recorded clip as float32 log-mel frames (T, n_mels): mono, 16 kHz, silence
    trimmed, ``n_mels`` bands every 10 ms, standardised per utterance. Raises
    :class:`mmcourse.preprocessing.AudioReadError` when it cannot be decoded."""
    mel = normalize_per_utterance(log_mel(trim_silence(load_audio(path)), n_mels=n_mels))
    return mel.T.contiguous().float()


def load_spoken_captions(stamps, languages, n_mels: int = 64,
                         per_language: int | None = None) -> SpokenCaptions:
    """Log-mel features of every stamp's spoken caption in each of ``languages``.

    Clips are cleaned (mono, 16 kHz, silence trimmed), turned into ``n_mels`` log-mel
    bands every 10 ms and standardised per utterance. ``per_language`` keeps only the
    first clips of each language in stamp order (for the fast switch). A clip that cannot
    be decoded is skipped with a warning and counted in ``skipped``.
    """
    chosen = []
    for label, lang in enumerate(languages):
        clips = [(s.name, s.spoken[lang]) for s in stamps if lang in s.spoken]
        chosen.extend((name, path, label) for name, path in clips[:per_language])

    def compute() -> dict:
        features, labels, names, skipped = [], [], [], 0
        for name, path, label in chosen:
            try:
                mel = clip_log_mel(path, n_mels)
            except AudioReadError as err:
                warnings.warn(f"skipping {path}: {err}")
                skipped += 1
                continue
            features.append(mel.numpy())
            labels.append(label)
            names.append(name)
        if skipped:
            warnings.warn(f"{skipped} spoken caption(s) could not be decoded and were skipped")
        return {"frames": np.concatenate(features), "lengths": [len(f) for f in features],
                "labels": np.array(labels, dtype=np.int64), "names": np.array(names),
                "skipped": skipped}

    stored = cache.arrays("spoken-captions", [n_mels, *(p for _, p, _ in chosen)], compute)
    features = np.split(stored["frames"], np.cumsum(stored["lengths"])[:-1])
    return SpokenCaptions(features, stored["labels"], list(languages),
                          stored["names"].tolist(), int(stored["skipped"]))
