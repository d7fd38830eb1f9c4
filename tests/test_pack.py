"""The offline bundle (``python -m mmcourse pack``) and the GPU benchmark script, on CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse import pack
from mmcourse.nn import encoders
from mmcourse.runtime import weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chosen(stamps):
    """Eight stamps: the first six, one SVG-only stamp and the zebra (a named stamp)."""
    svg = next(s for s in stamps if s.is_svg)
    zebra = next(s for s in stamps if s.name.endswith("/zebra"))
    return [*stamps[:6], svg, zebra]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, chosen):
    """A small bundle: 8 stamps, 1 clip per language, 40 + 20 Fashion-MNIST images."""
    dest = tmp_path_factory.mktemp("bundle")
    manifest = pack.pack(dest, chosen, per_language=1, fashion_train=40, fashion_test=20,
                         log=lambda _: None)
    return dest, manifest


@pytest.fixture
def from_bundle(bundle, monkeypatch):
    """MMCOURSE_DATA_ROOT pointed at the bundle; the sentence encoder reloaded around it."""
    monkeypatch.setenv("MMCOURSE_DATA_ROOT", str(bundle[0]))
    encoders.sentence_encoder.cache_clear()
    yield bundle[0]
    encoders.sentence_encoder.cache_clear()


def test_quantise_restores_float32_within_half_a_step():
    weight = torch.randn(300, 256, generator=torch.Generator().manual_seed(0))
    state = {"big": weight, "small": weight[:2, :3].clone(), "steps": torch.tensor(7)}
    packed = weights.quantise(state, int8_min=1000)
    assert packed["big"].dtype == torch.int8 and packed["big@scale"].shape == (300, 1)
    assert packed["small"].dtype == torch.float16 and packed["steps"].dtype == torch.int64
    restored = weights.dequantise(packed)
    assert set(restored) == set(state)
    assert all(v.dtype == torch.float32 for k, v in restored.items() if k != "steps")
    step = packed["big@scale"].float()
    assert ((restored["big"] - weight).abs() <= step / 2 + 1e-6).all()
    assert torch.allclose(restored["small"], state["small"], rtol=1e-3)
    assert restored["steps"].item() == 7
    fp16_only = weights.dequantise(weights.quantise(state))
    assert torch.allclose(fp16_only["big"], weight, rtol=1e-3, atol=1e-4)


def test_layout_and_sizes(bundle, chosen):
    dest, manifest = bundle
    root = dest / "tuxpaint" / "stamps"
    for stamp in chosen:
        picture = root / f"{stamp.name}.webp"
        assert picture.exists() and (root / f"{stamp.name}.txt").exists()
    assert not list(root.rglob("*.png")) and not list(root.rglob("*.svg"))
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (dest / "datasets" / "fashion-mnist" / name).exists()
    assert (dest / "fsdd" / "digits.npz").exists()
    assert (dest / "weights" / weights.EFFICIENTNET_FILE).exists()
    minilm = dest / "weights" / weights.MINILM_FOLDER
    assert (minilm / weights.PACKED_WEIGHTS).exists() and (minilm / "tokenizer.json").exists()
    assert not (minilm / "model.safetensors").exists()
    assert manifest == json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["bytes"]["total"] == pack.tree_size(dest)
    assert manifest["stamps"] == 8 and manifest["svg_rasterised"] == 1
    assert manifest["fashion"] == {"train": 40, "test": 20}
    # fp16 EfficientNet (4.65 M parameters) and int8 MiniLM (22.7 M) fit in 35 MB
    assert 25e6 < manifest["bytes"]["weights"] < 35e6
    assert manifest["bytes"]["stamps"] < 8 * 60_000  # pictures, captions and clips
    # the first stamp's clip in each language, plus those of the named stamps (the zebra…)
    zebra = chosen[-1]
    for lang in pack.SPOKEN_LANGUAGES:
        having = [s.name for s in chosen if lang in s.spoken]
        named = {n for n in having if n.rsplit("/", 1)[-1] in pack.NAMED_STAMPS}
        assert manifest["clips"][lang] == len(set(having[:1]) | named)
        suffix = "" if lang == "en" else f"_{lang}"
        assert (root / f"{zebra.name}_desc{suffix}.ogg").exists() == (lang in zebra.spoken)


def test_stamps_pictures_and_clips_from_bundle(from_bundle, chosen):
    from mmcourse.data import image_array, load_image, load_spoken_captions, load_stamps
    from mmcourse.preprocessing import SAMPLE_RATE, load_audio

    stamps = load_stamps()
    assert [s.name for s in stamps] == sorted(s.name for s in chosen)
    original = {s.name: s for s in chosen}
    for stamp in stamps:
        assert stamp.image_path.suffix == ".webp" and not stamp.is_svg
        assert stamp.captions == original[stamp.name].captions
        assert set(stamp.spoken) <= set(original[stamp.name].spoken)
        picture = load_image(stamp)
        assert picture.mode == "RGB" and max(picture.size) <= 256
    assert image_array(stamps, 224).shape == (8, 224, 224, 3)
    zebra = next(s for s in stamps if s.name.endswith("/zebra"))
    import soundfile

    info = soundfile.info(str(zebra.spoken_path("fr")))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "OPUS")
    wave = load_audio(zebra.spoken_path("fr"))
    reference = load_audio(original[zebra.name].spoken_path("fr"))
    assert abs(wave.shape[1] - reference.shape[1]) < SAMPLE_RATE // 10
    spoken = load_spoken_captions(stamps, ["fr", "ru"], n_mels=32)
    assert len(spoken) == sum(("fr" in s.spoken) + ("ru" in s.spoken) for s in stamps) > 0
    assert spoken.features[0].shape[1] == 32


def test_pictures_match_the_originals(from_bundle, chosen):
    from mmcourse.data import load_image, load_stamps
    from mmcourse.preprocessing import letterbox

    with pack.data_root(None):
        before = [np.asarray(letterbox(load_image(s), 224), dtype=np.float32) for s in chosen]
    after = {s.name: np.asarray(letterbox(load_image(s), 224), dtype=np.float32)
             for s in load_stamps()}
    for stamp, pixels in zip(chosen, before):
        assert np.abs(after[stamp.name] - pixels).mean() < 6, stamp.name  # of 255


def test_fashion_and_digits_from_bundle(from_bundle):
    from mmcourse.data import FashionMNIST, load_fashion, load_spoken_digits

    images, labels = load_fashion("train")
    assert images.shape == (40, 28, 28) and labels.shape == (40,)
    with pack.data_root(None):
        full_images, full_labels = load_fashion("train")
    assert (images == full_images[:40]).all() and (labels == full_labels[:40]).all()
    assert len(FashionMNIST("test")) == 20
    digits = load_spoken_digits()
    assert len(digits) == 3000 and digits.mfcc[0].dtype == np.float32


@torch.no_grad()
def test_efficientnet_from_bundle_is_float32_and_near_identical(from_bundle):
    assert encoders._weights_path().parent == from_bundle / "weights"
    bundled = encoders.efficientnet_lite0(pretrained=True, num_classes=1000).eval()
    assert all(p.dtype == torch.float32 for p in bundled.state_dict().values()
               if p.is_floating_point())
    with pack.data_root(None):
        assert encoders._weights_path().suffix == ".pth"
        original = encoders.efficientnet_lite0(pretrained=True, num_classes=1000).eval()
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a, b = original(x), bundled(x)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


def test_sentence_encoder_from_bundle_is_near_identical(from_bundle, chosen):
    captions = [s.caption for s in chosen]
    model = encoders.sentence_encoder()
    from mmcourse.runtime import config

    assert str(config.cache_dir("weights")) in model.tokenizer.name_or_path  # float32 copy
    assert next(model.parameters()).dtype == torch.float32
    bundled = model.encode(captions, convert_to_tensor=True)
    encoders.sentence_encoder.cache_clear()
    with pack.data_root(None):
        original = encoders.sentence_encoder().encode(captions, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(original, bundled).min() > 0.99


def test_compare_measures_the_bundle_against_the_installed_data(bundle):
    result = pack.compare(bundle[0], n_stamps=4, n_captions=4)
    assert (result["stamps"], result["captions"], result["clips"]) == (4, 4, 4)
    assert 0.0 <= result["efficientnet_top1_agreement"] <= 1.0
    assert 0.8 < result["efficientnet_feature_cosine_min"] <= result[
        "efficientnet_feature_cosine_mean"] <= 1.0 + 1e-6
    assert 0.99 < result["minilm_cosine_min"] <= 1.0 + 1e-6
    assert 0.5 < result["spoken_logmel_correlation_min"] <= 1.0 + 1e-6


def test_missing_bundle_weights_fall_back_to_the_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA_ROOT", str(tmp_path))
    assert weights.bundled(weights.EFFICIENTNET_FILE) is None
    assert encoders._weights_path() == encoders.shipped_weights_path()


def test_cli_pack_without_weights(tmp_path, capsys):
    from mmcourse.__main__ import main

    assert main(["pack", str(tmp_path / "b"), "--stamps", "2", "--per-language", "1",
                 "--fashion-train", "5", "--fashion-test", "all", "--no-weights",
                 "--languages", "fr"]) == 0
    out = capsys.readouterr().out
    assert "bundle:" in out and "MiB" in out
    manifest = json.loads((tmp_path / "b" / "MANIFEST.json").read_text())
    assert manifest["fashion"] == {"train": 5, "test": 10_000}
    assert set(manifest["clips"]) == {"fr"} and not (tmp_path / "b" / "weights").exists()


def _gpu_sh(*args, env=None):
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_sh_refuses_to_run_without_cuda(bundle, tmp_path):
    result = _gpu_sh("--bundle", str(bundle[0]), "--wheels", "none", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "--cpu" in result.stderr
    assert not (tmp_path / "times.tsv").exists()


def test_gpu_sh_needs_a_bundle(tmp_path):
    result = _gpu_sh("--cpu", "--bundle", str(tmp_path / "nothing"), "--wheels", "none")
    assert result.returncode == 2 and "mmcourse pack" in result.stderr


def test_gpu_sh_runs_a_notebook_on_the_cpu(bundle, tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "import os\nfrom mmcourse import data\nfrom mmcourse.runtime import config\n"
        "assert config.data_root() == __import__('pathlib').Path(os.environ['BUNDLE'])\n"
        "assert not config.fast() and len(data.load_stamps()) == 8")]
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    failing = nbformat.v4.new_notebook(metadata=notebook.metadata)
    failing.cells = [nbformat.v4.new_code_cell("raise RuntimeError('broken chapter')"),
                     nbformat.v4.new_code_cell("print('the cells after an error still run')")]
    nbformat.write(failing, tmp_path / "broken.ipynb")
    out = tmp_path / "results"
    result = _gpu_sh("--cpu", "--bundle", str(bundle[0]), "--wheels", "none", "--out",
                     str(out), "--skip-bench", "--skip-finetune", "--notebooks",
                     str(tmp_path / "tiny.ipynb"),
                     str(tmp_path / "broken.ipynb"), env={"BUNDLE": str(bundle[0])})
    assert result.returncode == 1, result.stderr  # the broken notebook fails the run
    rows = [line.split("\t") for line in (out / "times.tsv").read_text().splitlines()]
    assert rows[0] == ["item", "seconds", "status"]
    assert [r[0] for r in rows[1:]] == ["tiny", "broken"]
    assert rows[1][2] == "ok" and float(rows[1][1]) > 0
    assert rows[2][2] == "ran, 1 cell(s) raised; first RuntimeError: broken chapter"
    table = (out / "table.txt").read_text()
    assert "tiny" in table and "not measured" in table and table in result.stdout
    assert "bundle: 8 stamps, Fashion-MNIST 40 train / 20 test images" in table
    assert "cell 0 raised RuntimeError: broken chapter" in (out / "run.log").read_text()
    assert json.loads((out / "manifest.json").read_text())["stamps"] == 8


def test_cpu_times_file_covers_every_chapter():
    rows = (REPO / "benchmarks" / "cpu-times.tsv").read_text().splitlines()
    items = {line.split("\t")[0] for line in rows[1:]}
    chapters = {p.stem for p in (REPO / "notebooks").glob("[0-9]*.ipynb")}
    assert chapters | {"bench"} <= items


def test_spoken_languages_cover_chapter_03():
    from mmcourse.experiments import spoken_language

    languages = spoken_language.Settings().languages
    assert {"en", *languages} <= set(pack.SPOKEN_LANGUAGES), \
        "the bundle must hold every language chapter 03 trains on"


def test_named_stamps_cover_the_stamps_the_chapters_pick_by_name(stamps):
    import re

    basenames = {s.name.rsplit("/", 1)[-1] for s in stamps}
    sources = [*(REPO / "notebooks").glob("[0-9]*.py"), *(REPO / "solutions").glob("[0-9]*.py")]
    named = {m for path in sources for m in re.findall(r'"/([\w-]+)"', path.read_text())
             if m in basenames}
    assert named, "the chapters pick some stamps by name"
    assert named <= set(pack.NAMED_STAMPS), \
        f"chapters pick {sorted(named - set(pack.NAMED_STAMPS))} by name: add to NAMED_STAMPS"
