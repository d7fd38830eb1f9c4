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
* :func:`in_submission` runs helper code beside the answers: in the grader it runs in the
  child, where objects that cannot cross as data (a model, its parameters) live. The
  helpers build such objects, call the answers on them and return plain data (names,
  counts, flags); the test then checks that data against values it computes itself.
  Helpers run where the submission could change them, so they must return what the
  answers did, never a verdict.
"""
from __future__ import annotations

import contextlib
import secrets
import sys
import types

from .forbid import forbid, resolve

_state: dict = {"secret": None, "remote": False, "forbid": [], "session": None}


def grading_mode(on: bool, secret: int | None = None) -> None:
    """Switch between the master (off) and the grader (on, with a fresh secret)."""
    _state["remote"] = on
    _state["secret"] = (secrets.randbits(30) if secret is None else secret) if on else None
    _state["forbid"] = []
    _state["session"] = None


def set_session(session) -> None:
    """The grader's session with the child (None outside grading)."""
    _state["session"] = session


def in_submission(source: str):
    """Run ``source`` (function definitions) beside the submission's names; return an
    object whose attributes are its functions."""
    if _state["session"] is not None:
        return _state["session"].harness(source)
    names = dict(sys._getframe(1).f_globals)
    exec(compile(source, "<helpers>", "exec"), names)
    return types.SimpleNamespace(**{k: v for k, v in names.items() if callable(v)})


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
    if _state["remote"] or _state["session"] is not None:
        for name in names:  # the child resolves them again; a misspelling fails here first
            resolve(name)
        before = list(_state["forbid"])
        _state["forbid"] = before + list(names)

        def restore():
            _state["forbid"] = before
    else:
        restore = forbid(names)
    try:
        yield
    finally:
        restore()
