"""Chapter 06's data, batches, recipe, command line, predictions and multi-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse.__main__ import main
from mmcourse.training.batches import (DeviceBatches, TensorSet, balanced_weights, class_weights,
                              crop_flip_normalize)
from mmcourse.data import protocol_folds, protocol_stamps
from mmcourse.experiments import finetune as recipe

TINY = dict(limit=100, epochs=1, size=64, batch_size=8, folds=1)


def test_protocol_is_738_png_stamps_of_10_categories_in_5_unshuffled_folds(stamps):
    chosen = protocol_stamps(stamps)
    assert len(chosen) == 738
    assert not any(s.is_svg for s in chosen)
    assert [str(s.image_path) for s in chosen] == sorted(str(s.image_path) for s in chosen)
    categories = sorted({s.category for s in chosen})
    assert len(categories) == 10 and "symbols" in categories
    labels = [categories.index(s.category) for s in chosen]
    folds = protocol_folds(labels)
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(738))
    for train, test in folds:
        assert not set(train) & set(test)
    assert recipe.audio_language(chosen) == "fr"


def test_eval_crop_is_the_centre_and_training_crops_flip_and_move():
    images = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).reshape(2, 3, 10, 10) % 256
    images = images.to(torch.uint8)
    centre = crop_flip_normalize(images, 6, train=False, mean=0.0, std=1.0)
    assert torch.allclose(centre * 255, images[:, :, 2:8, 2:8].float())
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        crop = crop_flip_normalize(images[:1], 6, train=True, mean=0.0, std=1.0)[0] * 255
        for oy in range(5):
            for ox in range(5):
                window = images[0, :, oy:oy + 6, ox:ox + 6].float()
                if torch.allclose(crop, window):
                    seen.add((oy, ox, "plain"))
                if torch.allclose(crop, window.flip(-1)):
                    seen.add((oy, ox, "flipped"))
    assert len(seen) > 5 and {kind for *_, kind in seen} == {"plain", "flipped"}
    with pytest.raises(ValueError, match="larger"):
        crop_flip_normalize(images, 12, train=False)


def _set(n=20):
    return TensorSet({"image": torch.zeros(n, 3, 8, 8, dtype=torch.uint8),
                      "tokens": torch.arange(n)[:, None].repeat(1, 40),
                      "tokens_lengths": torch.arange(n) % 5 + 1,
                      "label": torch.arange(n) % 4})


def test_process_shares_of_a_global_batch_add_up_to_it():
    data = _set()
    torch.manual_seed(3)
    whole = list(DeviceBatches(data, torch.arange(20), 8, 8, shuffle=True))
    shares = []
    for rank in range(2):  # every process draws the same order from the same seed
        torch.manual_seed(3)
        shares.append(list(DeviceBatches(data, torch.arange(20), 8, 8, shuffle=True,
                                         rank=rank, world=2)))
    assert len(whole) == 3 and len(shares[0]) == 2  # the incomplete batch is dropped
    for b, (a, c) in enumerate(zip(*shares)):
        joined = torch.stack([a["label"], c["label"]], 1).flatten()
        assert torch.equal(joined, whole[b]["label"])
    with pytest.raises(ValueError, match="multiple"):
        DeviceBatches(data, torch.arange(20), 7, 8, world=2)


def test_padded_sequences_are_cut_to_a_few_lengths():
    batch = next(iter(DeviceBatches(_set(), torch.arange(6), 6, 8)))
    assert batch["tokens"].shape == (6, 16)  # longest 5, rounded up to 16


def test_balanced_sampler_and_class_weights_even_out_the_classes():
    labels = torch.tensor([0] * 90 + [1] * 10)
    w = class_weights(labels, 2)
    assert torch.allclose(w, torch.tensor([100 / 180, 100 / 20]))
    assert torch.allclose((w[labels]).sum() / 2, torch.tensor(50.0))
    data = TensorSet({"image": torch.zeros(100, 3, 4, 4, dtype=torch.uint8), "label": labels})
    torch.manual_seed(0)
    drawn = torch.cat([b["label"] for _ in range(20) for b in DeviceBatches(
        data, torch.arange(100), 50, 4, sample_weights=balanced_weights(labels))])
    assert 0.4 < drawn.float().mean() < 0.6  # about half from the class of 10 %


def test_rows_are_read_and_bad_ones_explained():
    assert recipe.parse_row("probe/image+text") == ("probe", ("image", "text"), "none")
    assert recipe.parse_row("full/all/weighted") == ("full", recipe.MODALITIES, "weighted")
    for bad in ("full/video", "full/all/louder", "probe/audio"):
        with pytest.raises(ValueError):
            recipe.parse_row(bad)


def test_recipe_helpers_feed_the_model_on_its_device(feeds_model_device):
    s = recipe.settings(**TINY)
    data = recipe.stamp_data(s, torch.device("cpu"))
    net = recipe.network(s, len(data.categories), recipe.MODALITIES, "full", pretrained=False)
    feeds_model_device(recipe.evaluate_fold, net, data, data.folds[0][1], s)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    assert main(["finetune", "--limit", "100", "--epochs", "1", "--size", "64",
                 "--batch-size", "8", "--out", str(out)]) == 0
    return out


def test_finetune_command_writes_metrics_weights_and_figures(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["modalities"] == ["image", "text", "audio"] and metrics["size"] == 64
    assert metrics["train_stamps"] + metrics["test_stamps"] == 100
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["history"]["train_loss"]) == 1
    assert np.asarray(metrics["confusion"]).sum() == metrics["test_stamps"]
    for name in ("model.pt", "learning_curve.png", "confusion.png"):
        assert (tiny_run / name).stat().st_size > 1000


def test_predict_reads_png_jpeg_and_svg(tiny_run, stamps, tmp_path, capsys):
    from PIL import Image

    png = next(s for s in stamps if not s.is_svg)
    svg = next(s for s in stamps if s.is_svg)
    jpeg = tmp_path / "picture.jpg"
    Image.open(png.image_path).convert("RGB").save(jpeg)
    for path in (png.image_path, jpeg, svg.image_path):
        capsys.readouterr()
        assert main(["predict", str(tiny_run / "model.pt"), str(path), "--caption",
                     png.caption, "--audio", str(png.spoken_path("fr"))]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 3
        shares = [float(line.split()[-1].rstrip("%")) for line in lines]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.1


def test_predict_explains_bad_input(tiny_run, stamps, tmp_path, capsys):
    model = str(tiny_run / "model.pt")
    png = str(next(s for s in stamps if not s.is_svg).image_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    cases = [([model, str(broken), "--caption", "A cat."], "cannot read"),
             ([model, png], "caption"),
             ([model, png, "--caption", "A cat.", "--audio", str(broken)], "cannot read"),
             ([str(tmp_path / "none.pt"), png], "does not exist")]
    state = torch.load(model, weights_only=True)
    state["version"] = 0
    torch.save(state, tmp_path / "old.pt")
    cases.append(([str(tmp_path / "old.pt"), png, "--caption", "A cat."], "format version"))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    cases.append(([str(tmp_path / "other.pt"), png], "not a fine-tuned model"))
    for argv, message in cases:
        capsys.readouterr()
        assert main(["predict", *argv]) == 2
        assert message in capsys.readouterr().err


def test_predict_without_the_clip_marks_audio_absent(tiny_run, stamps):
    from mmcourse.inference import load_finetuned, prepare_inputs

    _, record = load_finetuned(tiny_run / "model.pt")
    stamp = next(s for s in stamps if not s.is_svg)
    batch = prepare_inputs(record, stamp.image_path, stamp.caption)
    assert batch["image"].shape == (1, 3, 64, 64) and not batch["audio_present"].item()


def _finetune_command(out: Path, processes: int) -> list[str]:
    args = ["-m", "mmcourse", "finetune", "--strategy", "lora", "--modalities", "text",
            "--limit", "100", "--epochs", "2", "--batch-size", "8", "--dropout", "0",
            "--out", str(out)]
    if processes == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *args]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMCOURSE_CACHE": str(tmp_path / "cache")}
    for processes in (1, 2):
        done = subprocess.run(_finetune_command(tmp_path / str(processes), processes), env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / p / "metrics.json").read_text()) for p in ("1", "2"))
    assert two["processes"] == 2 and one["processes"] == 1
    assert np.allclose(one["test_probabilities"], two["test_probabilities"], atol=1e-5)
    a = torch.load(tmp_path / "1" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "2" / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_pictures_go_channels_last_on_a_cuda_gpu_only():
    s = recipe.settings()
    assert recipe.channels_last(s, torch.device("cuda")) is True
    assert recipe.channels_last(s, torch.device("cpu")) is False
    assert recipe.channels_last(recipe.settings(channels_last=False), torch.device("cuda")) is False


def test_settings_name_no_device_and_a_run_fixes_the_picture_size(monkeypatch):
    monkeypatch.setenv("MMCOURSE_FAST", "0")
    monkeypatch.setattr(recipe, "try_gpu", lambda: pytest.fail("settings asked for a device"))
    s = recipe.settings()
    assert s.size is None and s == recipe.Settings()
    assert recipe.for_device(s, torch.device("cpu")).size == recipe.CPU_SIZE
    assert recipe.for_device(s, torch.device("cuda")).size == recipe.GPU_SIZE
    assert recipe.for_device(recipe.settings(size=128), torch.device("cuda")).size == 128
    with pytest.raises(ValueError, match="for_device"):
        recipe.stamp_data(s, torch.device("cpu"))
    monkeypatch.setenv("MMCOURSE_FAST", "1")
    assert recipe.for_device(recipe.settings(), torch.device("cuda")).size == recipe.CPU_SIZE
