"""The data-only channel: values cross intact, hostile messages are refused, never run."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse.grading import channel, child, hidden


def _round_trip(value):
    encoder = channel.Encoder()
    data = json.loads(json.dumps(encoder(value)))
    tensors = [channel.decode_tensor(json.loads(json.dumps(channel.encode_tensor(t))))
               for t in encoder.tensors]
    return channel.Decoder(tensors)(data)


@pytest.mark.parametrize("value", [
    None, True, 3, -2**70, 1.5, "zèbre", [1, [2, "x"]], (1, (2,)), {3, 4}, frozenset({"a"}),
    {1: "a", 2.5: ("b",), "k": None}, Ellipsis, 1 + 2j, Path("/usr/share"), b"\x00\xff",
    slice(1, None, 2), np.float32(1.25), np.int64(7), np.bool_(True),
    np.arange(6, dtype=np.int16).reshape(2, 3), torch.Size([2, 3]), torch.float64,
], ids=repr)
def test_values_cross_with_their_types(value):
    got = _round_trip(value)
    assert type(got) is type(value)
    if isinstance(value, np.ndarray):
        assert got.dtype == value.dtype and np.array_equal(got, value)
    else:
        assert got == value


@pytest.mark.parametrize("tensor", [
    torch.tensor(1.5), torch.arange(6.0).reshape(2, 3).T, torch.zeros(0, 3, dtype=torch.float64),
    torch.tensor([True, False]), torch.tensor([1, 2], dtype=torch.int64),
    torch.tensor([1.5], dtype=torch.bfloat16), torch.tensor([1 + 1j], dtype=torch.complex64),
], ids=lambda t: f"{t.dtype}{tuple(t.shape)}")
def test_tensors_cross_with_shape_and_dtype(tensor):
    got = _round_trip(tensor)
    assert got.shape == tensor.shape and got.dtype == tensor.dtype and torch.equal(got, tensor)


def test_special_floats_cross():
    got = _round_trip([math.inf, -math.inf, math.nan])
    assert got[:2] == [math.inf, -math.inf] and math.isnan(got[2])


@pytest.mark.parametrize("data", [
    {"$unknown": 1}, {"$t": 5}, {"$np": "object", "v": 1}, {"$dtype": "nn"},
    {"$float": "1e999999"}, {"$set": [[1]]}, {},
])
def test_malformed_values_are_refused(data):
    with pytest.raises(channel.ChannelError):
        channel.Decoder([])(data)


def test_arrays_must_match_their_shape_and_dtype():
    spec = channel.encode_array(np.zeros(4))
    with pytest.raises(channel.ChannelError):
        channel.decode_array(dict(spec, shape=[5]))
    with pytest.raises(channel.ChannelError):
        channel.decode_array(dict(spec, dtype="object"))


def test_objects_are_not_sent_without_a_handle():
    with pytest.raises(TypeError):
        channel.Encoder()(object())
    with pytest.raises(TypeError):
        channel.Encoder()(lambda: 0)


def test_messages_are_framed_and_bounded():
    read, write = os.pipe()
    try:
        channel.send(write, {"a": [1, 2]})
        assert channel.receive(read) == {"a": [1, 2]}
        os.write(write, (channel.MAX_MESSAGE + 1).to_bytes(8, "big"))
        with pytest.raises(channel.ChannelError):
            channel.receive(read)
    finally:
        os.close(read)
        os.close(write)
    read, write = os.pipe()
    os.write(write, (5).to_bytes(8, "big") + b"[1,2]")
    os.close(write)
    with pytest.raises(channel.ChannelError):  # a message is an object
        channel.receive(read)
    with pytest.raises(channel.Closed):
        channel.receive(read)
    os.close(read)


def test_hidden_seed_is_the_masters_outside_grading_and_secret_inside():
    hidden.grading_mode(False)
    assert hidden.hidden_seed(11) == 11
    hidden.grading_mode(True, secret=12345)
    try:
        assert hidden.hidden_seed(11) not in (11, hidden.hidden_seed(12))
    finally:
        hidden.grading_mode(False)


def test_forbidding_in_the_master_patches_and_restores():
    import torch.nn.functional as F

    original = F.conv2d
    with hidden.forbidding("torch.nn.functional.conv2d"), \
            pytest.raises(RuntimeError, match="may not call"):
        F.conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1))
    assert F.conv2d is original


def test_a_forbidden_name_that_does_not_exist_is_an_error_in_the_master_and_the_child():
    with pytest.raises(LookupError, match="has no 'conv2dd'"):
        with hidden.forbidding("torch.nn.functional.conv2dd"):
            pass
    hidden.grading_mode(True, secret=1)
    try:
        with pytest.raises(LookupError, match="no module 'torchh'"):
            with hidden.forbidding("torchh.nn.functional.conv2d"):
                pass
        assert hidden.forbidden_now() == []
    finally:
        hidden.grading_mode(False)
    server = child._Server(-1, -1)
    server.ns["answer"] = lambda: 3
    call = {"target": {"name": "answer"}, "args": [], "id": 0}
    assert server.op_call(dict(call, forbid=["torch.nn.functional.conv2d"]))["result"] == 3
    with pytest.raises(LookupError, match="has no 'conv2dd'"):
        server.op_call(dict(call, forbid=["torch.nn.functional.conv2d", "torch.nn.functional.conv2dd"]))
    import torch.nn.functional as F
    assert F.conv2d.__name__ == "conv2d", "nothing was replaced when one name failed"


def test_a_reply_of_keys_sharing_one_hash_is_refused_before_it_is_hashed():
    collide = [k * (2**61 - 1) for k in range(channel.MAX_KEYED + 1)]  # all hash to 0
    assert len({hash(v) for v in collide[:100]}) == 1
    tic = time.monotonic()
    with pytest.raises(channel.ChannelError, match="set items and dict keys"):
        channel.Decoder([])({"$set": collide})
    # refused from the count alone: hashing 20,001 colliding keys would take minutes
    assert time.monotonic() - tic < 5
    with pytest.raises(channel.ChannelError, match="set items and dict keys"):
        channel.Decoder([])({"$tuple": [{"$set": collide[:15_000]},
                                        {"$dict": [[v, 0] for v in collide[:15_000]]}]})
    assert channel.Decoder([])({"$set": [1, 2, 2]}) == {1, 2}


def test_decoding_stops_at_the_deadline():
    late = channel.Decoder([], deadline=time.monotonic() - 1)
    with pytest.raises(channel.ChannelError, match="time limit"):
        late({"$dict": [[1, 2]]})
    assert channel.Decoder([], deadline=time.monotonic() + 60)({"$dict": [[1, 2]]}) == {1: 2}
