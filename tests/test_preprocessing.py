"""Tests of mmcourse.preprocessing, on the installed Tux Paint stamps where it matters."""
import math
import warnings

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from mmcourse.data.stamps import load_image
from mmcourse.preprocessing import (
    HALF_MEAN_STD, PAD, UNK, AudioReadError, LogMel, Tokenizer, Vocabulary, add_noise,
    collate_multimodal, denormalize, eval_transform, letterbox, load_audio, log_mel, mfcc,
    normalize_per_utterance, normalize_text, pad_sequences, spec_augment, time_shift,
    token_dropout, tokenize, train_transform, trim_silence)


@pytest.fixture(scope="module")
def english_clip(stamps):
    return next(s for s in stamps if "en" in s.spoken).spoken_path("en")


@pytest.fixture(scope="module")
def french_clip(stamps):
    return next(s for s in stamps if "fr" in s.spoken).spoken_path("fr")


@pytest.fixture(scope="module")
def speech(french_clip):
    return load_audio(french_clip)


@pytest.fixture(scope="module")
def stamp_image(stamps):
    return load_image(next(s for s in stamps if not s.is_svg))


# --- text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("Hello, World!", "hello world"),
    ("  Crème   BRÛLÉE...\n", "crème brûlée"),
    ("Ｆｕｌｌ－ｗｉｄｔｈ １２３", "full width 123"),
    ("Straße", "strasse"),
    ("你好，世界。", "你好 世界"),
    ("l'éléphant (rose)", "l éléphant rose"),
    ("नमस्ते!", "नमस्ते"),
    ("?!", ""),
])
def test_normalize_text(raw, clean):
    assert normalize_text(raw) == clean


def test_normalize_text_composes_accents():
    assert normalize_text("cafe\u0301") == "caf\u00e9"


def test_tokenize_levels():
    assert tokenize("The cat, the DOG.") == ["the", "cat", "the", "dog"]
    chars = tokenize("Ab, c", level="char")
    assert chars == ["a", "b", " ", "c"]
    assert "".join(chars) == normalize_text("Ab, c")
    with pytest.raises(ValueError, match="level"):
        tokenize("x", level="sentence")


def test_vocabulary_specials_order_and_unknowns():
    vocab = Vocabulary([["b", "a", "c"], ["a", "b"], ["a", "d"]])
    assert vocab.tokens[PAD] == "<pad>" and vocab.tokens[UNK] == "<unk>"
    assert vocab.tokens[2:] == ["a", "b", "c", "d"]  # by count, then alphabetically
    assert vocab.encode(["a", "zebra", "d"]) == [2, UNK, 5]
    assert len(vocab) == 6 and "a" in vocab and "zebra" not in vocab


def test_vocabulary_min_freq_and_max_size():
    corpus = [["a", "a", "a", "b", "b", "c"]]
    assert Vocabulary(corpus, min_freq=2).tokens[2:] == ["a", "b"]
    capped = Vocabulary(corpus, max_size=3)
    assert len(capped) == 3 and capped.tokens[2:] == ["a"]
    with pytest.raises(ValueError):
        Vocabulary(corpus, max_size=1)


def test_vocabulary_round_trip_and_determinism(stamps):
    captions = [s.caption for s in stamps]
    vocab = Vocabulary(tokenize(c) for c in captions)
    again = Vocabulary(tokenize(c) for c in reversed(captions))
    assert vocab.tokens == again.tokens
    words = tokenize(captions[0])
    assert vocab.decode(vocab.encode(words)) == words
    assert vocab.decode([vocab.encode(words)[0], PAD, PAD]) == words[:1]
    restored = Vocabulary.from_dict(vocab.to_dict())
    assert restored.tokens == vocab.tokens
    assert restored.encode(words) == vocab.encode(words)


def test_tokenizer_encode_decode(stamps):
    french = [s.captions["fr"] for s in stamps if "fr" in s.captions]
    tok = Tokenizer(level="word").fit(french)
    ids = tok.encode(french[0])
    assert ids.dtype == torch.long and ids.dim() == 1
    assert tok.decode(ids) == normalize_text(french[0])
    assert tok.encode(french[0], max_len=2).tolist() == ids[:2].tolist()
    assert tok.decode(tok.encode("xyzzy " + french[0])).startswith("<unk> ")
    chars = Tokenizer(level="char").fit(french)
    assert chars.decode(chars.encode(french[0])) == normalize_text(french[0])
    with pytest.raises(RuntimeError, match="fit"):
        Tokenizer().encode("unfitted")


def test_token_dropout():
    ids = torch.tensor([5, 6, 7, 8, 9, 10, 11, 12, 0, 0])
    first = token_dropout(ids, 0.5, torch.Generator().manual_seed(0))
    second = token_dropout(ids, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(first, second)
    assert set(first.tolist()) - set(ids.tolist()) <= {UNK}
    assert torch.equal(token_dropout(ids, 0.0), ids)
    assert token_dropout(ids, 1.0).tolist() == [UNK] * 8 + [PAD, PAD]
    assert ids.tolist()[:2] == [5, 6]  # input untouched


# --- audio --------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "fr"])
def test_load_audio_real_clip(lang, english_clip, french_clip):
    path = english_clip if lang == "en" else french_clip
    info = soundfile.info(str(path))
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.dim() == 2 and wave.shape[0] == 1
    assert abs(wave.shape[1] - info.frames * 16000 / info.samplerate) <= 1
    assert wave.abs().max() > 0.01


def test_load_audio_stereo_is_averaged(french_clip):
    data, rate = soundfile.read(str(french_clip), dtype="float32", always_2d=True)
    assert data.shape[1] == 2
    native = load_audio(french_clip, sample_rate=rate)
    assert native.shape == (1, data.shape[0])
    assert np.allclose(native[0].numpy(), data.mean(axis=1), atol=1e-6)


def test_load_audio_corrupt_and_missing(tmp_path):
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioReadError, match="corrupt") as info:
        load_audio(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, OSError)
    missing = tmp_path / "nowhere.ogg"
    with pytest.raises(FileNotFoundError) as info:
        load_audio(missing)
    assert str(missing) in str(info.value)


def test_trim_silence_removes_padding(speech):
    frame = 400  # 25 ms at 16 kHz
    half_second = torch.zeros(1, 8000)
    padded = torch.cat([half_second, speech, half_second], dim=1)
    trimmed = trim_silence(padded, 16000)
    assert abs(trimmed.shape[1] - trim_silence(speech, 16000).shape[1]) <= frame
    assert trimmed.shape[1] <= speech.shape[1] + frame
    assert trimmed[0, :frame].abs().max() > 0 and trimmed[0, -frame:].abs().max() > 0


def test_trim_silence_never_empty():
    assert trim_silence(torch.zeros(1, 1000), 16000).shape == (1, 1000)
    click = torch.zeros(1, 16000)
    click[0, 8000] = 1.0
    assert trim_silence(click, 16000).shape == (1, 400)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_add_noise_hits_snr(speech, snr_db):
    noisy = add_noise(speech, snr_db, torch.Generator().manual_seed(1))
    noise = noisy - speech
    measured = 10 * math.log10(speech.pow(2).mean() / noise.pow(2).mean())
    assert abs(measured - snr_db) < 0.5
    assert noisy.shape == speech.shape and noisy.dtype == speech.dtype


def test_time_shift(speech):
    shifted = time_shift(speech, 0.2, torch.Generator().manual_seed(3))
    again = time_shift(speech, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(shifted, again) and shifted.shape == speech.shape
    shifts = [time_shift(speech, 0.2, torch.Generator().manual_seed(k)) for k in range(5)]
    assert any(not torch.equal(s, speech) for s in shifts)
    assert torch.equal(time_shift(speech, 0.0), speech)
    ramp = torch.arange(1.0, 11.0)
    out = time_shift(ramp, 0.5, torch.Generator().manual_seed(0))
    nonzero = out[out != 0]
    assert torch.equal(nonzero, torch.arange(nonzero[0], nonzero[0] + len(nonzero)))


def test_spec_augment_seeded_and_masked():
    spec = torch.rand(64, 100) + 1.0  # no zeros before masking
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = spec_augment(spec, 10, 20, n_masks=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    second = spec_augment(spec, 10, 20, n_masks=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    other = spec_augment(spec, 10, 20, n_masks=2, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first, other)
    masked = first == 0
    assert masked.any()
    assert torch.equal(first[~masked], spec[~masked])
    rows, cols = masked.all(dim=1), masked.all(dim=0)
    assert torch.equal(masked, rows[:, None] | cols[None, :])
    filled = spec_augment(spec, 10, 20, mask_value=-5.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(filled == -5.0, masked)


def test_log_mel_shape(speech):
    features = log_mel(speech)
    assert features.shape == (64, 1 + speech.shape[1] // 160)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    assert torch.equal(LogMel(n_mels=40)(speech[0]), log_mel(speech[0], n_mels=40))


def test_mfcc_shape_without_warnings(speech):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coefficients = mfcc(speech, 16000, n_mfcc=13)
    assert coefficients.shape == (13, 1 + speech.shape[1] // 160)
    assert torch.isfinite(coefficients).all()


def test_normalize_per_utterance(speech):
    features = normalize_per_utterance(log_mel(speech))
    assert torch.allclose(features.mean(dim=1), torch.zeros(64), atol=1e-4)
    assert torch.allclose(features.std(dim=1, correction=0), torch.ones(64), atol=1e-3)
    constant = normalize_per_utterance(torch.full((3, 10), 4.0))
    assert torch.equal(constant, torch.zeros(3, 10))


# --- images -------------------------------------------------------------------------------

def test_letterbox_keeps_aspect_and_pads_white():
    wide = Image.new("RGB", (200, 100), (0, 0, 0))
    boxed = np.asarray(letterbox(wide, 64))
    assert boxed.shape == (64, 64, 3)
    assert (boxed[:16] == 255).all() and (boxed[48:] == 255).all()
    assert (boxed[16:48] == 0).all()
    tall = np.asarray(letterbox(Image.new("L", (30, 90), 0), 60))
    assert (tall[:, :20] == 255).all() and (tall[:, 20:40] == 0).all()


def test_letterbox_transparent_becomes_fill():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert (np.asarray(letterbox(clear, 8, fill=(10, 20, 30))) == (10, 20, 30)).all()


def test_letterbox_real_stamp(stamp_image):
    boxed = letterbox(stamp_image, 96)
    assert boxed.mode == "RGB" and boxed.size == (96, 96)


def test_eval_transform_real_stamp(stamp_image):
    transform = eval_transform(64)
    x = transform(stamp_image)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert torch.equal(x, transform(stamp_image))
    from_tensor = transform(torch.from_numpy(np.asarray(stamp_image).copy()).permute(2, 0, 1))
    assert from_tensor.shape == (3, 64, 64) and from_tensor.dtype == torch.float32


def test_train_transform_real_stamp(stamp_image):
    transform = train_transform(64, HALF_MEAN_STD, HALF_MEAN_STD)
    torch.manual_seed(0)
    first = transform(stamp_image)
    second = transform(stamp_image)
    torch.manual_seed(0)
    again = transform(stamp_image)
    assert first.shape == (3, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert not torch.equal(first, second)
    assert first.min() >= -1.0 - 1e-6 and first.max() <= 1.0 + 1e-6


def test_denormalize_inverts_eval_transform(stamp_image):
    x = eval_transform(32)(stamp_image)
    image = denormalize(x)
    assert image.shape == x.shape and 0.0 <= image.min() and image.max() <= 1.0
    plain = eval_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(stamp_image)
    assert torch.allclose(image, plain.clamp(0, 1), atol=1e-5)
    batch = denormalize(torch.stack([x, x]), HALF_MEAN_STD, HALF_MEAN_STD)
    assert batch.shape == (2, 3, 32, 32)


# --- collate ------------------------------------------------------------------------------

def test_pad_sequences():
    seqs = [torch.ones(2, 3), torch.ones(5, 3), torch.ones(1, 3)]
    padded, lengths, mask = pad_sequences(seqs, padding_value=-1)
    assert padded.shape == (3, 5, 3)
    assert lengths.tolist() == [2, 5, 1] and lengths.dtype == torch.long
    assert mask.dtype == torch.bool and mask.sum(dim=1).tolist() == [2, 5, 1]
    assert (padded[~mask] == -1).all() and (padded[mask] == 1).all()


def _sample(length, frames, label, generator):
    return {"image": torch.rand(3, 8, 8, generator=generator),
            "tokens": torch.arange(2, 2 + length),
            "audio": torch.randn(frames, 13, generator=generator),
            "label": label, "name": f"s{label}"}


def test_collate_multimodal_mixed_batch():
    g = torch.Generator().manual_seed(0)
    batch = collate_multimodal([_sample(3, 4, 1, g), _sample(5, 7, 2, g)])
    assert batch["image"].shape == (2, 3, 8, 8)
    assert batch["tokens"].shape == (2, 5)
    assert batch["tokens"][0].tolist() == [2, 3, 4, PAD, PAD]
    assert batch["tokens_lengths"].tolist() == [3, 5]
    assert batch["tokens_mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert batch["audio"].shape == (2, 7, 13)
    assert batch["audio_lengths"].tolist() == [4, 7]
    assert batch["audio_mask"].sum(dim=1).tolist() == [4, 7]
    assert (batch["audio"][0, 4:] == 0).all()
    assert batch["label"].tolist() == [1, 2] and batch["label"].dtype == torch.int64
    assert batch["name"] == ["s1", "s2"]
    assert "image_lengths" not in batch and "label_mask" not in batch


def test_collate_multimodal_pad_keys_and_floats():
    g = torch.Generator().manual_seed(0)
    batch = collate_multimodal([_sample(3, 4, 0, g)], pad_keys=["tokens"])
    assert batch["tokens"].shape == (1, 3) and batch["tokens_lengths"].tolist() == [3]
    assert "audio_lengths" not in batch
    weights = collate_multimodal([{"w": 0.5}, {"w": np.float64(2.0)}])["w"]
    assert weights.dtype == torch.float32 and weights.tolist() == [0.5, 2.0]


def test_collate_multimodal_rejects_other_dimension():
    batch = [{"audio": torch.zeros(4, 13)}, {"audio": torch.zeros(4, 20)}]
    with pytest.raises(ValueError, match="audio"):
        collate_multimodal(batch)
    with pytest.raises(ValueError, match="keys"):
        collate_multimodal([{"a": 1}, {"b": 1}])
