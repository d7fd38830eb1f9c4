"""A one-page summary of every installed data set, as ``python -m mmcourse info`` prints it."""
from __future__ import annotations

from collections import Counter

from . import (load_av_digits, load_fashion, load_handwritten_digits, load_spoken_digits,
               load_stamps, modality_baselines)


def data_summary() -> dict:
    """Count what is installed: stamps (by picture kind, category, spoken captions), spoken
    and handwritten digits, Fashion-MNIST, and AV-digits with each modality's baseline."""
    stamps = load_stamps()
    spoken_langs = Counter(lang for s in stamps for lang in s.spoken)
    fashion = sum(len(load_fashion(split)[1]) for split in ("train", "test"))
    av = load_av_digits()
    return {
        "stamps": len(stamps),
        "stamps with a PNG": sum(not s.is_svg for s in stamps),
        "stamps with only an SVG": sum(s.is_svg for s in stamps),
        "stamps skipped": stamps.skipped,
        "stamp categories": dict(Counter(s.category for s in stamps).most_common()),
        "spoken captions": sum(spoken_langs.values()),
        "spoken caption languages": dict(spoken_langs.most_common()),
        "stamps with a sound effect": sum(s.sound is not None for s in stamps),
        "spoken digits": len(load_spoken_digits()),
        "handwritten digits": len(load_handwritten_digits()),
        "fashion images": fashion,
        "AV-digits train/test": (len(av.train), len(av.test)),
        "AV-digits baselines (test accuracy)": {k: round(v, 3) for k, v in
                                                modality_baselines(av).items()},
    }
