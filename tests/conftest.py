"""Shared fixtures: the real installed data, loaded once per test session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def stamps():
    from mmcourse.data import load_stamps

    return load_stamps()


@pytest.fixture(scope="session")
def av_digits():
    from mmcourse.data import load_av_digits

    return load_av_digits(seed=0)
