"""The grader's side of the channel: the submission seen through proxies.

A :class:`Session` starts the sandboxed child (:mod:`mmcourse.grading.sandbox`), sends it
the notebook's code cells, follows them as they run, and then answers the tests' uses of
the submission's names. A name that holds plain data comes back as a value; a function
(or a class, or any other callable) becomes a :class:`Remote`, whose calls send their
arguments to the child and bring the result back as data. Gradients cross too: a call
whose tensor arguments need gradients runs under autograd in the child, and the result
is connected to the grader's autograd graph by :class:`_RemoteCall`, whose backward pass
asks the child for the input gradients. Everything from the child is decoded as data
(:mod:`mmcourse.grading.channel`); nothing it sends is run.
"""
from __future__ import annotations

import itertools
import time

import torch

from . import channel, hidden, sandbox


class SubmissionError(Exception):
    """The submission's code raised, or its process could not answer."""


class Session:
    """One submission's child process, from its first cell to its end."""

    def __init__(self, deadline: float, memory: int = sandbox.DEFAULT_MEMORY):
        self.deadline = deadline
        self.memory = memory
        self.child = sandbox.Child(memory=memory,
                                   cpu_seconds=2 * max(1.0, deadline - time.monotonic()) + 30)
        self.current_cell: int | None = None
        self.errors: list[dict] = []
        self.output_chars = 0
        self.stderr_tail = ""
        self.ended: str | None = None
        """Why the child can no longer answer (None while it can)."""
        self._ids = itertools.count()

    # ------------------------------------------------------------------ lifecycle
    def run_cells(self, cells: list[tuple[int, str]], guard: list[str] = ()) -> bool:
        """Run the code cells, after guarding the dotted names ``guard`` that the tests
        will forbid; True when every cell ran (whether or not it raised)."""
        try:
            channel.send(self.child.requests, {"op": "run", "cells": [list(c) for c in cells],
                                               "guard": list(guard)}, self.deadline)
            while True:
                event = channel.receive(self.child.replies, self.deadline)
                kind = event.get("event")
                if kind == "cell":
                    self.current_cell = _int(event.get("index"))
                elif kind == "error":
                    self.errors.append({"index": _int(event.get("index")),
                                        "kind": str(event.get("kind", "exception"))[:20],
                                        "ename": str(event.get("ename", ""))[:100],
                                        "evalue": str(event.get("evalue", ""))[:300]})
                elif kind == "ran":
                    self.output_chars = _int(event.get("output_chars")) or 0
                    self.current_cell = None
                    return True
                else:
                    raise channel.ChannelError(f"unexpected message {str(kind)[:40]!r}")
        except (channel.ChannelError, TimeoutError, OSError, ValueError) as err:
            self._lost(err, "in cell" if self.current_cell is not None else "at start-up")
            return False

    def _lost(self, err: BaseException, where: str) -> None:
        """Record why the child stopped answering; kill it."""
        if self.ended is not None:
            return
        status = None if isinstance(err, TimeoutError) else self.child.status()
        self.stderr_tail = self.child.stderr_tail()
        self.child.close()
        if status is None and isinstance(err, TimeoutError):
            self.ended = "time"
        elif status is None:
            self.ended = f"protocol: {err}"
        elif status < 0:
            self.ended = f"signal {-status}"
        elif self.child.sandboxed and 128 < status < 128 + 65:  # bwrap reports 128 + signal
            self.ended = f"signal {status - 128}"
        else:
            self.ended = f"exit {status}"
        self.ended_where = where
        self.ended_cell = self.current_cell

    def close(self) -> None:
        if self.ended is None:
            try:
                channel.send(self.child.requests, {"op": "close"}, time.monotonic() + 2)
            except (channel.ChannelError, TimeoutError, OSError):
                pass
            self.ended = "closed"
        self.child.close()

    # ------------------------------------------------------------------ requests
    def request(self, message: dict, tensors: list | None = None, what: str = "") -> dict:
        if self.ended is not None:
            raise SubmissionError(f"the submission's process is gone ({self.describe_end()})")
        if tensors is not None:
            message["tensors"] = [dict(channel.encode_tensor(t), grad=bool(g))
                                  for t, g in tensors]
        try:
            channel.send(self.child.requests, message, self.deadline)
            reply = channel.receive(self.child.replies, self.deadline)
        except (channel.ChannelError, TimeoutError, OSError) as err:
            self._lost(err, f"while the tests used {what}")
            raise SubmissionError(self.describe_end()) from None
        if not reply.get("ok"):
            kind = str(reply.get("kind", ""))
            note = " (memory limit)" if kind == "memory" else ""
            raise SubmissionError(f"{str(reply.get('ename'))[:100]}: "
                                  f"{str(reply.get('evalue'))[:300]}{note}")
        return reply

    def describe_end(self) -> str:
        if self.ended == "time":
            return "time limit reached"
        if self.ended and self.ended.startswith("signal"):
            number = int(self.ended.split()[1])
            return f"process killed by signal {number}" + (
                " (memory limit?)" if number == 9 else "")
        if self.ended and self.ended.startswith("exit"):
            return f"process ended with {self.ended.replace('exit', 'exit code')}"
        return str(self.ended)

    def decode(self, reply: dict, data, tensor_key: str = "tensors"):
        tensors = [channel.decode_tensor(spec) for spec in reply.get(tensor_key, [])]
        return self.decoder(tensors)(data), tensors

    def decoder(self, tensors: list):
        def tag(name, payload, whole):
            if name == "$handle":
                return Remote(self, {"handle": _int(payload), "attrs": []},
                              f"<{str(whole.get('type', 'object'))[:40]}>")
            raise channel.ChannelError(f"unknown tag {name!r}")
        return channel.Decoder(tensors, on_tag=tag, deadline=self.deadline)

    def harness(self, source: str):
        """Run the tests' helper ``source`` in the child, beside the submission's names;
        return a proxy to its functions."""
        reply = self.request({"op": "harness", "source": source}, what="the tests' helpers")
        value, _ = self.decode(reply, reply.get("value"))
        if not isinstance(value, Remote):
            raise SubmissionError("the tests' helpers did not come back")
        return value

    def names(self, names: list[str]) -> dict:
        """{name: value or Remote} for the names the submission defines."""
        if not names:
            return {}
        reply = self.request({"op": "describe", "names": names}, what="its names")
        found = {}
        described = reply.get("names", {})
        for name in names:
            entry = described.get(name) if isinstance(described, dict) else None
            if not isinstance(entry, dict):
                continue
            try:
                found[name] = self._value(entry, {"name": name, "attrs": []}, name)
            except KeyError:
                continue
        return found

    def _value(self, entry: dict, ref: dict, label: str):
        kind = entry.get("kind")
        if kind == "callable":
            return Remote(self, ref, label)
        if kind == "value":
            try:
                value, _ = self.decode(entry, entry.get("value"))
            except Exception as err:
                raise SubmissionError(f"{label}: unreadable value ({err})") from None
            return value
        if kind == "error":
            return _Unreadable(label, f"{entry.get('ename')}: {entry.get('evalue')}")
        raise KeyError(label)


class _Unreadable:
    """A name whose value could not be sent; any use fails the test."""

    def __init__(self, label, why):
        self._why = f"{label} could not be sent ({why})"

    def __getattr__(self, attr):
        raise SubmissionError(self._why)

    def __repr__(self):
        return f"<unreadable: {self._why}>"


class Remote:
    """A callable of the submission, living in the child."""

    def __init__(self, session: Session, ref: dict, label: str):
        self._session, self._ref, self._label = session, ref, label

    def __repr__(self):
        return f"<submission's {self._label}>"

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        ref = dict(self._ref, attrs=[*self._ref.get("attrs", []), attr])
        label = f"{self._label}.{attr}"
        reply = self._session.request({"op": "get", "target": ref}, what=f"`{label}`")
        return self._session._value(reply, ref, label)

    def __call__(self, *args, **kwargs):
        session = self._session
        encoder = channel.Encoder(on_other=_reference)
        try:
            data_args = encoder(list(args))
            data_kwargs = encoder(kwargs)
        except TypeError as err:
            raise SubmissionError(f"cannot pass the arguments of {self._label}: {err}") from None
        tensors = encoder.tensors
        call = {"op": "call", "target": self._ref, "args": data_args, "kwargs": data_kwargs,
                "forbid": hidden.forbidden_now(), "id": next(session._ids)}
        needs = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if not needs:
            call["grad"] = False
            reply = session.request(call, [(t, False) for t in tensors], what=f"`{self._label}`")
            try:
                value, _ = session.decode(reply, reply.get("result"))
            except Exception as err:
                raise SubmissionError(f"{self._label} returned an unreadable value ({err})") from None
            return value
        box: dict = {}
        outputs = _RemoteCall.apply(session, call, box, self._label, *tensors)
        return session.decoder(list(outputs[1:]))(box["result"])


def _reference(value):
    if isinstance(value, Remote):
        return {"$ref": value._ref}
    raise TypeError(f"cannot send a {type(value).__name__} to the submission")


def _remote_call_class():
    class RemoteCall(torch.autograd.Function):
        """A call into the child, as one node of the grader's autograd graph."""

        @staticmethod
        def forward(ctx, session, call, box, label, *tensors):
            call["grad"] = True
            needs = ctx.needs_input_grad[4:]
            reply = session.request(call, list(zip(tensors, needs)), what=f"`{label}`")
            try:
                outs = [channel.decode_tensor(spec) for spec in reply.get("tensors", [])]
            except Exception as err:
                raise SubmissionError(f"{label} returned an unreadable value ({err})") from None
            differentiable = [bool(d) for d in reply.get("differentiable", [])]
            differentiable += [False] * (len(outs) - len(differentiable))
            box["result"] = reply.get("result")
            ctx.session, ctx.call_id, ctx.label = session, call["id"], label
            ctx.needs = needs
            ctx.differentiable = differentiable
            ctx.shapes = [(t.shape, t.dtype) for t in tensors]
            ctx.out_shapes = [(o.shape, o.dtype) for o, d in zip(outs, differentiable) if d]
            anchor = torch.zeros(())
            fixed = [o for o, d in zip(outs, differentiable) if not d or not o.is_floating_point()]
            ctx.mark_non_differentiable(anchor, *fixed)
            return (anchor, *outs)

        @staticmethod
        def backward(ctx, _anchor, *grads):
            chosen = [g for g, d in zip(grads, ctx.differentiable) if d]
            wanted = [torch.zeros(shape, dtype=dtype) if g is None else g
                      for g, (shape, dtype) in zip(chosen, ctx.out_shapes)]
            reply = ctx.session.request({"op": "backward", "id": ctx.call_id},
                                        [(g, False) for g in wanted],
                                        what=f"the gradient of `{ctx.label}`")
            specs = list(reply.get("grads", []))
            result = []
            for needs, (shape, dtype) in zip(ctx.needs, ctx.shapes):
                if not needs:
                    result.append(None)
                    continue
                spec = specs.pop(0) if specs else None
                if spec is None:
                    result.append(None)
                    continue
                grad = channel.decode_tensor(spec)
                if grad.shape != shape:
                    raise SubmissionError(f"{ctx.label}: a gradient of shape {tuple(grad.shape)} "
                                          f"for an input of shape {tuple(shape)}")
                result.append(grad.to(dtype))
            return (None, None, None, None, *result)

    return RemoteCall


class _LazyRemoteCall:
    _cls = None

    def apply(self, *args):
        if _LazyRemoteCall._cls is None:
            _LazyRemoteCall._cls = _remote_call_class()
        return _LazyRemoteCall._cls.apply(*args)


_RemoteCall = _LazyRemoteCall()


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
