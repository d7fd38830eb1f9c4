"""The one disk cache for derived arrays: computed once, then read back.

Derived data that is slow to make — stamp pictures decoded and letterboxed, log-mel
features of thousands of clips, frozen pretrained features — is stored under
``MMCOURSE_CACHE/<kind>/`` as an ``.npz`` file named by a digest of what it was made
from. :func:`arrays` returns the cached arrays when the file exists and otherwise
computes, saves and returns them. Every cache file and checkpoint is written by
:func:`write_atomically`, so processes sharing a cache never read half a file. Files are read with ``allow_pickle=False``, so a cache
file can hold only plain arrays.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import config


def digest(parts: Iterable, length: int = 16) -> str:
    """A short hex digest (``length`` characters) of the string forms of ``parts``."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def path(kind: str, key_parts: Iterable, suffix: str = ".npz") -> Path:
    """Where the cache entry of ``kind`` made from ``key_parts`` lives.

    With ``MMCOURSE_CACHE_SHARED`` set (grading does, for the sandboxed submission), an
    entry that exists in that read-only cache is read from there; new entries go to
    ``MMCOURSE_CACHE``.
    """
    name = f"{digest(key_parts)}{suffix}"
    shared = os.environ.get("MMCOURSE_CACHE_SHARED")
    if shared:
        candidate = Path(shared) / kind / name
        if candidate.is_file():
            return candidate
    return config.cache_dir(kind) / name


def arrays(kind: str, key_parts: Iterable, compute: Callable[[], dict]) -> dict:
    """The arrays {name: ndarray} of the cache entry ``kind``/``key_parts``.

    On a miss, ``compute()`` makes them; they are written to a temporary file that is
    renamed into place, so an interrupted run never leaves a half-written entry.
    """
    target = path(kind, key_parts)
    if target.exists():
        with np.load(target, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    result = {name: np.asarray(value) for name, value in compute().items()}
    write_atomically(target, lambda tmp: np.savez(tmp, **result))
    return result


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then rename it to
    ``target``: a reader — another process sharing the cache, or a later run after an
    interruption — sees the whole file or none. The temporary name keeps ``target``'s
    suffix, so writers that pick a format by suffix (PIL, ``np.savez``) still do."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        write(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
