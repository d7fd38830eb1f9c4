"""The data layer on the real installed data: counts, shapes, splits and pairing."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mmcourse.data import (Corruption, FashionMNIST, load_av_digits, load_fashion,
                           load_handwritten_digits, load_image, load_spoken_digits,
                           modality_baselines, split_stamps, stratified_split)
from mmcourse.data.avdigits import PROPERTIES, TEXT_PROPERTIES


def test_stamp_counts(stamps):
    assert len(stamps) == 950
    assert sum(not s.is_svg for s in stamps) == 785
    assert sum(s.is_svg for s in stamps) == 165
    assert stamps.skipped == 0
    counts = Counter(s.category for s in stamps)
    assert len(counts) == 16
    assert counts["animals"] == 154 and counts["symbols"] == 249
    assert not any("_mirror" in s.name or "_flip" in s.name for s in stamps)
    assert sum(s.sound is not None for s in stamps) == 134


def test_stamp_captions_and_clips(stamps):
    frog = next(s for s in stamps if s.name == "animals/amphibians/frog")
    assert frog.caption == "A frog."
    assert frog.subcategory == "amphibians"
    assert frog.caption_in("fr") and frog.caption_in("zh_CN") != frog.caption
    assert frog.spoken_path("fr").name == "frog_desc_fr.ogg"
    assert frog.spoken_path("en").name == "frog_desc.ogg"
    assert all(s.caption for s in stamps)
    assert sum(len(s.spoken) for s in stamps) == 7391
    langs = Counter(lang for s in stamps for lang in s.spoken)
    assert langs["fr"] > 900 and langs["en"] == 65


def test_unknown_language(stamps):
    from mmcourse.data import UnknownLanguageError

    frog = stamps[0]
    with pytest.raises(UnknownLanguageError, match="has no caption in 'xx'.*fr"):
        frog.caption_in("xx")
    with pytest.raises(UnknownLanguageError, match="no spoken caption in 'xx'"):
        frog.spoken_path("xx")


def test_images_png_and_svg(stamps):
    png = next(s for s in stamps if s.image_path.suffix == ".png")
    svg = next(s for s in stamps if s.is_svg)
    for stamp in (png, svg):
        image = load_image(stamp)
        assert image.mode == "RGB"
        pixels = np.asarray(image)
        assert pixels.min() < 200, "the picture is not blank"
    # transparent corners of the rasterised clipart come out white
    assert tuple(np.asarray(load_image(svg))[0, 0]) == (255, 255, 255)


def test_stamp_split(stamps):
    split = split_stamps(stamps, seed=0)
    names = {k: {s.name for s in v} for k, v in split.items()}
    assert sum(map(len, names.values())) == len(stamps)
    assert not (names["train"] & names["val"] or names["train"] & names["test"]
                or names["val"] & names["test"])
    for category, total in Counter(s.category for s in stamps).items():
        n_train = sum(s.category == category for s in split["train"])
        assert abs(n_train - 0.7 * total) <= 1
    again = split_stamps(stamps, seed=0)
    other = split_stamps(stamps, seed=1)
    assert [s.name for s in again["test"]] == [s.name for s in split["test"]]
    assert [s.name for s in other["test"]] != [s.name for s in split["test"]]


def test_stratified_split_validates():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split([0, 1], (0.5, 0.6))
    parts = stratified_split([0] * 3 + [1] * 7, (0.8, 0.2), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))


def test_spoken_digits():
    digits = load_spoken_digits()
    assert len(digits) == 3000
    assert all(m.shape[1] == 13 and m.dtype == np.float32 for m in digits.mfcc)
    assert digits.lengths.min() == 6 and digits.lengths.max() == 92
    assert np.bincount(digits.labels).tolist() == [300] * 10


def test_handwritten_digits():
    digits = load_handwritten_digits()
    assert len(digits) == 1797
    assert digits.images.shape == (1797, 8, 8)
    assert 0.0 <= digits.images.min() and digits.images.max() == 1.0


def test_fashion():
    train_x, train_y = load_fashion("train")
    test_x, test_y = load_fashion("test")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert len(train_y) + len(test_y) == 70000
    assert np.bincount(test_y).tolist() == [1000] * 10
    small = FashionMNIST("test", limit=100)
    image, label = small[0]
    assert len(small) == 100 and image.shape == (1, 28, 28) and 0 <= image.min() <= image.max() <= 1
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion("validation")


def test_av_digits_pairing(av_digits):
    train, test = av_digits.train, av_digits.test
    assert (len(train), len(test)) == (2400, 600)
    assert not set(train.image_ids) & set(test.image_ids)
    assert not set(train.clip_ids) & set(test.clip_ids)
    spoken, handwritten = load_spoken_digits(), load_handwritten_digits()
    for split in (train, test):
        assert (spoken.labels[split.clip_ids] == split.labels).all()
        assert (handwritten.labels[split.image_ids] == split.labels).all()
        assert len(set(split.clip_ids)) == len(split)  # each clip used once
    clip_train, _ = stratified_split(spoken.labels, (0.8, 0.2), 0)
    assert sorted(train.clip_ids.tolist()) == clip_train.tolist()


def _clauses(text: str) -> list[str]:
    assert text.startswith("a digit that is ")
    body = text[len("a digit that is "):]
    return [c for part in body.split(" and ") for c in part.split(", ")]


def test_av_digits_text_is_true_and_partial(av_digits):
    for text, label in zip(av_digits.train.texts, av_digits.train.labels):
        clauses = _clauses(text)
        assert len(clauses) == TEXT_PROPERTIES
        true_phrases = {rule(int(label)) for rule in PROPERTIES.values()}
        assert set(clauses) <= true_phrases, text
        assert not any(ch.isdigit() for ch in text)
    # several digits fit most descriptions: the best guess from the text alone is often wrong
    fits = [sum({rule(d) for rule in PROPERTIES.values()} >= set(_clauses(t))
                for d in range(10)) for t in av_digits.train.texts]
    assert np.mean(np.array(fits) > 1) > 0.5


def test_av_digits_seeded_and_corrupted(av_digits):
    again = load_av_digits(seed=0)
    assert np.array_equal(again.train.images, av_digits.train.images)
    assert again.test.texts == av_digits.test.texts
    clean = load_av_digits(seed=0, corruption=Corruption.none())
    assert np.array_equal(clean.train.clip_ids, av_digits.train.clip_ids)
    assert not np.allclose(clean.train.images, av_digits.train.images)
    assert all(np.array_equal(a, b) is False
               for a, b in zip(clean.train.mfcc[:20], av_digits.train.mfcc[:20]))
    other = load_av_digits(seed=1)
    assert not np.array_equal(other.train.clip_ids, av_digits.train.clip_ids)


def test_av_digits_no_modality_gives_the_label_away(av_digits):
    scores = modality_baselines(av_digits)
    for name in ("image", "audio", "text"):
        assert 0.45 <= scores[name] <= 0.85, scores
    assert scores["all three"] > max(scores["image"], scores["audio"], scores["text"]) + 0.15


def test_svg_with_internal_entities_rasterises(stamps, tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))  # no cached raster to fall back on
    bread = next(s for s in stamps if s.name == "food/loaf_of_bread")
    assert bread.is_svg
    assert np.asarray(load_image(bread)).min() < 200


def test_spoken_captions_cache_round_trip(stamps, tmp_path, monkeypatch):
    from mmcourse.data import load_spoken_captions

    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    computed = load_spoken_captions(stamps, ["fr", "el"], n_mels=32, per_language=6)
    cached = load_spoken_captions(stamps, ["fr", "el"], n_mels=32, per_language=6)
    assert len(list((tmp_path / "spoken-captions").glob("*.npz"))) == 1
    assert [f.shape for f in cached.features] == [f.shape for f in computed.features]
    assert all(np.array_equal(a, b) for a, b in zip(cached.features, computed.features))
    assert cached.stamp_names == computed.stamp_names
    assert np.array_equal(cached.labels, computed.labels)
    # The clips of the cached file are views of one array read once, not one read per clip.
    assert len({id(f.base) for f in cached.features}) == 1
