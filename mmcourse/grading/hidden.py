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
* :func:`assert_same` compares an answer with the value the test computed: its kind,
  shape, dtype, length and keys before any value, so that an empty tensor that
  broadcasts, or an empty sequence that a ``zip`` loop never enters, cannot pass.
"""
from __future__ import annotations

import contextlib
import math
import secrets
import sys
import types

import numpy as np
import torch

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


# --------------------------------------------------------------------------- comparing
_KINDS = {"tensor": "a tensor", "array": "a NumPy array", "bool": "a bool", "number": "a number",
          "str": "a str", "sequence": "a list or tuple", "dict": "a dict", "None": "None"}
SHOWN = 40
"""Characters of a value shown in a message (messages end up in the grades' CSV)."""


def assert_same(got, want, *, rtol: float = 1e-5, atol: float = 1e-8, exact_dtype: bool = True,
                values: bool = True, what: str = "answer") -> None:
    """Raise AssertionError unless ``got`` (what an answer returned) matches ``want`` (the
    value the test computed).

    Checked in this order, each before any value:

    * the kind: torch tensor, NumPy array, list or tuple (one kind), dict, str, number
      (int, float, complex and NumPy scalars), bool (and ``np.bool_``), None; a value of
      any other type (a set, say) must be of ``want``'s type;
    * tensors and arrays: the exact shape (no broadcasting), then the dtype (unless
      ``exact_dtype=False``, for a test that accepts several dtypes);
    * numbers: an integer where ``want`` is one, a float where it is not (unless
      ``exact_dtype=False``);
    * lists and tuples: the length, then each element, recursively;
    * dicts: the keys (in any order), then the value of each key, recursively.

    With ``values`` (the default) the values are then compared: integers, bools,
    strings and other objects exactly; floats (and complex numbers) as ``torch.isclose``
    does, ``|got − want| ≤ atol + rtol·|want|``, with NaN never equal to anything. ``values=False`` checks the structure only, for a test that
    then measures the values its own way or checks properties of them.

    The message names where the two differ, ``what`` first (``answer[1]: shape (0, 5) !=
    (3, 5)``), and never lists the values of a tensor.
    """
    _compare(got, want, what, dict(rtol=rtol, atol=atol, exact_dtype=exact_dtype,
                                    values=values))


def _kind(value) -> str:
    """The kind of ``value`` that :func:`assert_same` compares first."""
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, complex, np.number)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "sequence"
    if isinstance(value, dict):
        return "dict"
    return "None" if value is None else type(value).__name__


def _short(value) -> str:
    """``repr(value)`` on one line, cut to :data:`SHOWN` characters."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"


def _compare(got, want, where: str, opts: dict) -> None:
    """Compare ``got`` with ``want`` at ``where`` (a path such as ``answer[0]``)."""
    kind = _kind(want)
    if _kind(got) != kind:
        said = _KINDS.get(_kind(got), f"a {type(got).__name__}")
        raise AssertionError(f"{where}: {said}, expected {_KINDS.get(kind, f'a {kind}')}")
    if kind == "tensor":
        _compare_tensors(got, want, where, opts)
    elif kind == "array":
        _compare_arrays(got, want, where, opts)
    elif kind == "sequence":
        if len(got) != len(want):
            raise AssertionError(f"{where}: length {len(got)} != {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]", opts)
    elif kind == "dict":
        _compare_dicts(got, want, where, opts)
    elif kind == "number":
        _compare_numbers(got, want, where, opts)
    elif opts["values"] and not got == want:
        raise AssertionError(f"{where}: {_short(got)} != {_short(want)}")


def _compare_dicts(got: dict, want: dict, where: str, opts: dict) -> None:
    """Same keys (any order), then the same value under each."""
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing or extra:
        parts = [f"{label} {', '.join(_short(k) for k in keys[:3])}{', …' * (len(keys) > 3)}"
                 for label, keys in (("missing", missing), ("unexpected", extra)) if keys]
        raise AssertionError(f"{where}: keys differ: {', '.join(parts)}")
    for key, value in want.items():
        _compare(got[key], value, f"{where}[{_short(key)}]", opts)


def _compare_numbers(got, want, where: str, opts: dict) -> None:
    """An integer where ``want`` is one; then exactly (integers) or within tolerance."""
    integral = isinstance(want, (int, np.integer))
    if opts["exact_dtype"] and isinstance(got, (int, np.integer)) != integral:
        raise AssertionError(f"{where}: {type(got).__name__} {_short(got)}, expected "
                             f"{'an integer' if integral else 'a float'}")
    if not opts["values"]:
        return
    if integral and isinstance(got, (int, np.integer)):
        if int(got) != int(want):
            raise AssertionError(f"{where}: {int(got)} != {int(want)}")
        return
    g, w = complex(got), complex(want)
    if any(math.isnan(part) for part in (g.real, g.imag, w.real, w.imag)):
        raise AssertionError(f"{where}: {_short(got)} != {_short(want)} (NaN is never equal)")
    if g != w and not abs(g - w) <= opts["atol"] + opts["rtol"] * abs(w):
        raise AssertionError(f"{where}: {got:.6g} != {want:.6g} "
                             f"(rtol {opts['rtol']:g}, atol {opts['atol']:g})")


def _compare_tensors(got: torch.Tensor, want: torch.Tensor, where: str, opts: dict) -> None:
    """Exact shape, then dtype, then the values (exactly where neither is a float)."""
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{where}: shape {tuple(got.shape)} != {tuple(want.shape)}")
    if opts["exact_dtype"] and got.dtype != want.dtype:
        raise AssertionError(f"{where}: dtype {str(got.dtype).removeprefix('torch.')} != "
                             f"{str(want.dtype).removeprefix('torch.')}")
    if not opts["values"]:
        return
    common = torch.promote_types(got.dtype, want.dtype)
    g = got.detach().to("cpu", common)
    w = want.detach().to("cpu", common)
    if common.is_floating_point or common.is_complex:
        close = torch.isclose(g, w, opts["rtol"], opts["atol"])
    else:
        close, g, w = g == w, None, None
    if not bool(close.all()):
        raise AssertionError(_differ(close, g, w, where, opts))


def _compare_arrays(got: np.ndarray, want: np.ndarray, where: str, opts: dict) -> None:
    """As :func:`_compare_tensors`, for NumPy arrays."""
    if got.shape != want.shape:
        raise AssertionError(f"{where}: shape {got.shape} != {want.shape}")
    if opts["exact_dtype"] and got.dtype != want.dtype:
        raise AssertionError(f"{where}: dtype {got.dtype} != {want.dtype}")
    if not opts["values"]:
        return
    inexact = np.issubdtype(got.dtype, np.inexact) or np.issubdtype(want.dtype, np.inexact)
    if inexact:
        close = np.asarray(np.isclose(got, want, rtol=opts["rtol"], atol=opts["atol"]))
    else:
        close = np.asarray(got == want, dtype=bool).reshape(want.shape)
    if not close.all():
        g, w = ((torch.from_numpy(np.asarray(a, dtype=np.complex128)) for a in (got, want))
                if inexact else (None, None))
        raise AssertionError(_differ(torch.from_numpy(close), g, w, where, opts))


def _differ(close: torch.Tensor, got, want, where: str, opts: dict) -> str:
    """The message for values that are not all ``close``: how many differ and, for floats
    (``got`` and ``want`` given), the largest difference or that a NaN is among them."""
    message = f"{where}: {int((~close).sum())} of {close.numel()} values differ"
    if got is None:
        return message
    g, w = got[~close], want[~close]
    if bool(torch.isnan(g).any() | torch.isnan(w).any()):
        return message + " (NaN is never equal)"
    return (message + f"; largest difference {float((g - w).abs().max()):.3g} "
            f"(rtol {opts['rtol']:g}, atol {opts['atol']:g})")
