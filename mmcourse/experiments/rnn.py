"""Chapter 02's recipe: the language of a stamp caption, read character by character.

Every stamp has its caption translated into up to ~78 languages; a caption's language is
the label. Languages with at least ``min_captions`` captions are kept (60 at 800). The
stamps — not the captions — are split by :func:`mmcourse.data.split_stamps` (seeded,
stratified by category), so all translations of an object fall into the same part and
no test object was seen in training, in any language.

Two classifiers share that split:

* a character-level :class:`~mmcourse.preprocessing.Tokenizer` and a bidirectional
  :class:`~mmcourse.nn.encoders.TextRNNEncoder` (GRU, LSTM or tanh RNN) with a linear head,
  built by :func:`mmcourse.nn.models.build_model` and trained by :func:`mmcourse.training.train.fit`;
* a bag of character 1–3-grams (TF-IDF) with a logistic regression (scikit-learn).

Samples are dicts ``{"tokens": LongTensor (L,), "label": int}`` batched by
:func:`mmcourse.preprocessing.collate_multimodal` into ``tokens`` (B, L_max),
``tokens_lengths`` (B,), ``tokens_mask`` (B, L_max) and ``label`` (B,); the model takes
that dict. :func:`compare_cells` trains the same encoder with each cell on a subset of
languages. Fast mode keeps :data:`FAST_LANGUAGES` (the comparison's subset, so the main
fast run is the comparison's GRU).
"""
from __future__ import annotations

import dataclasses
import functools
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from torch.utils.data import DataLoader

from mmcourse import data
from mmcourse.nn.encoders import count_parameters
from mmcourse.nn.models import MultimodalModel, build_model
from mmcourse.preprocessing import Tokenizer, collate_multimodal, normalize_text
from mmcourse.runtime import config
from mmcourse.training.metrics import classification_scores, confusion_matrix, labels_of
from mmcourse.training.train import FitResult, embed, fit, predict

from . import Outcome, checkpoint, mode_settings

FAST_LANGUAGES = ("ca", "ca@valencia", "de", "en", "es", "fr", "hr", "pt", "pt_BR",
                  "sr@latin")
"""Ten languages with three near-identical pairs among them: fast mode's languages and
the cell comparison's."""
FRACTIONS = (0.7, 0.15, 0.15)
"""Train / validation / test shares of the stamps (all captions of a stamp stay together)."""


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's."""

    languages: tuple[str, ...] | None = None
    """The languages (class k is the k-th); None: every language with at least
    ``min_captions`` captions, sorted (60 languages)."""
    min_captions: int = 800
    max_len: int = 64
    """Captions are cut to this many characters (95 % of them are shorter)."""
    cell: str = "gru"
    """The recurrent cell of the main run: ``"gru"``, ``"lstm"`` or ``"rnn"`` (tanh)."""
    embed_dim: int = 64
    """Size of the learned character vectors."""
    hidden_size: int = 64
    """Hidden units per direction; the caption embedding has twice as many numbers."""
    pooling: str = "max"
    """How the states are pooled over the valid characters (``"max"``, ``"mean"``, ``"last"``)."""
    epochs: int = 8
    batch_size: int = 128
    """Captions per training batch; evaluation uses twice as many."""
    lr: float = 6e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    weight_decay: float = 1e-2
    """AdamW's decoupled weight decay."""
    compare_languages: tuple[str, ...] = FAST_LANGUAGES
    """The languages of the cell comparison (:func:`compare_cells`)."""
    compare_cells: tuple[str, ...] = ("rnn", "gru", "lstm")
    compare_epochs: int = 5
    """Epochs of each run of the cell comparison."""
    ngrams: tuple[int, int] = (1, 3)
    """Shortest and longest character n-grams of the baseline."""
    ngram_alpha: float = 1e-6
    """L2 penalty of the baseline's logistic regression."""
    seed: int = 0
    """Seeds the model's initialisation, training and the baseline (the split uses
    :data:`mmcourse.runtime.config.SPLIT_SEED`)."""


FAST = dict(languages=FAST_LANGUAGES, epochs=4, compare_epochs=4)
"""What fast mode changes: the ten languages of the comparison, four epochs per run."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top."""
    return mode_settings(Settings(), FAST, overrides)


@dataclass
class CaptionLanguages:
    """Captions labelled by language, split by stamp.

    ``languages`` are the class names (label ``k`` is ``languages[k]``); ``texts``,
    ``labels`` and ``stamps`` map each part (``"train"``, ``"val"``, ``"test"``) to its
    raw captions (list of n str), their labels (int64 (n,)) and the name of the stamp each
    caption describes (list of n str).
    """

    languages: list
    texts: dict
    labels: dict
    stamps: dict

    def sizes(self) -> dict:
        """Number of captions in each part."""
        return {part: len(texts) for part, texts in self.texts.items()}


def caption_language_data(s: Settings, stamps=None) -> CaptionLanguages:
    """Every caption of the languages of ``s``, labelled by language and split by stamp.

    ``s.languages`` None keeps every language with at least ``s.min_captions`` captions
    over all stamps, in sorted order. Captions that clean to an empty string (only
    punctuation) are left out. The stamps (default: all, :func:`mmcourse.data.load_stamps`)
    are split by :func:`mmcourse.data.split_stamps` with :data:`FRACTIONS` and ``s.seed``.
    """
    stamps = data.load_stamps() if stamps is None else stamps
    counts = Counter(lang for stamp in stamps for lang in stamp.captions)
    languages = s.languages
    if languages is None:
        languages = sorted(lang for lang, n in counts.items() if n >= s.min_captions)
    unknown = [lang for lang in languages if lang not in counts]
    if unknown:
        raise ValueError(f"no stamp has a caption in {unknown}; "
                         f"languages present: {', '.join(sorted(counts))}")
    label_of = {lang: k for k, lang in enumerate(languages)}
    texts, labels, names = {}, {}, {}
    for part, members in data.split_stamps(stamps, FRACTIONS, seed=config.SPLIT_SEED).items():
        rows = [(caption, label_of[lang], stamp.name) for stamp in members
                for lang, caption in stamp.captions.items()
                if lang in label_of and normalize_text(caption)]
        texts[part] = [r[0] for r in rows]
        labels[part] = np.array([r[1] for r in rows], dtype=np.int64)
        names[part] = [r[2] for r in rows]
    return CaptionLanguages(list(languages), texts, labels, names)


def fit_tokenizer(dataset: CaptionLanguages) -> Tokenizer:
    """A character-level tokenizer whose vocabulary comes from the training captions only."""
    return Tokenizer(level="char").fit(dataset.texts["train"])


collate_tokens = functools.partial(collate_multimodal, pad_keys=("tokens",))
"""Collate caption samples, always giving ``tokens_lengths`` and ``tokens_mask``."""


def language_samples(dataset: CaptionLanguages, tokenizer: Tokenizer, part: str,
                     max_len: int) -> list[dict]:
    """Samples ``{"tokens": LongTensor (L,), "label": int}`` of one part, L ≤ ``max_len``."""
    return [{"tokens": tokenizer.encode(text, max_len), "label": int(label)}
            for text, label in zip(dataset.texts[part], dataset.labels[part])]


def language_loaders(dataset: CaptionLanguages, tokenizer: Tokenizer, s: Settings
                     ) -> dict[str, DataLoader]:
    """DataLoaders of dict batches for ``"train"`` (shuffled), ``"val"`` and ``"test"``.

    Each batch holds ``tokens`` int64 (B, L_max) with L_max ≤ ``s.max_len``,
    ``tokens_lengths`` (B,), ``tokens_mask`` (B, L_max) and ``label`` (B,); B is
    ``s.batch_size`` for training and twice that otherwise. The training order comes from
    PyTorch's global generator, which :func:`mmcourse.training.train.fit` reseeds every epoch.
    """
    return {part: DataLoader(language_samples(dataset, tokenizer, part, s.max_len),
                             batch_size=s.batch_size if part == "train" else 2 * s.batch_size,
                             shuffle=part == "train", collate_fn=collate_tokens)
            for part in ("train", "val", "test")}


def loaders(s: Settings) -> dict:
    """{"data": the captions of ``s`` (:func:`caption_language_data`), "tokenizer": a
    tokenizer fitted on the training part, "train", "val", "test": the three loaders
    (:func:`language_loaders`)}."""
    dataset = caption_language_data(s)
    tokenizer = fit_tokenizer(dataset)
    return {"data": dataset, "tokenizer": tokenizer,
            **language_loaders(dataset, tokenizer, s)}


def model(s: Settings, data: dict) -> MultimodalModel:
    """:func:`language_model` for the vocabulary and languages of ``data`` (what
    :func:`loaders` returns)."""
    return language_model(s, len(data["tokenizer"].vocab), len(data["data"].languages))


def language_model(s: Settings, vocab_size: int, num_classes: int) -> MultimodalModel:
    """Characters → embedding (``s.embed_dim``) → bidirectional ``s.cell`` → pooling →
    logits, built by :func:`mmcourse.nn.models.build_model` and initialised from ``s.seed``.

    A batch dict with ``tokens`` (B, L) and ``tokens_lengths`` (B,) → logits
    (B, num_classes); ``model.embed(batch)["text"]`` is the pooled caption embedding
    (B, 2 · ``s.hidden_size``). The states are max-pooled over the valid characters by
    default: a language shows itself by features that occur anywhere in the caption (a
    letter, an ending). The global random state is left as it was.
    """
    with torch.random.fork_rng():
        torch.manual_seed(s.seed)
        return build_model({"encoders": {"text": {
            "type": "text_rnn", "vocab_size": vocab_size, "embed_dim": s.embed_dim,
            "hidden_size": s.hidden_size, "cell": s.cell, "bidirectional": True,
            "pooling": s.pooling}}, "head": {"num_classes": num_classes}})


def run_name(s: Settings) -> str:
    """The name of a run's checkpoint and progress bar: ``caption-language-<cell>``."""
    return f"caption-language-{s.cell}"


def train(model: MultimodalModel, loaders: dict[str, DataLoader], s: Settings,
          progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]`` with :func:`mmcourse.training.train.fit`.

    AdamW with a one-cycle schedule over ``s.epochs``; the validation loader picks the
    best epoch. Load-or-train: a finished run's checkpoint
    (:func:`mmcourse.experiments.checkpoint` of ``s``) is loaded instead of training again.
    """
    return fit(model, loaders["train"], loaders["val"], epochs=s.epochs, lr=s.lr,
               weight_decay=s.weight_decay, seed=s.seed,
               checkpoint=checkpoint(run_name(s), s), progress=progress, desc=run_name(s))


def rnn_predictions(model: MultimodalModel, loader: DataLoader) -> np.ndarray:
    """Predicted label int64 (n,) of every caption of ``loader``, in the loader's order.

    Each batch runs on the model's device (:func:`mmcourse.training.train.predict`).
    """
    logits, _ = predict(model, loader)
    return labels_of(logits)


def embeddings(model: MultimodalModel, loader: DataLoader) -> np.ndarray:
    """The encoder's caption embeddings, float32 (n, 2 · hidden_size), in the loader's order.

    Each batch runs on the model's device (:func:`mmcourse.training.train.embed`).
    """
    outputs, _ = embed(model, loader)
    return outputs["text"].numpy()


def language_probabilities(model: MultimodalModel, tokenizer: Tokenizer, captions: list,
                           max_len: int) -> np.ndarray:
    """The model's probability of each language for each caption: float32 (n, C), rows
    summing to 1.

    Captions are cut to ``max_len`` characters; one that has no character left after
    cleaning raises ``ValueError``. The batch runs on the model's device.
    """
    samples = [{"tokens": tokenizer.encode(caption, max_len), "label": 0}
               for caption in captions]
    empty = [caption for caption, sample in zip(captions, samples)
             if len(sample["tokens"]) == 0]
    if empty:
        raise ValueError(f"no characters to read in {empty}")
    logits, _ = predict(model, [collate_tokens(samples)])
    return logits.softmax(-1).numpy()


def evaluate(model: MultimodalModel, loaders: dict[str, DataLoader]) -> dict:
    """``{"accuracy", "macro-F1"}`` (floats in [0, 1]) of ``model`` on ``loaders["test"]``."""
    logits, labels = predict(model, loaders["test"])
    return classification_scores(logits, labels, logits.shape[1])


def ngram_baseline(dataset: CaptionLanguages, s: Settings):
    """A bag of character n-grams with a logistic regression; returns (pipeline, test
    predictions int64 (n_test,)).

    Captions are cleaned by :func:`mmcourse.preprocessing.normalize_text` (as the
    tokenizer does), cut into character n-grams of ``s.ngrams`` lengths (across word
    boundaries), weighted by TF-IDF with sublinear counts and fitted on the training
    part. The logistic regression (one per language against the rest) is trained by SGD
    with L2 penalty ``s.ngram_alpha``, which takes seconds where an exact solver takes
    minutes.
    """
    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=tuple(s.ngrams),
                        preprocessor=normalize_text, sublinear_tf=True, min_df=2),
        SGDClassifier(loss="log_loss", alpha=s.ngram_alpha, random_state=s.seed))
    pipeline.fit(dataset.texts["train"], dataset.labels["train"])
    return pipeline, pipeline.predict(dataset.texts["test"])


def accuracy_ceiling(texts: list, labels: np.ndarray) -> float:
    """The best accuracy any classifier of the cleaned caption can reach on these captions.

    When the same cleaned string carries several labels ("a koala" is en, en_GB and
    en_AU), a function of the string can be right for at most the most frequent of them.
    """
    by_text = defaultdict(Counter)
    for text, label in zip(texts, labels):
        by_text[normalize_text(text)][int(label)] += 1
    return sum(max(c.values()) for c in by_text.values()) / len(labels)


def confused_pairs(labels: np.ndarray, predictions: np.ndarray, languages: list,
                   top: int = 10):
    """The ``top`` language pairs mixed up most often, as a pandas DataFrame.

    ``labels`` and ``predictions`` are (n,). Columns ``a``, ``b``, ``a→b`` (captions in a
    predicted as b), ``b→a`` and ``total``; rows sorted by total, largest first.
    """
    matrix = confusion_matrix(predictions, labels, len(languages))
    rows = [(languages[i], languages[j], matrix[i, j], matrix[j, i], matrix[i, j] + matrix[j, i])
            for i in range(len(languages)) for j in range(i + 1, len(languages))]
    table = pd.DataFrame(rows, columns=["a", "b", "a→b", "b→a", "total"])
    return table.sort_values("total", ascending=False, kind="stable").head(top).reset_index(
        drop=True)


def compare_cells(s: Settings, progress: bool = False) -> dict:
    """The encoder with each cell of ``s.compare_cells``, trained for ``s.compare_epochs``
    on ``s.compare_languages``, and the n-gram baseline on the same captions.

    Returns {cell: {"accuracy", "macro-F1", "parameters", "s / epoch"}} for the cells and
    {"accuracy", "macro-F1"} under ``"n-grams"``, all on the subset's test part. Each run
    has its own checkpoint (load-or-train).
    """
    base = dataclasses.replace(s, languages=s.compare_languages, epochs=s.compare_epochs)
    subset_loaders = loaders(base)
    dataset, tokenizer = subset_loaders["data"], subset_loaders["tokenizer"]
    rows = {}
    for cell in s.compare_cells:
        cell_settings = dataclasses.replace(base, cell=cell)
        net = language_model(cell_settings, len(tokenizer.vocab), len(dataset.languages))
        fitted = train(net, subset_loaders, cell_settings, progress=progress)
        rows[cell] = {**evaluate(net, subset_loaders), "parameters": count_parameters(net),
                      "s / epoch": float(np.mean(fitted.history["epoch_seconds"]))}
    _, predicted = ngram_baseline(dataset, base)
    rows["n-grams"] = classification_scores(predicted, dataset.labels["test"],
                                            len(dataset.languages))
    return rows


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """Train the character RNN and the n-gram baseline; report test accuracy, macro-F1 and
    the accuracy ceiling → :class:`Outcome`."""
    s = s or settings()
    data_loaders = loaders(s)
    dataset, net = data_loaders["data"], model(s, data_loaders)
    result = train(net, data_loaders, s, progress=progress)
    rnn_scores = evaluate(net, data_loaders)
    truth = dataset.labels["test"]
    _, ngram_predictions = ngram_baseline(dataset, s)
    ngram_scores = classification_scores(ngram_predictions, truth, len(dataset.languages))
    return Outcome("caption-language-rnn",
                   {"rnn test accuracy": rnn_scores["accuracy"],
                    "rnn macro-F1": rnn_scores["macro-F1"],
                    "n-gram test accuracy": ngram_scores["accuracy"],
                    "n-gram macro-F1": ngram_scores["macro-F1"],
                    "accuracy ceiling": accuracy_ceiling(dataset.texts["test"], truth),
                    "languages": len(dataset.languages), "test captions": len(truth),
                    "parameters": count_parameters(net)},
                   details={"best epoch": result.best_epoch, "val accuracy": result.best_score,
                            "history": result.history})
