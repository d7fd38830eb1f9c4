"""The recipe registry (chapter 04's recipe is tested in test_fusion_recipe.py)."""
from __future__ import annotations

import importlib

import pytest

from mmcourse.experiments import RECIPES, run


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_registered_in_its_module(name):
    module = importlib.import_module(f"mmcourse.experiments.{RECIPES[name][0]}")
    assert callable(module.RUNS[name])


def test_unknown_recipe():
    with pytest.raises(KeyError, match="unknown recipe"):
        run("no-such-recipe")
