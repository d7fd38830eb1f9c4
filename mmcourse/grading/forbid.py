"""Forbidding library functions while a test calls an answer.

A test may forbid dotted names (``"torch.nn.functional.conv2d"``): while the answer runs,
each is replaced by a function that raises, then put back. The same code runs in the
master (:func:`mmcourse.grading.hidden.forbidding`) and in the sandboxed child
(:mod:`mmcourse.grading.child`), so a name that does not exist is an error in both: a
misspelled name would otherwise forbid nothing.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence


def resolve(dotted: str) -> tuple[object, str]:
    """``(owner, attribute)`` of a dotted name: the longest importable module prefix, then
    attributes down to the last part. Raises ``LookupError`` naming what does not exist."""
    parts = str(dotted).split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for depth, attr in enumerate(parts[cut:], start=cut):
            if not hasattr(owner, attr):
                raise LookupError(f"cannot forbid {dotted!r}: "
                                  f"{'.'.join(parts[:depth])} has no {attr!r}")
            if depth < len(parts) - 1:
                owner = getattr(owner, attr)
        return owner, parts[-1]
    raise LookupError(f"cannot forbid {dotted!r}: no module {parts[0]!r} to import")


def forbid(names: Sequence[str]) -> Callable[[], None]:
    """Replace each dotted name by a function that raises ``RuntimeError``; return the
    function that puts them back. Every name is resolved before any is replaced."""
    names = [str(n) for n in names]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in map(resolve, names)]

    def refuse(*args, **kwargs):
        raise RuntimeError(f"this answer may not call {', '.join(names)}")

    for owner, attr, _ in saved:
        setattr(owner, attr, refuse)

    def restore() -> None:
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)

    return restore


class Guards:
    """Forbidden functions guarded from before the submission's first line runs.

    Each dotted name in ``names`` is replaced once, at the start, by a guard that calls
    the original unless the name is forbidden at that moment. A reference the
    submission takes early (``_conv = F.conv2d``) is then a reference to the guard, and
    is refused like the name itself while a test forbids it. Names a test forbids that
    were not guarded from the start are replaced for that call only (:func:`forbid`).
    """

    def __init__(self, names: Sequence[str] = ()):
        self._active: set[str] = set()
        self.guarded: set[str] = set()
        for name in dict.fromkeys(str(n) for n in names):
            owner, attr = resolve(name)
            setattr(owner, attr, self._guard(name, getattr(owner, attr)))
            self.guarded.add(name)

    def _guard(self, name: str, original: Callable) -> Callable:
        active = self._active

        def guard(*args, **kwargs):
            if name in active:
                raise RuntimeError(f"this answer may not call {name}")
            return original(*args, **kwargs)

        return guard

    @contextlib.contextmanager
    def forbidding(self, names: Sequence[str]):
        """Refuse the dotted ``names`` inside the block."""
        names = [str(n) for n in names]
        restore = forbid([n for n in names if n not in self.guarded])
        added = {n for n in names if n in self.guarded} - self._active
        self._active |= added
        try:
            yield
        finally:
            self._active -= added
            restore()
