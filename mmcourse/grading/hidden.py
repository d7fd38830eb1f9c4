"""Helpers for the hidden tests in the solved masters (``# HIDDEN`` cells).

The same test code runs in two places: in the master notebook, against the master's own
answers (so that ``make test`` checks that the solutions pass), and in the grader, where
the submission's names are proxies to the sandboxed child (:mod:`mmcourse.grading.remote`).

* :func:`hidden_seed` gives a test's seed: the number written in the test inside the
  master, and a number derived from a secret drawn once per grading run in the grader,
  so that a submission cannot learn the hidden inputs in advance.
* :func:`forbidding` forbids library functions while the test calls an answer: in the
  master it replaces them here; in the grader it asks the child to replace them for the
  calls made inside the ``with`` block.
"""
from __future__ import annotations

import contextlib
import importlib
import secrets

_state: dict = {"secret": None, "remote": False, "forbid": []}


def grading_mode(on: bool, secret: int | None = None) -> None:
    """Switch between the master (off) and the grader (on, with a fresh secret)."""
    _state["remote"] = on
    _state["secret"] = (secrets.randbits(30) if secret is None else secret) if on else None
    _state["forbid"] = []


def hidden_seed(seed: int) -> int:
    """``seed`` in the master; a secret seed derived from it while grading."""
    if _state["secret"] is None:
        return seed
    return (_state["secret"] * 1_000_003 + seed * 7_919) % (2**31 - 1)


def forbidden_now() -> list[str]:
    """Dotted names forbidden for the calls the grader makes now."""
    return list(_state["forbid"])


@contextlib.contextmanager
def forbidding(*names: str):
    """Make the dotted ``names`` (``"torch.nn.functional.conv2d"``) raise while the
    answers are called inside the block."""
    if _state["remote"]:
        before = list(_state["forbid"])
        _state["forbid"] = before + list(names)
        try:
            yield
        finally:
            _state["forbid"] = before
        return
    saved = []
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        owner = None
        parts = module.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                owner = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for sub in parts[cut:]:
                owner = getattr(owner, sub)
            break
        saved.append((owner, attr, getattr(owner, attr)))

    def refuse(*args, **kwargs):
        raise RuntimeError(f"this answer may not call {', '.join(names)}")

    for owner, attr, _ in saved:
        setattr(owner, attr, refuse)
    try:
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
