"""The chapters' training runs as recipes, every one of the same shape.

A chapter notebook walks through a recipe's pieces one cell at a time;
``python -m mmcourse bench`` runs whole recipes in full mode to reproduce the committed
notebook outputs. Every recipe module (listed in :data:`RECIPES`) holds:

* ``Settings`` — a frozen dataclass whose defaults are the full-mode values, and
  ``FAST`` — the fields that fast mode (:func:`mmcourse.runtime.config.fast`) changes;
* ``settings(**overrides)`` — the active mode's settings (:func:`mode_settings`);
  notebooks read their numbers from it and never restate one;
* five parts that take and return the same kinds of things in every recipe:
  ``loaders(s)`` → a dict of the data's named parts (loaders under "train", "val",
  "test", and what the model and the metrics need: a task, a tokenizer, a fold);
  ``model(s, data)`` → a freshly initialised ``nn.Module`` sized from that dict;
  ``train(model, data, s, progress=False)`` → a :class:`~mmcourse.training.train.FitResult`
  (load-or-train through a checkpoint named by :func:`checkpoint`);
  ``evaluate(model, data)`` → {metric: number} on the test part;
  ``run(s=None, progress=False)`` → an :class:`Outcome` of the whole comparison.

A recipe that compares systems over folds or seeds keeps the building blocks its chapter
walks through beside them (a ``*_fold`` function that takes the fold, a builder that takes
sizes); ``tests/test_recipes.py`` calls the five parts of every recipe on tiny settings.
"""
from __future__ import annotations

import dataclasses
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmcourse.runtime import cache, config


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
    "spoken-digits-crnn": ("spoken_digits", "spoken digits from MFCCs, CRNN (chapter 03)"),
    "spoken-language-crnn": ("spoken_language",
                             "language of spoken stamp captions, CRNN (chapter 03)"),
    "avdigits-fusion": ("fusion", "every fusion method on AV-digits (chapter 04)"),
    "stamp-retrieval": ("retrieval", "contrastive alignment of stamp pictures and captions, "
                        "retrieval on held-out stamps (chapter 05)"),
    "adversarial-alignment": ("adversarial", "a shared space with a gradient-reversal "
                              "modality discriminator, swept over its strength (chapter 05)"),
    "self-supervised": ("self_supervised", "contrastive pretraining on unlabelled AV-digits, "
                        "then fine-tuning with few labels (chapter 05)"),
    "finetune-strategies": ("finetune", "frozen probe, partial, full and LoRA fine-tuning of "
                            "the pretrained towers on the stamps' 5 folds (chapter 06)"),
    "image-captioning": ("captioning", "captions of held-out stamps: attention decoder with "
                         "concept words and retrieved captions vs constant, template and "
                         "nearest-neighbour baselines (chapter 07)"),
    "multimodal-translation": ("translation", "English → French stamp captions: copy, "
                               "retrieval, retrieval repaired with an IBM Model 1 lexicon, "
                               "seq2seq, retrieve-and-edit and text + image word "
                               "translators, the incongruent-image test (chapter 09)"),
    "speech-ctc": ("speech_ctc", "spoken Spanish stamp captions transcribed to characters, "
                   "CRNN + CTC vs nearest neighbour (chapter 08)"),
    "connected-digits-ctc": ("connected_digits", "joined spoken-digit recordings "
                             "transcribed with CTC, digit error rate (chapter 08)"),
}
"""Recipe name → (module in this package, description)."""


def mode_settings(full, fast: dict, overrides: dict):
    """``full`` (a frozen Settings) with the ``fast`` fields applied when the fast switch
    is on, shifted to the ``MMCOURSE_SEED`` setting (:func:`seeded`), then ``overrides``
    (field → value) on top."""
    active = dataclasses.replace(full, **fast) if config.fast() else full
    return dataclasses.replace(seeded(active, config.seed()), **overrides)


def seeded(s, offset: int):
    """Settings ``s`` with every training seed moved by ``offset``: the field ``seed`` and
    every tuple of seeds (a field named ``seeds`` or ``…_seeds``). Split and fold seeds
    (``fold_seed``, ``split_seed``) stay, so every seed is measured on the same test set."""
    changes = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if f.name == "seed":
            changes["seed"] = value + offset
        elif f.name.endswith("seeds") and isinstance(value, tuple):
            changes[f.name] = tuple(v + offset for v in value)
    return dataclasses.replace(s, **changes)


def checkpoint(name: str, s) -> Path:
    """The checkpoint file of run ``name`` trained with settings ``s``: runs with other
    settings (fast, full, or a test's tiny ones) never share a file."""
    values = dataclasses.astuple(s) if dataclasses.is_dataclass(s) else s
    return config.cache_dir("checkpoints") / f"{name}-{cache.digest(values, 10)}.pt"


def module(name: str):
    """The recipe module of recipe ``name`` (see :data:`RECIPES`)."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return importlib.import_module(f".{RECIPES[name][0]}", __name__)


def run(name: str, progress: bool = False, s=None) -> Outcome:
    """Run recipe ``name`` with settings ``s`` (default: the active mode's) and time it."""
    recipe = module(name)
    tic = time.perf_counter()
    outcome = recipe.run(s=s, progress=progress)
    outcome.seconds = time.perf_counter() - tic
    return outcome
