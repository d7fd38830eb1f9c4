"""Grade each submission in a process of its own, so that its failure costs only it.

:func:`apart` runs a function in a forked copy of the grader and returns what it
returned (plain data, sent back as JSON over a pipe). Whatever happens while one
submission is graded — the grader's side runs out of memory and the kernel kills it, a
library crashes with a signal, a decoding step never ends — ends that copy only; the
run goes on with the next submission, and the instructor learns why in that row.

The copy uses one math thread (a forked process must not reuse the parent's OpenMP
worker pool), asks the kernel's out-of-memory killer to choose it before the grader,
and is killed when it runs past its deadline.
"""
from __future__ import annotations

import json
import os
import select
import signal
import time
import warnings
from collections.abc import Callable

import torch

_CHUNK = 1 << 16


class Failed(Exception):
    """The forked copy ended without a result; the message says how."""


def apart(function: Callable[[], object], seconds: float):
    """``function()`` run in a forked process, its JSON-able result returned here.

    Raises :class:`Failed` when that process is killed (by a signal or the out-of-memory
    killer), exits without a result, raises, or runs past ``seconds``.
    """
    read, write = os.pipe()
    with warnings.catch_warnings():  # the copy sets its own math threads right away
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the copy: never returns into the caller's code
        os.close(read)
        _run_in_copy(function, write)
    os.close(write)
    try:
        data, timed_out = _read_all(read, time.monotonic() + seconds)
    finally:
        os.close(read)
    if timed_out:
        _kill(pid)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        raise Failed(f"its grading ran past {seconds:.0f} s and was stopped")
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
        why = " (the system ran out of memory)" if number == signal.SIGKILL else ""
        raise Failed(f"its grading process was killed by {name}{why}")
    try:
        message = json.loads(data.decode("utf-8"))
    except ValueError:
        raise Failed(f"its grading process ended (exit code {os.WEXITSTATUS(status)}) "
                     "without a result") from None
    if "error" in message:
        raise Failed(f"grading failed: {message['error']}")
    return message["result"]


def _run_in_copy(function: Callable[[], object], write: int) -> None:
    code = 1
    try:
        torch.set_num_threads(1)
        try:
            with open("/proc/self/oom_score_adj", "w") as fh:
                fh.write("1000")
        except OSError:
            pass
        try:
            message = {"result": function()}
        except Exception as err:  # reported to the parent, which records it
            message = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
        data = json.dumps(message).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(write, view[:_CHUNK]):]
        code = 0
    finally:
        os._exit(code)


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to ``fd`` until its writer closes it; True when the deadline
    came first."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
