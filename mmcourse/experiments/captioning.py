"""Recipe ``image-captioning``: caption held-out stamps, against three baselines (chapter 07).

Every stamp's English caption is the target; the stamps are split into ``s.folds`` folds
by stamp (:func:`~mmcourse.tasks.captioning.caption_folds`), and on each fold every system
captions the held-out stamps:

* **constant** — one training caption for every picture;
* **template** — "A <top ImageNet label>.";
* **retrieval** — the caption of the nearest training picture (cosine of pooled
  EfficientNet-Lite0 features);
* the course's :class:`~mmcourse.tasks.captioning.Captioner` in the variants of ``s.variants``:
  ``image`` (attention over the grid cells and the pooled vector), ``+concepts`` (plus
  the top ImageNet labels' words, which it can copy), ``+neighbours`` (plus the nearest
  training captions' words, which it can copy) and ``full`` (both);
* **gated** — the nearest training caption where the picture has a close match in the
  training set, the ``full`` captioner's caption elsewhere
  (:func:`~mmcourse.tasks.captioning.gated_captions`).

Fold 0 is the development fold on which the settings were chosen; the scores are
reported on ``s.test_folds``.

The scores are BLEU and chrF (sacrebleu, lower-cased), a CIDEr-style consensus score and
the share of the template words, object word and attributes recovered, as mean ± std
over the folds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from mmcourse.nn.encoders import EFFICIENTNET_DIM
from mmcourse.preprocessing import PAD, SequenceTokenizer
from mmcourse.tasks import captioning as cap
from mmcourse.training.metrics import mean_sd
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings

VARIANTS = {"image": (False, False), "+concepts": (True, False),
            "+neighbours": (False, True), "full": (True, True)}
"""Captioner variant → (concept words in the memory, neighbour captions in the memory)."""
BASELINES = ("constant", "template", "retrieval")


@dataclass(frozen=True)
class Settings:
    """Full-mode settings of the captioning recipe."""

    size: int = 224
    limit: int | None = None
    folds: int = 5
    test_folds: tuple = (1, 2, 3, 4)
    fold_seed: int = 0
    concepts: int = 5
    neighbours: int = 3
    max_tokens: int = 12
    grid_dim: int = 128
    dim: int = 256
    embed_dim: int = 128
    hidden_dim: int = 256
    attention_dim: int = 64
    dropout: float = 0.3
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    beam_size: int = 3
    length_penalty: float = 0.0
    max_len: int = 24
    train_tokens: int = 16
    gate_quantile: float = 0.5
    seed: int = 0
    variants: tuple = ("image", "full")


FAST = dict(size=160, limit=400, test_folds=(1, 2), epochs=12, lr=3e-3, variants=("full",))
"""What fast mode changes: 400 of the stamps at 160 px (a 5×5 grid), two test folds, 12
epochs at a higher learning rate, the full variant only."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


@dataclass
class Fold:
    """One fold: its ``tokenizer`` (fitted on the training captions), ``template`` words,
    ``train``/``test`` :class:`~mmcourse.tasks.captioning.CaptionInputs` and index arrays."""

    number: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    tokenizer: SequenceTokenizer
    template: set
    train: cap.CaptionInputs
    test: cap.CaptionInputs


def fold(data: cap.CaptionData, number: int, s: Settings) -> Fold:
    """Fold ``number`` of :func:`~mmcourse.tasks.captioning.caption_folds` with its inputs."""
    train_idx, test_idx = cap.caption_folds(len(data), s.folds, s.fold_seed)[number]
    train_captions = [data.captions[i] for i in train_idx]
    _, concepts = cap.top_labels(data.imagenet, s.concepts)
    tokenizer = SequenceTokenizer().fit([*train_captions, *(n for row in concepts for n in row)])
    basis = cap.grid_basis(data, train_idx, s.grid_dim, s.seed) if s.grid_dim else None
    inputs = {part: cap.caption_inputs(data, idx, train_idx, tokenizer, s.concepts,
                                       s.neighbours, s.max_tokens, basis)
              for part, idx in (("train", train_idx), ("test", test_idx))}
    return Fold(number, train_idx, test_idx, tokenizer,
                cap.template_words(train_captions, tokenizer), inputs["train"], inputs["test"])


def loaders(s: Settings) -> dict:
    """The data: {"data": :class:`~mmcourse.tasks.captioning.CaptionData`, "folds": the
    :class:`Fold` s of ``s.test_folds``}."""
    data = cap.caption_data(s.size, s.limit)
    return {"data": data, "folds": [fold(data, k, s) for k in s.test_folds]}


def model(s: Settings, data: dict, variant: str = "full") -> cap.Captioner:
    """:func:`captioner` of ``variant`` for the vocabulary of the first fold of ``data``
    (what :func:`loaders` returns) and the grid of its pictures."""
    return captioner(s, len(data["folds"][0].tokenizer), data["data"].side ** 2, variant)


def captioner(s: Settings, vocab_size: int, grid_cells: int,
              variant: str = "full") -> cap.Captioner:
    """A fresh :class:`~mmcourse.tasks.captioning.Captioner` of ``variant`` (see
    :data:`VARIANTS`) for ``vocab_size`` tokens and ``grid_cells`` picture cells,
    initialised from ``s.seed``."""
    concepts, neighbours = VARIANTS[variant]
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return cap.Captioner(vocab_size, grid_cells, s.dim, s.embed_dim, s.hidden_dim,
                             s.attention_dim, s.dropout, concepts=concepts,
                             neighbours=neighbours, grid_dim=s.grid_dim or EFFICIENTNET_DIM)


class _Stamps(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def batches(inputs: cap.CaptionInputs, tokenizer: SequenceTokenizer, s: Settings,
            shuffle: bool = True) -> DataLoader:
    """Shuffled training batches: the memory inputs of :meth:`CaptionInputs.batch` plus
    teacher-forcing ``"inputs"`` and ``"targets"`` (B, T) of the captions, cut to
    ``s.train_tokens`` tokens (a few long captions would otherwise set T)."""
    def collate(index):
        batch = inputs.batch(index)
        batch["inputs"], batch["targets"] = tokenizer.teacher_forcing(
            [inputs.captions[i] for i in index], s.train_tokens)
        return batch

    return DataLoader(_Stamps(len(inputs)), batch_size=s.batch_size, shuffle=shuffle,
                      collate_fn=collate)


def caption_forward(net: cap.Captioner, batch: dict):
    """Teacher forcing: the scores (N, V) and targets (N,) of the N real target tokens."""
    targets = batch["targets"]
    scores, _ = net({k: v for k, v in batch.items() if k not in ("inputs", "targets")},
                    batch["inputs"])
    real = targets != PAD
    return scores[real], targets[real]


def train(net: cap.Captioner, data: dict, s: Settings, variant: str = "full",
          progress: bool = False) -> FitResult:
    """:func:`train_fold` on the first fold of ``data`` (what :func:`loaders` returns)."""
    return train_fold(net, data["folds"][0], s, variant, progress)


def train_fold(net: cap.Captioner, f: Fold, s: Settings, variant: str = "full",
               progress: bool = False) -> FitResult:
    """Train ``net`` on fold ``f``'s training stamps with token cross-entropy (label
    smoothing ``s.label_smoothing``) for ``s.epochs`` epochs; load-or-train through a
    checkpoint named by the settings, variant and fold."""
    loss = torch.nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    return fit(net, batches(f.train, f.tokenizer, s), epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, loss_fn=loss, forward=caption_forward,
               seed=s.seed, checkpoint=checkpoint(f"captioning-{variant}-fold{f.number}", s),
               progress=progress, desc=f"{variant} fold {f.number}")


def baseline_captions(data: cap.CaptionData, f: Fold) -> dict[str, list[str]]:
    """The three baselines' captions of fold ``f``'s test stamps."""
    train_captions = [data.captions[i] for i in f.train_idx]
    return {"constant": [cap.constant_caption(train_captions)] * len(f.test_idx),
            "template": cap.template_captions(data.imagenet[f.test_idx]),
            "retrieval": cap.retrieval_captions(data, f.train_idx, f.test_idx)}


def evaluate(net: cap.Captioner, data: dict, s: Settings | None = None) -> dict[str, float]:
    """:func:`~mmcourse.tasks.captioning.caption_scores` of ``net``'s captions of the test
    stamps of the first fold of ``data`` (what :func:`loaders` returns), decoded as ``s``
    (default: :func:`settings`) says."""
    s = s or settings()
    f = data["folds"][0]
    hyps = cap.generate(net, f.test, f.tokenizer, s.beam_size, s.max_len, s.length_penalty)
    return score_captions({"model": hyps}, f)["model"]


def score_captions(captions: dict[str, list[str]], f: Fold) -> dict[str, dict]:
    """:func:`~mmcourse.tasks.captioning.caption_scores` of each system's captions of fold
    ``f``'s test stamps."""
    return {name: cap.caption_scores(hyps, f.test.captions, f.template, f.tokenizer)
            for name, hyps in captions.items()}


def summarize(per_fold: list[dict[str, dict]]) -> dict[str, dict[str, tuple]]:
    """system → metric → (mean, std over the folds) (:func:`~mmcourse.training.metrics.mean_sd`)."""
    systems = per_fold[0]
    return {name: {m: mean_sd([p[name][m] for p in per_fold]) for m in systems[name]}
            for name in systems}


def run_fold(data: cap.CaptionData, f: Fold, s: Settings, progress: bool = False) -> dict:
    """Every system on fold ``f``: {"captions": {system: test captions}, "scores":
    {system: scores}, "models": {variant: trained Captioner}, "fits": {variant:
    FitResult}}."""
    captions = baseline_captions(data, f)
    models, fits = {}, {}
    for variant in s.variants:
        net = captioner(s, len(f.tokenizer), data.side ** 2, variant)
        fits[variant] = train_fold(net, f, s, variant, progress)
        models[variant] = net
        captions[variant] = cap.generate(net, f.test, f.tokenizer, s.beam_size, s.max_len,
                                         s.length_penalty)
    if "full" in captions:
        captions["gated"], _ = cap.gated_captions(data, f.train_idx, f.test_idx,
                                                  captions["full"], s.gate_quantile)
    return {"captions": captions, "scores": score_captions(captions, f), "models": models,
            "fits": fits}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """Every fold → :class:`Outcome` with "<system> <metric>" means and the per-fold
    scores in ``details``."""
    s = s or settings()
    data = loaders(s)
    per_fold = [run_fold(data["data"], f, s, progress)["scores"] for f in data["folds"]]
    table = summarize(per_fold)
    metrics = {f"{name} {m}": mean for name, row in table.items()
               for m, (mean, _) in row.items()}
    return Outcome("image-captioning", metrics,
                   details={"table": table, "per fold": per_fold})
