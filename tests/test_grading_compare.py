"""assert_same, the hidden tests' comparison: kind, shape, dtype, length and keys before
any value, so that an empty or broadcastable answer cannot pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.grading.hidden import assert_same


def _fails(got, want, **options) -> str:
    """The message assert_same raises for ``got`` against ``want``."""
    with pytest.raises(AssertionError) as caught:
        assert_same(got, want, **options)
    return str(caught.value)


def test_an_empty_tensor_does_not_match_a_non_empty_one():
    assert torch.allclose(torch.empty(0, 3, 5), torch.ones(3, 5))  # the attack: it broadcasts
    assert _fails(torch.empty(0, 3, 5), torch.ones(3, 5)) == "answer: shape (0, 3, 5) != (3, 5)"
    assert _fails(torch.empty(0, 5), torch.ones(3, 5)) == "answer: shape (0, 5) != (3, 5)"


def test_an_empty_tuple_does_not_match_a_list():
    assert _fails((), [torch.ones(2), torch.zeros(2)]) == "answer: length 0 != 2"
    assert _fails([], (1, 2), what="pad_batch(...)") == "pad_batch(...): length 0 != 2"


def test_a_broadcastable_shape_fails():
    assert _fails(torch.ones(1, 3), torch.ones(4, 3)) == "answer: shape (1, 3) != (4, 3)"
    assert _fails(torch.ones(3), torch.ones(1, 3)) == "answer: shape (3,) != (1, 3)"
    assert _fails(np.ones((1, 3)), np.ones((4, 3))) == "answer: shape (1, 3) != (4, 3)"


def test_a_wrong_dtype_fails_unless_several_are_accepted():
    assert _fails(torch.ones(3, dtype=torch.float64), torch.ones(3)) == \
        "answer: dtype float64 != float32"
    assert _fails(torch.tensor([1, 2]), torch.tensor([1.0, 2.0])) == "answer: dtype int64 != float32"
    assert _fails(np.zeros(2, dtype=np.int32), np.zeros(2)) == "answer: dtype int32 != float64"
    assert_same(torch.ones(3, dtype=torch.float64), torch.ones(3), exact_dtype=False)
    assert _fails(2.0, 2) == "answer: float 2.0, expected an integer"
    assert_same(2.0, 2, exact_dtype=False)


def test_another_kind_fails_before_any_value():
    assert _fails([1.0, 2.0], torch.tensor([1.0, 2.0])) == "answer: a list or tuple, expected a tensor"
    assert _fails(torch.tensor(1.0), 1.0) == "answer: a tensor, expected a number"
    assert _fails(None, np.zeros(2)) == "answer: None, expected a NumPy array"
    assert _fails(1, True) == "answer: a number, expected a bool"
    assert _fails("1", 1) == "answer: a str, expected a number"


def test_equal_values_pass():
    assert_same(torch.arange(6).reshape(2, 3), torch.arange(6).reshape(2, 3))
    assert_same(torch.tensor([True, False]), torch.tensor([True, False]))
    assert_same(np.linspace(0, 1, 5), np.linspace(0, 1, 5))
    assert_same([1, "a", None, (2.5, True)], (1, "a", None, [2.5, True]))
    assert_same({"a": torch.zeros(2), "b": 3}, {"b": 3, "a": torch.zeros(2)})
    assert_same(np.int64(3), 3)
    assert_same(np.float32(0.5), 0.5)
    assert_same(torch.tensor([float("inf")]), torch.tensor([float("inf")]))


def test_integers_bools_and_strings_are_exact():
    assert _fails(torch.tensor([1, 2, 4]), torch.tensor([1, 2, 3]), atol=10) == \
        "answer: 1 of 3 values differ"
    assert _fails(3, 4, atol=10) == "answer: 3 != 4"
    assert _fails(False, True) == "answer: False != True"
    assert _fails("a zebra", "a  zebra") == "answer: 'a zebra' != 'a  zebra'"


def test_the_tolerance_is_respected():
    want = torch.tensor([1.0, 100.0], dtype=torch.float64)
    assert_same(want + torch.tensor([0.0, 9e-4], dtype=torch.float64), want, rtol=1e-5, atol=0)
    message = _fails(want + torch.tensor([0.0, 2e-3], dtype=torch.float64), want, rtol=1e-5, atol=0)
    assert message == "answer: 1 of 2 values differ; largest difference 0.002 (rtol 1e-05, atol 0)"
    assert_same(want + 1e-9, want, rtol=0, atol=1e-8)
    assert _fails(want + 1e-7, want, rtol=0, atol=1e-8).startswith("answer: 2 of 2 values differ")
    assert_same(1.0 + 1e-7, 1.0, rtol=0, atol=1e-6)
    assert _fails(1.1, 1.0, rtol=0, atol=1e-6) == "answer: 1.1 != 1 (rtol 0, atol 1e-06)"
    assert _fails(np.array([1.0, 2.0]), np.array([1.0, 2.5]), atol=0.1).startswith(
        "answer: 1 of 2 values differ; largest difference 0.5")


def test_zero_dimensional_values():
    assert_same(torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    assert _fails(torch.tensor(0.5), torch.tensor(0.7)).startswith("answer: 1 of 1 values differ")
    assert _fails(np.array(0.5), np.array(0.7)).startswith("answer: 1 of 1 values differ")
    assert _fails(torch.zeros(1), torch.tensor(0.0)) == "answer: shape (1,) != ()"


def test_nan_is_never_equal():
    nan = torch.tensor([1.0, float("nan")])
    assert _fails(nan, nan.clone()) == "answer: 1 of 2 values differ (NaN is never equal)"
    assert _fails(float("nan"), float("nan")) == "answer: nan != nan (NaN is never equal)"
    assert _fails(np.array([np.nan]), np.array([0.0]), atol=1e9).startswith("answer: 1 of 1")


def test_nested_tuples_of_tensors_are_compared_element_by_element():
    want = (torch.zeros(2, 3), (torch.ones(4), torch.tensor([1, 2])))
    assert_same((torch.zeros(2, 3), [torch.ones(4), torch.tensor([1, 2])]), want)
    assert _fails((torch.zeros(2, 3), (torch.ones(4), torch.empty(0, dtype=torch.long))), want) \
        == "answer[1][1]: shape (0,) != (2,)"
    assert _fails((torch.zeros(2, 3), (torch.ones(4) * 2, torch.tensor([1, 2]))), want) \
        .startswith("answer[1][0]: 4 of 4 values differ")
    assert _fails((torch.zeros(2, 3),), want) == "answer: length 1 != 2"


def test_dicts_need_the_same_keys():
    assert _fails({"a": 1, "c": 2}, {"a": 1, "b": 2}) == \
        "answer: keys differ: missing 'b', unexpected 'c'"
    assert _fails({}, {k: 0 for k in range(5)}) == "answer: keys differ: missing 0, 1, 2, …"
    assert _fails({"a": torch.ones(2)}, {"a": torch.ones(3)}) == "answer['a']: shape (2,) != (3,)"


def test_structure_only_ignores_the_values_but_not_the_shape():
    assert_same(torch.ones(2, 3), torch.zeros(2, 3), values=False)
    assert_same([1.0, "x"], [5.0, "y"], values=False)
    assert _fails(torch.empty(0, 3), torch.zeros(2, 3), values=False) == \
        "answer: shape (0, 3) != (2, 3)"
    assert _fails(torch.zeros(2, 3, dtype=torch.float16), torch.zeros(2, 3), values=False) == \
        "answer: dtype float16 != float32"


def test_gradients_and_other_objects():
    got = torch.ones(3, requires_grad=True) * 2
    assert_same(got, torch.full((3,), 2.0))
    assert_same({"pooled_conv"}, {"pooled_conv"})
    assert _fails({"post", "pooled_conv"}, {"pooled_conv"}).startswith("answer: {")
    assert _fails(frozenset(), set()) == "answer: a frozenset, expected a set"


def test_a_message_stays_short():
    message = _fails("x" * 10_000, "y" * 10_000)
    assert len(message) < 100 and "…" in message
    message = _fails(torch.randn(1000, 1000), torch.randn(1000, 1000))
    assert len(message) < 120
