"""Chapter 09's recipe: English → French translation of the stamps' captions, with and
without the picture.

Data (:func:`loaders`): every stamp with an English and a French caption (all 950), its
frozen EfficientNet-Lite0 picture features (:func:`~.stamp_features.stamp_features`,
standardised on each fold's training stamps) and ``folds`` shuffled folds by stamp, of
which the first ``run_folds`` are run: 80 % of the stamps train, the other 20 % are
translated. Seven systems are scored on every test fold with sacrebleu's BLEU and chrF:

* **copy** — the English caption as it is;
* **retrieval** — the French caption of the nearest English training caption
  (the nearest training stamp by the similarity of their English captions);
* **retrieval + repair** — that French caption edited where the two English captions
  differ (:func:`~mmcourse.tasks.translation.repair_translation`, with a
  :class:`~mmcourse.tasks.translation.WordLexicon` learned on the fold's training pairs);
* **seq2seq** — the word-level :class:`~mmcourse.tasks.translation.Translator` (attention and
  copying) that reads only the English;
* **text** — the same model reading also the retrieval baseline's French caption
  (retrieve and edit): the best text-only model;
* **text + image** — the text model with the picture as context;
* **text + shuffled image** — the text + image model decoded with the pictures of other
  test stamps (the incongruent test): if the score barely moves, the model ignores the
  picture.

:func:`run` reports each system's mean and standard deviation over the folds, and
:func:`table_record` the per-stamp translations, which :func:`main` writes to a JSON file
(``python -m mmcourse.experiments.translation --out FILE``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmcourse.data import load_stamps
from mmcourse.nn.encoders import EFFICIENTNET_DIM
from mmcourse.nn.neighbours import nearest_neighbour
from mmcourse.preprocessing import standardize
from mmcourse.preprocessing.text import PAD, SequenceTokenizer, normalize_text
from mmcourse.tasks.translation import (PairBatches, Translator, WordLexicon, caption_pairs,
                                        copy_baseline, repair_translation, sentence_vectors,
                                        stamp_folds, teacher_forcing_forward, translate)
from mmcourse.training.metrics import bleu, chrf, mean_sd
from mmcourse.training.train import FitResult, fit

from . import Outcome, checkpoint, mode_settings
from .stamp_features import stamp_features

SYSTEMS = ("copy", "retrieval", "retrieval + repair", "seq2seq", "text", "text + image",
           "text + shuffled image")
"""The rows of the chapter's table, in order."""


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    stamp_limit: int | None = None
    """Stamps kept (a random subset drawn with ``split_seed``; None: all of them)."""
    folds: int = 5
    """Folds the stamps are cut into: each holds out 1/folds of them (20 %)."""
    run_folds: int = 3
    """How many of the folds are run (fold 0 first)."""
    split_seed: int = 0
    """Shuffles the stamps before they are cut into folds."""
    image_size: int = 224
    """Side of the centre crop EfficientNet-Lite0 sees."""
    retrieval: str = "minilm"
    """Similarity of the retrieval baseline (and of the neighbour the models read):
    "minilm" or "tfidf"."""
    seq2seq: bool = True
    """Also train the plain sequence-to-sequence model (no retrieved caption)."""
    exact_match: bool = True
    """A stamp whose English caption is a training caption (up to case and punctuation)
    takes that caption's translation in every model row, as a translation memory
    does; the models' own translations are reported as "(model only)" rows."""
    embed_dim: int = 64
    hidden_size: int = 128
    dropout: float = 0.1
    word_dropout: float = 0.1
    """Share of source words hidden behind <unk> in training (so the model learns to copy
    words it does not know)."""
    batch_size: int = 32
    epochs: int = 35
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    max_len: int = 40
    """Longest translation decoded, in words."""
    beam_size: int = 1
    """1: greedy decoding; more: beam search."""
    seed: int = 0
    """Seeds the initial weights and the batch order."""


FAST = dict(run_folds=1, epochs=6, image_size=96)
"""What fast mode changes: one fold, 6 epochs, 96 px pictures."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


@dataclass
class TranslationData:
    """The stamps' caption pairs: ``stamps`` (N), ``source`` and ``target`` captions
    (N strings each), raw picture features ``image`` float32 (N, 1280), unit-length
    MiniLM embeddings of the English captions ``text`` float32 (N, 384) and the
    ``folds``, (train, test) index arrays."""

    stamps: list
    source: list
    target: list
    image: np.ndarray
    text: np.ndarray
    folds: list

    def neighbours(self, k: int, method: str = "minilm") -> np.ndarray:
        """Fold ``k``'s retrieved stamp for every stamp, int64 (N,): a test stamp's
        nearest training stamp, a training stamp's nearest *other* training stamp (so
        that training sees neighbours as imperfect as at test time); −1 elsewhere.
        Similarity: cosine of ``text`` for "minilm", else
        :func:`~mmcourse.tasks.translation.sentence_vectors`."""
        train_idx, test_idx = self.folds[k]
        vectors = (self.text if method == "minilm" else
                   sentence_vectors([self.source[i] for i in train_idx], self.source, method))
        out = np.full(len(self.source), -1, dtype=np.int64)
        alone = np.eye(len(train_idx), dtype=bool)  # a training stamp is not its own neighbour
        out[train_idx] = train_idx[nearest_neighbour(vectors[train_idx], vectors[train_idx],
                                                     exclude=alone, unit=True)]
        out[test_idx] = train_idx[nearest_neighbour(vectors[test_idx], vectors[train_idx],
                                                    unit=True)]
        return out

    def fold(self, k: int, s: Settings) -> dict:
        """Fold ``k``: word tokenizers fitted on its training captions, its pictures
        standardised with the training stamps' mean and standard deviation, and its
        batches {"train": shuffled, "test": in order} with the retrieved captions
        (:meth:`neighbours`), and the word lexicon of its training pairs:
        {"src_tok", "tgt_tok", "image", "neighbours", "lexicon", "train", "test",
        "train_idx", "test_idx"}."""
        train_idx, test_idx = self.folds[k]
        src_tok = SequenceTokenizer().fit([self.source[i] for i in train_idx])
        tgt_tok = SequenceTokenizer().fit([self.target[i] for i in train_idx])
        image = standardize(self.image, train_idx)
        neighbours = self.neighbours(k, s.retrieval)

        def batches(index, shuffle):
            return PairBatches(self.source, self.target, image, index, src_tok, tgt_tok,
                               s.batch_size, shuffle, neighbours)

        return {"src_tok": src_tok, "tgt_tok": tgt_tok, "image": image,
                "neighbours": neighbours,
                "lexicon": WordLexicon().fit([self.source[i] for i in train_idx],
                                             [self.target[i] for i in train_idx]),
                "train": batches(train_idx, True), "test": batches(test_idx, False),
                "train_idx": train_idx, "test_idx": test_idx}


def loaders(s: Settings) -> dict:
    """{"data": the caption pairs (:func:`translation_data`), "fold": their first fold
    (:meth:`TranslationData.fold`)}."""
    pairs = translation_data(s)
    return {"data": pairs, "fold": pairs.fold(0, s)}


def translation_data(s: Settings) -> TranslationData:
    """All stamps with an English and a French caption (or ``s.stamp_limit`` of them),
    their picture and caption features and the folds
    (:func:`~mmcourse.tasks.translation.stamp_folds` with ``s.split_seed``)."""
    stamps, source, target = caption_pairs(load_stamps())
    if s.stamp_limit is not None and s.stamp_limit < len(stamps):
        keep = np.sort(np.random.default_rng(s.split_seed).choice(len(stamps), s.stamp_limit,
                                                                  replace=False))
        stamps, source, target = ([x[i] for i in keep] for x in (stamps, source, target))
    features = stamp_features(stamps, s.image_size)
    return TranslationData(stamps, source, target, features["image"], features["text"],
                           stamp_folds(len(stamps), s.folds, s.split_seed))


MODELS = {"seq2seq": (False, False), "text": (True, False), "text + image": (True, True)}
"""The trained systems: name → (reads the retrieved caption, reads the picture)."""


def model(s: Settings, data: dict, system: str = "text + image") -> Translator:
    """:func:`translator` reading what ``system`` reads, for the vocabularies of the fold
    of ``data`` (what :func:`loaders` returns)."""
    fold = data["fold"]
    return translator(s, len(fold["src_tok"]), len(fold["tgt_tok"]), system)


def translator(s: Settings, src_vocab: int, tgt_vocab: int, system: str = "text + image"
               ) -> Translator:
    """A fresh :class:`~mmcourse.tasks.translation.Translator` for vocabularies of these sizes,
    reading what ``system`` (a key of :data:`MODELS`) reads; initialised from ``s.seed``
    (the global random state is left as it was)."""
    neighbour, image = MODELS[system]
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return Translator(src_vocab, tgt_vocab, EFFICIENTNET_DIM if image else 0, neighbour,
                          s.embed_dim, s.hidden_size, s.dropout, s.word_dropout)


def run_name(system: str, fold: int) -> str:
    """The checkpoint name of ``system`` trained on ``fold`` ("text + image", 0 →
    "translation-text-image-fold0"); the chapter loads the recipe's runs through it."""
    return f"translation-{system.replace(' + ', '-')}-fold{fold}"


def train(net: Translator, data: dict, s: Settings, progress: bool = False,
          system: str = "text + image") -> FitResult:
    """:func:`train_fold` on the fold of ``data`` (what :func:`loaders` returns), with the
    checkpoint of ``system`` on fold 0 (:func:`run_name`)."""
    return train_fold(net, data["fold"], s, progress, run_name(system, 0))


def train_fold(net: Translator, fold: dict, s: Settings, progress: bool = False,
               name: str = "translation") -> FitResult:
    """Teacher-forced training on the fold's training stamps: cross-entropy of every next
    word, ``<pad>`` ignored; ``s.epochs`` epochs, no early stopping (the last
    epoch's weights are kept). Load-or-train through a checkpoint."""
    return fit(net, fold["train"], None, epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, loss_fn=nn.NLLLoss(ignore_index=PAD),
               forward=teacher_forcing_forward, seed=s.seed, monitor="train_loss",
               checkpoint=checkpoint(name, s), progress=progress, desc=name)


def shuffled_images(image: np.ndarray, test_idx, seed: int = 0) -> np.ndarray:
    """``image`` (N, D) with the rows of the test stamps ``test_idx`` permuted among
    themselves by a derangement drawn with ``seed``: every test stamp gets another test
    stamp's picture; the other rows are unchanged."""
    rng = np.random.default_rng(seed)
    test_idx = np.asarray(test_idx)
    perm = rng.permutation(len(test_idx))
    while len(test_idx) > 1 and (perm == np.arange(len(test_idx))).any():
        perm = rng.permutation(len(test_idx))
    out = image.copy()
    out[test_idx] = image[test_idx[perm]]
    return out


def evaluate(net: Translator, data: dict, s: Settings | None = None,
             system: str = "text + image") -> dict[str, float]:
    """BLEU and chrF of ``net``, a model of ``system``, on the test stamps of the fold of
    ``data`` (what :func:`loaders` returns), as :func:`evaluate_fold` scores it with ``s``
    (default: :func:`settings`)."""
    s = s or settings()
    return evaluate_fold({system: net}, data["fold"], data["data"], s)["scores"][system]


def evaluate_fold(nets: dict, fold: dict, data: TranslationData, s: Settings) -> dict:
    """Every system's translations of the fold's test stamps and their scores:
    {"hyps": {system: [str]}, "scores": {system: {"BLEU", "chrF"}}, "exact": bool (n,)}.
    ``nets`` holds the trained models by system (see :data:`MODELS`; any may be
    missing). The retrieval baseline's translation is the retrieved caption the models
    read. With ``s.exact_match``, a model's translation of a stamp whose English caption
    equals its retrieved one (:func:`exact_matches`) is the retrieved translation, as
    in a translation memory; the model's own translations are kept as
    "<system> (model only)"."""
    test = fold["test_idx"]
    sources = [data.source[i] for i in test]
    refs = [data.target[i] for i in test]
    hyps = {"copy": copy_baseline(sources),
            "retrieval": [data.target[j] for j in fold["neighbours"][test]],
            "retrieval + repair": repaired_retrieval(data, fold)}
    exact = exact_matches(data, test, fold["neighbours"])
    own = {}
    for system in ("seq2seq", "text", "text + image"):
        if system in nets:
            own[system] = translate(nets[system], fold["test"], s.max_len,
                                    beam_size=s.beam_size)
    if "text + image" in nets:
        own["text + shuffled image"] = translate(
            nets["text + image"], fold["test"], s.max_len,
            image=shuffled_images(fold["image"], test, s.seed), beam_size=s.beam_size)
    for system, h in own.items():
        hyps[system] = ([r if e else x for x, r, e in zip(h, hyps["retrieval"], exact)]
                        if s.exact_match else h)
    if s.exact_match:
        hyps.update({f"{system} (model only)": h for system, h in own.items()})
    return {"hyps": hyps, "exact": exact,
            "scores": {k: {"BLEU": bleu(h, refs), "chrF": chrf(h, refs)}
                       for k, h in hyps.items()}}


def repaired_retrieval(data: TranslationData, fold: dict) -> list[str]:
    """The "retrieval + repair" translations of the fold's test stamps, in order: each
    retrieved French caption edited by :func:`~mmcourse.tasks.translation.repair_translation`
    with the fold's lexicon (learned on its training pairs only)."""
    test = fold["test_idx"]
    return [repair_translation(data.source[i], data.source[j], data.target[j],
                               fold["lexicon"])
            for i, j in zip(test, fold["neighbours"][test])]


def exact_matches(data: TranslationData, rows, neighbours: np.ndarray) -> np.ndarray:
    """bool (n,): whether each stamp of ``rows`` has the same English caption as its
    retrieved stamp ``neighbours[row]``, up to case, punctuation and spacing
    (:func:`mmcourse.preprocessing.text.normalize_text`)."""
    return np.array([normalize_text(data.source[i]) == normalize_text(data.source[neighbours[i]])
                     for i in rows], dtype=bool)


def run_fold(k: int, data: TranslationData, s: Settings, progress: bool = False) -> dict:
    """Train the models of :data:`MODELS` (the seq2seq one only with ``s.seq2seq``) on
    fold ``k`` and :func:`evaluate` every system on its test stamps; adds "histories"
    (training loss per epoch)."""
    fold = data.fold(k, s)
    nets, histories = {}, {}
    for system in MODELS:
        if system == "seq2seq" and not s.seq2seq:
            continue
        net = translator(s, len(fold["src_tok"]), len(fold["tgt_tok"]), system)
        name = run_name(system, k)
        histories[system] = train_fold(net, fold, s, progress, name).history["train_loss"]
        nets[system] = net
    return {**evaluate_fold(nets, fold, data, s), "histories": histories}


def summary(folds: list[dict]) -> dict:
    """Mean and standard deviation (ddof 0) over folds of every system's BLEU and chrF:
    {system: {"BLEU": (mean, std), "chrF": (mean, std)}}."""
    out = {}
    for system in folds[0]["scores"]:
        out[system] = {m: mean_sd([f["scores"][system][m] for f in folds])
                       for m in ("BLEU", "chrF")}
    return out


def table_record(folds: list[dict], data: TranslationData, s: Settings) -> dict:
    """A JSON-ready record of a run: settings, the summary, per-fold scores and
    histories, and every test stamp's source, reference and translations."""
    stamps = []
    for k, result in enumerate(folds):
        for j, i in enumerate(data.folds[k][1]):
            stamps.append({"fold": k, "name": data.stamps[i].name,
                           "category": data.stamps[i].category,
                           "exact match": bool(result["exact"][j]),
                           "source": data.source[i], "reference": data.target[i],
                           **{system: h[j] for system, h in result["hyps"].items()}})
    return {"settings": dataclasses.asdict(s), "summary": summary(folds),
            "folds": [{"scores": f["scores"], "histories": f["histories"]} for f in folds],
            "stamps": stamps}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """Every system on the first ``s.run_folds`` folds; metrics "<system> BLEU" and
    "<system> chrF" (means over folds) and their standard deviations ("… ± BLEU"),
    details {"record": :func:`table_record`}."""
    s = s or settings()
    data = translation_data(s)
    folds = [run_fold(k, data, s, progress) for k in range(s.run_folds)]
    table = summary(folds)
    metrics = {}
    for system, values in table.items():
        for metric, (mean, std) in values.items():
            metrics[f"{system} {metric}"] = mean
            metrics[f"{system} ± {metric}"] = std
    return Outcome("multimodal-translation", metrics,
                   details={"record": table_record(folds, data, s)})


def main(argv=None) -> int:
    """``python -m mmcourse.experiments.translation [--out FILE]``: run the recipe in full
    mode (unless ``MMCOURSE_FAST=1``), print the table and write the record as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--out", help="where to write the JSON record")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("MMCOURSE_FAST", "0")

    tic = time.perf_counter()
    outcome = run(progress=args.progress)
    record = outcome.details["record"]
    record["seconds"] = round(time.perf_counter() - tic, 1)
    record["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    for system, values in record["summary"].items():
        print(f"{system:>22}: BLEU {values['BLEU'][0]:5.1f} ± {values['BLEU'][1]:.1f}   "
              f"chrF {values['chrF'][0]:5.1f} ± {values['chrF'][1]:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
