"""The chapters' training runs as reusable recipes.

A chapter notebook walks through a recipe's pieces (data loaders, model, training) one
cell at a time; :func:`run` runs a whole recipe, which is what the benchmark
(``python -m mmcourse bench``) does in full mode to reproduce the committed notebook
outputs. Each recipe module exposes ``run(progress: bool) -> Outcome`` and is listed in
:data:`RECIPES`.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """The result of one recipe: its headline ``metrics`` (name → value) and wall time."""

    name: str
    metrics: dict
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


RECIPES = {
    "fashion-cnn": ("cnn", "Fashion-MNIST, small CNN (chapter 01)"),
    "caption-language-rnn": ("rnn", "caption language from characters, GRU vs bag of "
                             "character n-grams (chapter 02)"),
    "spoken-digits-crnn": ("crnn", "spoken digits from MFCCs, CRNN (chapter 03)"),
    "spoken-language-crnn": ("crnn", "language of spoken stamp captions, CRNN (chapter 03)"),
    "avdigits-fusion": ("fusion", "every fusion method on AV-digits, 3 seeds (chapter 04)"),
    "crossmodal": ("alignment", "stamp retrieval, adversarial alignment, self-supervised "
                   "pretraining with few labels (chapter 05)"),
}
"""Recipe name → (module in this package, description)."""


def run(name: str, progress: bool = False) -> Outcome:
    """Run recipe ``name`` in the active mode (see :func:`mmcourse.config.fast`)."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    module = importlib.import_module(f".{RECIPES[name][0]}", __name__)
    recipe = getattr(module, "RUNS")[name]
    tic = time.perf_counter()
    outcome = recipe(progress=progress)
    outcome.seconds = time.perf_counter() - tic
    return outcome
