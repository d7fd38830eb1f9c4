"""The one disk cache for derived arrays."""
from __future__ import annotations

import numpy as np
import pytest

from mmcourse.runtime import cache


@pytest.fixture
def calls(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    return []


def test_computed_once_then_read_back(calls, tmp_path):
    def compute():
        calls.append(1)
        return {"x": np.arange(6).reshape(2, 3), "names": np.array(["a", "b"])}

    first = cache.arrays("demo", ["key", 1], compute)
    second = cache.arrays("demo", ["key", 1], compute)
    assert len(calls) == 1
    assert np.array_equal(first["x"], second["x"]) and second["names"].tolist() == ["a", "b"]
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [cache.path("demo", ["key", 1]).name]


def test_other_keys_other_entries(calls):
    cache.arrays("demo", ["a"], lambda: calls.append("a") or {"v": np.zeros(1)})
    cache.arrays("demo", ["b"], lambda: calls.append("b") or {"v": np.ones(1)})
    assert calls == ["a", "b"]
    assert cache.digest(["a", 1]) != cache.digest(["a1"]) and len(cache.digest(["a"], 8)) == 8


def test_a_failed_computation_leaves_no_entry(calls, tmp_path):
    def broken():
        raise RuntimeError("decoding failed")

    with pytest.raises(RuntimeError, match="decoding failed"):
        cache.arrays("demo", ["k"], broken)
    assert not cache.path("demo", ["k"]).exists()


def test_cache_files_cannot_carry_pickles(calls, tmp_path):
    target = cache.path("demo", ["obj"])
    np.savez(target, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        cache.arrays("demo", ["obj"], lambda: {})


def test_a_write_cut_short_leaves_neither_the_file_nor_a_fragment(tmp_path):
    target = tmp_path / "svg" / "picture.png"

    def half(tmp):
        tmp.write_bytes(b"\x89PNG half a picture")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.write_atomically(target, half)
    assert list((tmp_path / "svg").iterdir()) == []


def test_a_file_appears_under_its_name_only_when_whole(tmp_path):
    target = tmp_path / "features.npz"
    seen = []

    def write(tmp):
        assert tmp.suffix == ".npz" and tmp != target
        np.savez(tmp, x=np.arange(3))
        seen.append(target.exists())

    cache.write_atomically(target, write)
    assert seen == [False]
    with np.load(target) as npz:
        assert npz["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["features.npz"]
