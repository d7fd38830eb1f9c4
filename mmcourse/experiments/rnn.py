"""Chapter 02's recipe: the language of a stamp caption, read character by character.

Every stamp has its caption translated into up to ~78 languages; a caption's language is
the label. Languages with at least ``min_captions`` captions are kept (60 at 800). The
stamps — not the captions — are split by :func:`mmcourse.data.split_stamps` (seeded,
stratified by category), so all translations of an object fall into the same part and
no test object was seen in training, in any language.

Two classifiers share that split:

* a character-level :class:`~mmcourse.preprocessing.Tokenizer` and a bidirectional
  :class:`~mmcourse.encoders.TextRNNEncoder` (GRU, LSTM or tanh RNN) with a linear head,
  trained by :func:`mmcourse.train.fit`;
* a bag of character 1–3-grams (TF-IDF) with a logistic regression (scikit-learn).

Samples are dicts ``{"tokens": LongTensor (L,), "label": int}`` batched by
:func:`mmcourse.preprocessing.collate_multimodal` into ``tokens`` (B, L_max),
``tokens_lengths`` (B,), ``tokens_mask`` (B, L_max) and ``label`` (B,); the model takes
that dict. Fast mode keeps :data:`FAST_LANGUAGES` and fewer epochs.
"""
from __future__ import annotations

import functools
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader

from .. import config, data
from ..encoders import Classifier, TextRNNEncoder
from ..preprocessing import Tokenizer, collate_multimodal, normalize_text
from ..train import FitResult, fit, predict
from . import Outcome

MIN_CAPTIONS = 800
"""A language is kept when it has at least this many captions (60 languages)."""
FAST_LANGUAGES = ("ca", "ca@valencia", "de", "en", "es", "fr", "hr", "pt", "pt_BR",
                  "sr@latin")
"""The ten languages of fast mode, with three near-identical pairs among them."""
FRACTIONS = (0.7, 0.15, 0.15)
"""Train / validation / test shares of the stamps (all captions of a stamp stay together)."""
MAX_LEN = 64
"""Captions are cut to this many characters (95 % of them are shorter)."""
EPOCHS = 8
"""Epochs in full mode (fast: 2)."""
BATCH_SIZE = 128
"""Captions per training batch; evaluation uses twice as many."""
LR = 6e-3
"""Peak learning rate of the one-cycle schedule (AdamW)."""
COMPARE_EPOCHS = 5
"""Epochs of each cell in the RNN / GRU / LSTM comparison on :data:`FAST_LANGUAGES`
(fast: 2)."""
WEIGHT_DECAY = 1e-2
"""AdamW's decoupled weight decay."""


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


def caption_language_data(languages=None, min_captions: int = MIN_CAPTIONS, stamps=None,
                          seed: int = config.SEED) -> CaptionLanguages:
    """Every caption of the chosen languages, labelled by language and split by stamp.

    ``languages`` None keeps every language with at least ``min_captions`` captions over
    all stamps, in sorted order. Captions that clean to an empty string (only
    punctuation) are left out. The stamps are split by :func:`mmcourse.data.split_stamps`
    with :data:`FRACTIONS` and ``seed``.
    """
    stamps = data.load_stamps() if stamps is None else stamps
    counts = Counter(lang for s in stamps for lang in s.captions)
    if languages is None:
        languages = sorted(lang for lang, n in counts.items() if n >= min_captions)
    unknown = [lang for lang in languages if lang not in counts]
    if unknown:
        raise ValueError(f"no stamp has a caption in {unknown}; "
                         f"languages present: {', '.join(sorted(counts))}")
    label_of = {lang: k for k, lang in enumerate(languages)}
    texts, labels, names = {}, {}, {}
    for part, members in data.split_stamps(stamps, FRACTIONS, seed=seed).items():
        rows = [(caption, label_of[lang], s.name) for s in members
                for lang, caption in s.captions.items()
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
                     max_len: int = MAX_LEN) -> list[dict]:
    """Samples ``{"tokens": LongTensor (L,), "label": int}`` of one part, L ≤ ``max_len``."""
    return [{"tokens": tokenizer.encode(text, max_len), "label": int(label)}
            for text, label in zip(dataset.texts[part], dataset.labels[part])]


def language_loaders(dataset: CaptionLanguages, tokenizer: Tokenizer,
                     batch_size: int = BATCH_SIZE, max_len: int = MAX_LEN
                     ) -> dict[str, DataLoader]:
    """DataLoaders of dict batches for ``"train"`` (shuffled), ``"val"`` and ``"test"``.

    Each batch holds ``tokens`` int64 (B, L_max), ``tokens_lengths`` (B,), ``tokens_mask``
    (B, L_max) and ``label`` (B,). The training order comes from PyTorch's global
    generator, which :func:`mmcourse.train.fit` reseeds every epoch.
    """
    return {part: DataLoader(language_samples(dataset, tokenizer, part, max_len),
                             batch_size=batch_size if part == "train" else 2 * batch_size,
                             shuffle=part == "train", collate_fn=collate_tokens)
            for part in ("train", "val", "test")}


class TextClassifier(Classifier):
    """A :class:`~mmcourse.encoders.TextRNNEncoder` and a linear head on dict batches.

    ``batch["tokens"]`` (B, L) with ``batch["tokens_lengths"]`` (B,) → logits
    (B, num_classes); :meth:`embed` gives the encoder's embedding (B, out_dim).
    """

    def forward(self, batch: dict) -> Tensor:
        """Dict batch → logits (B, num_classes)."""
        return self.head(self.embed(batch))

    def embed(self, batch: dict) -> Tensor:
        """Dict batch → pooled RNN embedding (B, out_dim)."""
        return self.encoder(batch["tokens"], batch["tokens_lengths"])


def language_model(vocab_size: int, num_classes: int, cell: str = "gru",
                   embed_dim: int = 64, hidden_size: int = 64, pooling: str = "max",
                   dropout: float = 0.0) -> TextClassifier:
    """Characters → embedding (``embed_dim``) → bidirectional ``cell`` → pooling → logits.

    The embedding is max-pooled over the valid characters by default: a language shows
    itself by features that occur anywhere in the caption (a letter, an ending). The
    embedding has ``2 · hidden_size`` numbers.
    """
    encoder = TextRNNEncoder(vocab_size, embed_dim, hidden_size, cell=cell, bidirectional=True,
                             pooling=pooling, dropout=dropout)
    return TextClassifier(encoder, num_classes)


def run_name(dataset: CaptionLanguages, cell: str) -> str:
    """Checkpoint name of a run: the cell and a short digest of the language list."""
    digest = hashlib.sha1("|".join(dataset.languages).encode()).hexdigest()[:8]
    return f"caption-language-{cell}-{digest}"


def train_language_rnn(model: TextClassifier, loaders: dict, name: str,
                       epochs: int | None = None, lr: float = LR,
                       progress: bool = True) -> FitResult:
    """Train ``model`` on ``loaders["train"]`` with :func:`mmcourse.train.fit`.

    AdamW with a one-cycle schedule over ``epochs`` (default :data:`EPOCHS`, fast: 2);
    the validation loader picks the best epoch. Load or train: a finished checkpoint
    ``config.checkpoint_path(name)`` is loaded, not retrained.
    """
    config.seed_everything()
    epochs = config.pick(EPOCHS, 2) if epochs is None else epochs
    return fit(model, loaders["train"], loaders["val"], epochs=epochs, lr=lr,
               weight_decay=WEIGHT_DECAY, checkpoint=config.checkpoint_path(name),
               progress=progress, desc=name)


def rnn_predictions(model: TextClassifier, loader: DataLoader) -> np.ndarray:
    """Predicted label (n,) of every caption of ``loader``."""
    logits, _ = predict(model, loader)
    return logits.argmax(-1).numpy()


def embeddings(model: TextClassifier, loader: DataLoader) -> np.ndarray:
    """The encoder's caption embeddings, float32 (n, out_dim), in the loader's order."""
    outputs, _ = predict(model, loader, forward=lambda m, b: (m.embed(b), b["label"]))
    return outputs.numpy()


def ngram_baseline(dataset: CaptionLanguages, ngrams: tuple[int, int] = (1, 3),
                   alpha: float = 1e-6):
    """A bag of character n-grams with a logistic regression; returns (pipeline, test predictions).

    Captions are cleaned by :func:`mmcourse.preprocessing.normalize_text` (as the
    tokenizer does), cut into character ``ngrams`` (1–3 by default, across word
    boundaries), weighted by TF-IDF with sublinear counts and fitted on the training
    part. The logistic regression (one per language against the rest) is trained by SGD
    with L2 penalty ``alpha``, which takes seconds where an exact solver takes minutes.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=ngrams, preprocessor=normalize_text,
                        sublinear_tf=True, min_df=2),
        SGDClassifier(loss="log_loss", alpha=alpha, random_state=config.SEED))
    pipeline.fit(dataset.texts["train"], dataset.labels["train"])
    return pipeline, pipeline.predict(dataset.texts["test"])


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy and macro-averaged F1 of ``predictions`` (n,) against ``labels`` (n,)."""
    from sklearn.metrics import f1_score

    return {"accuracy": float((predictions == labels).mean()),
            "macro-F1": float(f1_score(labels, predictions, average="macro"))}


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

    Columns ``a``, ``b``, ``a→b`` (captions in a predicted as b), ``b→a`` and ``total``;
    rows sorted by total, largest first.
    """
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predictions, labels=range(len(languages)))
    rows = [(languages[i], languages[j], matrix[i, j], matrix[j, i], matrix[i, j] + matrix[j, i])
            for i in range(len(languages)) for j in range(i + 1, len(languages))]
    table = pd.DataFrame(rows, columns=["a", "b", "a→b", "b→a", "total"])
    return table.sort_values("total", ascending=False, kind="stable").head(top).reset_index(
        drop=True)


def settings() -> dict:
    """The active mode's languages (None: all with ≥ :data:`MIN_CAPTIONS`), epochs of the
    main run, and epochs of each run of the cell comparison."""
    return {"languages": config.pick(None, list(FAST_LANGUAGES)),
            "epochs": config.pick(EPOCHS, 2), "compare epochs": config.pick(COMPARE_EPOCHS, 2)}


def run(progress: bool = False) -> Outcome:
    """Train the character GRU and the n-gram baseline; report test accuracy and macro-F1."""
    chosen = settings()
    dataset = caption_language_data(chosen["languages"])
    tokenizer = fit_tokenizer(dataset)
    loaders = language_loaders(dataset, tokenizer)
    model = language_model(len(tokenizer.vocab), len(dataset.languages))
    result = train_language_rnn(model, loaders, run_name(dataset, "gru"), chosen["epochs"],
                                progress=progress)
    truth = dataset.labels["test"]
    rnn = scores(truth, rnn_predictions(model, loaders["test"]))
    _, ngram_predictions = ngram_baseline(dataset)
    ngram = scores(truth, ngram_predictions)
    return Outcome("caption-language-rnn",
                   {"rnn test accuracy": rnn["accuracy"], "rnn macro-F1": rnn["macro-F1"],
                    "n-gram test accuracy": ngram["accuracy"],
                    "n-gram macro-F1": ngram["macro-F1"],
                    "accuracy ceiling": accuracy_ceiling(dataset.texts["test"], truth),
                    "languages": len(dataset.languages), "test captions": len(truth)},
                   details={"history": result.history})


RUNS = {"caption-language-rnn": run}
"""Recipe name → function(progress) → Outcome (see :mod:`mmcourse.experiments`)."""
