"""The submission's side of grading: runs inside the sandbox, never in the grader.

``python -m mmcourse.grading.child`` reads requests from its standard input and answers
on its standard output (see :mod:`mmcourse.grading.channel`); before the first cell runs
both are moved to private descriptors, so the submission's prints and reads touch
``/dev/null``. The first request carries the notebook's code cells and the functions the
tests will forbid, which are guarded before the first cell runs
(:class:`~mmcourse.grading.forbid.Guards`); the cells run one by one in one namespace,
as a kernel would, each reported as it starts and when it raises. Then
the grader asks for the values of names and calls the submission's functions with the
tests' inputs; each reply is data only. Nothing here decides a score: the grader does,
with the tests and reference values that never enter this process.
"""
from __future__ import annotations

import ast
import builtins
import io
import os
import posix
import sys
import traceback

import torch

from . import channel
from .forbid import Guards
from .static import python_source

_MEMORY_WORDS = ("can't allocate memory", "cannot allocate memory", "not enough memory",
                 "DefaultCPUAllocator", "out of memory")


class _ExitCalled(SystemExit):
    """Raised in place of ``os._exit`` so that a cell cannot end the process quietly."""


class _Output(io.TextIOBase):
    """Counts what the submission prints and keeps none of it."""

    def __init__(self):
        self.chars = 0

    def writable(self):
        return True

    def write(self, text):
        self.chars += len(text)
        return len(text)


def _kind(err: BaseException) -> str:
    if isinstance(err, _ExitCalled):
        return "os_exit"
    if isinstance(err, SystemExit):
        return "exit"
    if isinstance(err, MemoryError) or any(w in str(err) for w in _MEMORY_WORDS):
        return "memory"
    if isinstance(err, ImportError):
        return "import"
    if isinstance(err, SyntaxError):
        return "syntax"
    return "exception"


def _run_cell(source: str, index: int, ns: dict) -> None:
    tree = ast.parse(python_source(source), filename=f"<cell {index}>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, f"<cell {index}>", "exec"), ns)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), f"<cell {index}>", "eval"), ns)
        if value is not None:
            print(repr(value))


class _Server:
    def __init__(self, requests: int, replies: int):
        self.requests, self.replies = requests, replies
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.handles: list = []
        self.graphs: dict = {}
        self.guards = Guards()

    # ------------------------------------------------------------------ helpers
    def send(self, message: dict) -> None:
        channel.send(self.replies, message)

    def encode(self, value):
        def handle(obj):
            self.handles.append(obj)
            return {"$handle": len(self.handles) - 1, "type": type(obj).__name__,
                    "callable": callable(obj)}

        encoder = channel.Encoder(on_other=handle)
        data = encoder(value)
        return data, encoder.tensors

    def decode(self, data, tensors):
        def tag(name, payload, whole):
            if name == "$ref":
                return self.resolve(payload)
            raise channel.ChannelError(f"unknown tag {name}")

        return channel.Decoder(tensors, on_tag=tag)(data)

    def resolve(self, ref: dict):
        if "handle" in ref:
            obj = self.handles[int(ref["handle"])]
        else:
            name = str(ref["name"])
            if name not in self.ns:
                raise NameError(f"name {name!r} is not defined")
            obj = self.ns[name]
        for attr in ref.get("attrs", []):
            obj = getattr(obj, str(attr))
        return obj

    def tensors_out(self, tensors: list) -> list:
        return [dict(channel.encode_tensor(t), grad=bool(t.requires_grad)) for t in tensors]

    def tensors_in(self, specs: list) -> list:
        out = []
        for spec in specs:
            tensor = channel.decode_tensor(spec)
            if spec.get("grad") and (tensor.is_floating_point() or tensor.is_complex()):
                tensor.requires_grad_(True)
            out.append(tensor)
        return out

    def describe(self, value) -> dict:
        if callable(value) and not _is_data(value):
            return {"kind": "callable", "type": type(value).__name__}
        data, tensors = self.encode(value)
        return {"kind": "value", "value": data, "tensors": self.tensors_out(tensors)}

    # ------------------------------------------------------------------ requests
    def run(self, cells: list) -> None:
        out = _Output()
        sys.stdout = sys.stderr = out
        for index, source in cells:
            self.send({"event": "cell", "index": index})
            try:
                _run_cell(source, index, self.ns)
            except BaseException as err:  # noqa: B036 - every failure is reported
                self.send({"event": "error", "index": index, "kind": _kind(err),
                           "ename": type(err).__name__, "evalue": _short(err)})
        self.send({"event": "ran", "output_chars": out.chars})

    def serve(self) -> None:
        while True:
            try:
                request = channel.receive(self.requests)
            except channel.Closed:
                return
            op = request.get("op")
            try:
                if op == "close":
                    return
                reply = getattr(self, f"op_{op}")(request)
                reply["ok"] = True
            except BaseException as err:  # noqa: B036
                reply = {"ok": False, "ename": type(err).__name__, "evalue": _short(err),
                         "kind": _kind(err)}
            try:
                self.send(reply)
            except (TypeError, ValueError) as err:
                self.send({"ok": False, "ename": type(err).__name__, "evalue": _short(err),
                           "kind": "exception"})

    def op_describe(self, request: dict) -> dict:
        names = {}
        for name in request["names"]:
            if name not in self.ns:
                names[name] = {"kind": "missing"}
                continue
            try:
                names[name] = self.describe(self.ns[name])
            except BaseException as err:  # noqa: B036
                names[name] = {"kind": "error", "ename": type(err).__name__, "evalue": _short(err)}
        return {"names": names}

    def op_harness(self, request: dict) -> dict:
        """Run the grader's helper code (building models, reading them back by name)
        beside the submission's names; return a handle to the helpers."""
        helpers = dict(self.ns)
        exec(compile(str(request["source"]), "<grader's helpers>", "exec"), helpers)
        return {"value": self.encode(_Helpers(helpers))[0]}

    def op_get(self, request: dict) -> dict:
        return self.describe(self.resolve(request["target"]))

    def op_call(self, request: dict) -> dict:
        inputs = self.tensors_in(request.get("tensors", []))
        args = self.decode(request.get("args", []), inputs)
        kwargs = self.decode(request.get("kwargs", {"$dict": []}), inputs)
        target = self.resolve(request["target"])
        grad = bool(request.get("grad"))
        with self.guards.forbidding(request.get("forbid", [])), torch.set_grad_enabled(grad):
            result = target(*args, **kwargs)
        data, tensors = self.encode(result)
        differentiable = [bool(grad and t.requires_grad) for t in tensors]
        if grad and any(differentiable):
            self.graphs[request["id"]] = ([t for t in inputs if t.requires_grad],
                                          [t for t, d in zip(tensors, differentiable) if d])
        return {"result": data, "tensors": self.tensors_out(tensors),
                "differentiable": differentiable}

    def op_backward(self, request: dict) -> dict:
        leaves, outputs = self.graphs[request["id"]]
        grads = self.tensors_in(request.get("tensors", []))
        if len(grads) != len(outputs):
            raise ValueError("one gradient per differentiable output expected")
        result = torch.autograd.grad(outputs, leaves, [g.to(o.dtype) for o, g in zip(outputs, grads)],
                                     allow_unused=True, retain_graph=True)
        return {"grads": [None if g is None else self.tensors_out([g])[0] for g in result]}


class _Helpers:
    """The grader's helper functions, by attribute."""

    def __init__(self, names: dict):
        self._names = names

    def __getattr__(self, name):
        try:
            return self._names[name]
        except KeyError:
            raise AttributeError(name) from None


def _is_data(value) -> bool:
    return isinstance(value, torch.Tensor)


def _short(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, SystemExit):
        text = f"exit code {err.code}"
    return text.splitlines()[0][:300] if text else ""


def main() -> int:
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    real_exit = os._exit

    def fake_exit(code=0):
        raise _ExitCalled(code)

    os._exit = fake_exit
    posix._exit = fake_exit
    server = _Server(requests, replies)
    try:
        first = channel.receive(requests)
        server.guards = Guards(first.get("guard", []))  # before any line of the submission
        os.dup2(devnull, 2)  # from here on, the submission's errors are reported, not printed
        server.run(first["cells"])
        server.serve()
    except channel.Closed:
        pass
    except BaseException:  # noqa: B036 - report, then end
        try:
            server.send({"event": "crash", "detail": traceback.format_exc()[-2000:]})
        except BaseException:  # noqa: B036
            pass
    real_exit(0)


if __name__ == "__main__":
    main()
