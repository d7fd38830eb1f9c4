"""Shared fixtures: the real installed data, loaded once per test session."""
from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "book: the website in a browser (tests/test_book.py); runs only under "
        "-m book, as `make book-check` runs it")


def pytest_collection_modifyitems(config, items):
    """The ``book`` tests need the built site, Node and Chromium: they run only when the
    ``-m`` expression names them, and are left out of every other run."""
    if "book" in (config.getoption("markexpr") or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("book")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("book")]


@pytest.fixture(scope="session")
def stamps():
    from mmcourse.data import load_stamps

    return load_stamps()


@pytest.fixture(scope="session")
def av_digits():
    from mmcourse.data import load_av_digits

    return load_av_digits(seed=0)


class _Reached(Exception):
    """Raised by the device probe once a model received its first inputs."""


@pytest.fixture
def feeds_model_device():
    """``check(helper, model, *args, **kwargs)``: put ``model`` on the ``meta`` device, call
    ``helper(model, *args, **kwargs)`` and assert that the first tensors any of the model's
    modules receives are on ``meta`` too, as a GPU model would need them on the GPU.

    The probe stops the helper there (a meta tensor cannot be read back), so the check
    needs no accelerator. It fails when the helper never runs the model at all.
    """
    import torch

    def tensors(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from tensors(v)
        elif isinstance(value, (tuple, list)):
            for v in value:
                yield from tensors(v)

    def check(helper, model, *args, **kwargs):
        model.to("meta")
        seen = []

        def probe(module, inputs, kw):
            found = list(tensors((inputs, kw)))
            if found:
                seen.extend(t.device.type for t in found)
                raise _Reached

        handles = [m.register_forward_pre_hook(probe, with_kwargs=True) for m in model.modules()]
        try:
            helper(model, *args, **kwargs)
        except _Reached:
            pass
        finally:
            for handle in handles:
                handle.remove()
        assert seen, f"{helper.__name__} never ran the model"
        assert set(seen) == {"meta"}, (
            f"{helper.__name__} fed the model inputs on {sorted(set(seen))}, not on the "
            f"model's device (meta)")

    return check
