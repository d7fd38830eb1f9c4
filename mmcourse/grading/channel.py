"""The data-only channel between the grader and the sandboxed submission.

Messages are JSON documents, each preceded by its length as 8 big-endian bytes. Values
cross as plain data: ``None``, booleans, numbers, strings, lists, tuples, sets, dicts
(with their keys' types), paths, NumPy scalars, and tensors and arrays as raw bytes with
a dtype and a shape (never pickle). Tensors travel in a separate list so that the grader
can connect them to autograd; anything else the submission returns stays in its process
and comes back as a handle. Decoding checks sizes, depth and dtypes, so a hostile reply
can only be a wrong answer or an error, never code run in the grader.
"""
from __future__ import annotations

import base64
import json
import math
import os
import select
import time
from pathlib import Path, PurePath

import numpy as np
import torch

MAX_MESSAGE = 16 * 2**20
"""Bytes above which a message is refused: a reply this large is no answer to an exercise,
and decoding it would cost the grader memory every other submission needs."""
MAX_KEYED = 20_000
"""Set items and dict keys one decoder builds at most: they are hashed, and keys made to
share one hash cost time quadratic in their number (150,000 of them held a grader for
ten minutes); no answer to an exercise needs more."""
MAX_DEPTH = 40
"""Nesting depth above which a value is refused."""

_DTYPES = {name: name for name in (
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128")}
_TORCH_ONLY = {"bfloat16": "float32"}


class ChannelError(Exception):
    """The other side broke the protocol, closed the channel or ran out of time."""


class Closed(ChannelError):
    """The other side closed the channel (its process ended)."""


# --------------------------------------------------------------------------- framing
def _write_all(fd: int, data: bytes, deadline: float | None) -> None:
    view = memoryview(data)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("time limit reached while sending")
            _, ready, _ = select.select([], [fd], [], left)
            if not ready:
                continue
        try:
            written = os.write(fd, view[:1 << 20])
        except BrokenPipeError as err:
            raise Closed("the other side closed the channel") from err
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left_bytes = [], size
    while left_bytes:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("time limit reached while waiting for the submission")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
        chunk = os.read(fd, min(left_bytes, 1 << 20))
        if not chunk:
            raise Closed("the other side closed the channel")
        chunks.append(chunk)
        left_bytes -= len(chunk)
    return b"".join(chunks)


def send(fd: int, message: dict, deadline: float | None = None) -> None:
    data = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ChannelError(f"message of {len(data):,} bytes is over the limit")
    _write_all(fd, len(data).to_bytes(8, "big") + data, deadline)


def receive(fd: int, deadline: float | None = None) -> dict:
    size = int.from_bytes(_read_exact(fd, 8, deadline), "big")
    if size > MAX_MESSAGE:
        raise ChannelError(f"message of {size:,} bytes is over the limit")
    try:
        message = json.loads(_read_exact(fd, size, deadline).decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise ChannelError(f"malformed message ({type(err).__name__})") from err
    if not isinstance(message, dict):
        raise ChannelError("malformed message (not an object)")
    return message


# --------------------------------------------------------------------------- values
def encode_array(array: np.ndarray, name: str | None = None) -> dict:
    if not array.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
        array = array.copy(order="C")
    return {"dtype": name or array.dtype.name, "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(spec) -> np.ndarray:
    if not isinstance(spec, dict):
        raise ChannelError("malformed array")
    name, shape, data = spec.get("dtype"), spec.get("shape"), spec.get("data")
    storage = _DTYPES.get(name) or _TORCH_ONLY.get(name)
    if storage is None or not isinstance(shape, list) or not isinstance(data, str):
        raise ChannelError(f"unsupported array {name!r}")
    if len(shape) > 32 or not all(isinstance(n, int) and 0 <= n for n in shape):
        raise ChannelError("malformed array shape")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    dtype = np.dtype(storage)
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ChannelError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def encode_tensor(tensor) -> dict:
    tensor = tensor.detach()
    if tensor.layout != torch.strided or tensor.device.type == "meta":
        raise TypeError(f"cannot send a {tensor.layout} tensor on {tensor.device}")
    tensor = tensor.cpu()
    name = str(tensor.dtype).removeprefix("torch.")
    if name in _TORCH_ONLY:
        return encode_array(tensor.float().numpy(), name)
    if name not in _DTYPES:
        raise TypeError(f"cannot send a tensor of dtype {name}")
    return encode_array(tensor.contiguous().numpy())


def decode_tensor(spec):
    array = decode_array(spec)
    tensor = torch.from_numpy(array)
    if spec["dtype"] in _TORCH_ONLY:
        tensor = tensor.to(getattr(torch, spec["dtype"]))
    return tensor


class Encoder:
    """Turns a value into JSON-ready data plus a list of tensors.

    ``on_other(value)`` is called for values that are not plain data; it returns the
    JSON to send (a handle, or a reference) or raises TypeError.
    """

    def __init__(self, on_other=None):
        self.tensors: list = []
        self.on_other = on_other

    def __call__(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise TypeError("value nested too deeply")
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if value is Ellipsis:
            return {"$ellipsis": True}
        if kind is complex:
            return {"$complex": [value.real, value.imag]}
        if kind is list:
            return [self(v, depth + 1) for v in value]
        if isinstance(value, np.generic) and value.dtype.name in _DTYPES:
            item = value.item()
            return {"$np": value.dtype.name, "v": self(item, depth + 1)}
        if isinstance(value, np.ndarray):
            if value.dtype.name not in _DTYPES:
                raise TypeError(f"cannot send an array of dtype {value.dtype}")
            return {"$array": encode_array(value)}
        if isinstance(value, torch.Tensor):
            self.tensors.append(value)
            return {"$t": len(self.tensors) - 1}
        if isinstance(value, torch.Size):
            return {"$size": list(value)}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, PurePath):
            return {"$path": str(value)}
        if isinstance(value, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, slice):
            return {"$slice": [self(value.start, depth + 1), self(value.stop, depth + 1),
                               self(value.step, depth + 1)]}
        if isinstance(value, dict):
            return {"$dict": [[self(k, depth + 1), self(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"$tuple": [self(v, depth + 1) for v in value]}
        if isinstance(value, (set, frozenset)):
            return {"$set" if isinstance(value, set) else "$frozenset":
                    [self(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [self(v, depth + 1) for v in value]
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return self(float(value), depth)
        if isinstance(value, str):
            return str(value)
        if self.on_other is not None:
            return self.on_other(value)
        raise TypeError(f"cannot send a value of type {kind.__name__}")


class Decoder:
    """Turns JSON data back into values; ``tensors`` are the message's decoded tensors.

    ``on_tag(tag, payload)`` decodes the tags this module does not know (handles,
    references) or raises ChannelError. Past ``deadline`` (``time.monotonic``), or beyond
    :data:`MAX_KEYED` set items and dict keys, decoding stops with ChannelError.
    """

    def __init__(self, tensors: list, on_tag=None, deadline: float | None = None):
        self.tensors = tensors
        self.on_tag = on_tag
        self.deadline = deadline
        self.keyed = 0

    def _reserve_keys(self, count: int) -> None:
        """Count ``count`` more hashed entries; stop past the bound or the deadline."""
        self.keyed += count
        if self.keyed > MAX_KEYED:
            raise ChannelError(f"more than {MAX_KEYED:,} set items and dict keys in one value")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ChannelError("decoding the reply ran past the time limit")

    _LEAVES = frozenset({"$t", "$float", "$ellipsis", "$complex", "$np", "$array", "$size",
                         "$dtype", "$device", "$path", "$bytes"})
    _CONTAINERS = frozenset({"$slice", "$dict", "$tuple", "$set", "$frozenset"})

    def __call__(self, data, depth: int = 0):
        if depth > MAX_DEPTH:
            raise ChannelError("value nested too deeply")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):
            return [self(v, depth + 1) for v in data]
        if not isinstance(data, dict) or len(data) == 0:
            raise ChannelError("malformed value")
        tag = next(iter(data))
        payload = data[tag]
        if tag in self._LEAVES:
            return self._leaf(tag, payload, data, depth)
        if tag in self._CONTAINERS:
            return self._container(tag, payload, depth)
        if self.on_tag is not None:
            return self.on_tag(tag, payload, data)
        raise ChannelError(f"unknown tag {tag!r}")

    def _leaf(self, tag: str, payload, data: dict, depth: int):
        """A value that holds no other encoded value (a tensor reference, a special float,
        a NumPy scalar or array, a torch size, dtype or device, a path, bytes)."""
        if tag == "$t":
            if not isinstance(payload, int) or not 0 <= payload < len(self.tensors):
                raise ChannelError("malformed tensor reference")
            return self.tensors[payload]
        if tag == "$float":
            if payload not in ("nan", "inf", "-inf"):
                raise ChannelError("malformed float")
            return float(payload)
        if tag == "$ellipsis":
            return Ellipsis
        if tag == "$complex":
            return complex(float(payload[0]), float(payload[1]))
        if tag == "$np":
            if payload not in _DTYPES:
                raise ChannelError("malformed NumPy scalar")
            return np.dtype(payload).type(self(data.get("v"), depth + 1))
        if tag == "$array":
            return decode_array(payload)
        if tag == "$size":
            return torch.Size([int(v) for v in payload])
        if tag == "$dtype":
            value = getattr(torch, str(payload), None)
            if not isinstance(value, torch.dtype):
                raise ChannelError("malformed dtype")
            return value
        if tag == "$device":
            return torch.device(str(payload))
        if tag == "$path":
            return Path(str(payload))
        return base64.b64decode(str(payload).encode("ascii"), validate=True)  # "$bytes"

    def _container(self, tag: str, payload, depth: int):
        """A slice, dict, tuple, set or frozenset of encoded values."""
        if tag == "$slice":
            return slice(*(self(v, depth + 1) for v in payload))
        if tag == "$dict":
            self._reserve_keys(len(payload))
            out = {}
            for pair in payload:
                key = self(pair[0], depth + 1)
                try:
                    out[key] = self(pair[1], depth + 1)
                except TypeError as err:  # an unhashable key
                    raise ChannelError(f"malformed dict ({err})") from err
            return out
        if tag == "$tuple":
            return tuple(self(v, depth + 1) for v in payload)
        self._reserve_keys(len(payload))
        try:  # "$set", "$frozenset"
            items = {self(v, depth + 1) for v in payload}
        except TypeError as err:
            raise ChannelError(f"malformed set ({err})") from err
        return items if tag == "$set" else frozenset(items)

