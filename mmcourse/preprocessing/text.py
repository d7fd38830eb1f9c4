"""Text preprocessing: cleaning, tokenising, a vocabulary, and token-dropout augmentation.

The three steps for text:

1. **Cleaning** — :func:`normalize_text` maps every spelling of the same caption to one
   string: Unicode NFKC, case folding, punctuation and symbols to spaces.
2. **Augmentation** — :func:`token_dropout` hides random tokens behind ``<unk>`` so a
   model cannot lean on any single word.
3. **Normalisation** — text becomes integers: a :class:`Vocabulary` maps tokens to ids,
   with ``<pad>`` = :data:`PAD` = 0 and ``<unk>`` = :data:`UNK` = 1 reserved.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Iterable

import torch

PAD = 0
"""Id of the padding token ``<pad>``."""
UNK = 1
"""Id of the unknown-token ``<unk>``."""
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIALS = (PAD_TOKEN, UNK_TOKEN)
LEVELS = ("word", "char")


def normalize_text(s: str) -> str:
    """Clean a string: ``str`` in, ``str`` out.

    Applies Unicode NFKC (full-width letters and ligatures become plain ones, accented
    letters are composed), then case folding (``"Straße"`` → ``"strasse"``). Letters,
    digits and combining marks of every script are kept (so CJK, Devanagari and accented
    Latin survive); every other character — punctuation, symbols, control characters —
    becomes a space. Runs of whitespace collapse to one space and the ends are stripped.
    """
    folded = unicodedata.normalize("NFKC", s).casefold()
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in folded)
    return " ".join(kept.split())


def tokenize(s: str, level: str = "word") -> list[str]:
    """Split the normalised form of ``s`` into tokens: ``str`` in, ``list[str]`` out.

    ``level="word"`` splits on spaces. ``level="char"`` returns one token per character
    and keeps each word boundary as a ``" "`` token, so ``"".join(tokens)`` gives back
    the normalised text. Scripts written without spaces (Chinese, Japanese) form a single
    "word"; use the character level for them.
    """
    text = normalize_text(s)
    if level == "word":
        return text.split()
    if level == "char":
        return list(text)
    raise ValueError(f"level must be one of {LEVELS}, not {level!r}")


class Vocabulary:
    """A token ↔ id mapping built from an iterable of token lists.

    Ids ``0`` and ``1`` are ``<pad>`` and ``<unk>``; the other tokens follow in a fixed
    order: by frequency (most frequent first), ties broken by the token itself, so the
    same corpus always gives the same ids. Tokens seen fewer than ``min_freq`` times are
    left out, and ``max_size`` caps ``len(vocab)`` (the two specials included).

    ``tokens`` is the list of all tokens by id.
    """

    def __init__(self, sequences: Iterable[Iterable[str]] = (), min_freq: int = 1,
                 max_size: int | None = None):
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size must be at least {len(SPECIALS)} (the specials)")
        counts = Counter(tok for seq in sequences for tok in seq)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        self._set_tokens([*SPECIALS, *ranked])

    def _set_tokens(self, tokens: list[str]) -> None:
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.tokens = list(tokens)
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids (``list[str]`` → ``list[int]``); unknown tokens become UNK."""
        return [self._ids.get(tok, UNK) for tok in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids (ints or an integer tensor (L,)) to tokens, dropping ``<pad>``."""
        tokens = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self)})")
            if i != PAD:
                tokens.append(self.tokens[i])
        return tokens

    def to_dict(self) -> dict:
        """A JSON-ready ``{"tokens": [...]}`` that :meth:`from_dict` restores."""
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        """Rebuild a vocabulary saved with :meth:`to_dict`, with the same ids."""
        vocab = cls()
        vocab._set_tokens(data["tokens"])
        return vocab


class Tokenizer:
    """Text ↔ id tensor, at word or character level.

    ``fit(texts)`` builds :attr:`vocab` (a :class:`Vocabulary`, ``None`` before fitting)
    from the training texts; ``encode`` turns a string into a ``torch.long`` tensor (L,)
    and ``decode`` turns ids back into normalised text.
    """

    def __init__(self, level: str = "word", min_freq: int = 1, max_size: int | None = None):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        self.level = level
        self.min_freq = min_freq
        self.max_size = max_size
        self.vocab: Vocabulary | None = None

    def fit(self, texts: Iterable[str]) -> "Tokenizer":
        """Build the vocabulary from ``texts`` (strings); return ``self``."""
        self.vocab = Vocabulary((tokenize(t, self.level) for t in texts),
                                self.min_freq, self.max_size)
        return self

    def _fitted(self) -> Vocabulary:
        if self.vocab is None:
            raise RuntimeError("the tokenizer has no vocabulary yet; call fit(texts) first")
        return self.vocab

    def encode(self, text: str, max_len: int | None = None) -> torch.Tensor:
        """Encode a string to a ``torch.long`` tensor (L,), cut to at most ``max_len``.

        No padding is added here: batches are padded by
        :func:`mmcourse.preprocessing.collate.pad_sequences`.
        """
        ids = self._fitted().encode(tokenize(text, self.level))
        return torch.tensor(ids[:max_len], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids (L,) back to normalised text; pads are dropped, unknowns read ``<unk>``."""
        sep = " " if self.level == "word" else ""
        return sep.join(self._fitted().decode(ids))


def token_dropout(ids: torch.Tensor, p: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each non-pad token by UNK with probability ``p``.

    ``ids`` is an integer tensor of any shape, usually (L,); the result has the same shape
    and dtype and ``ids`` is not changed. The draws come from ``generator`` (on the same
    device as ``ids``) when given, so a seeded generator gives the same result every run.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], not {p}")
    drop = torch.rand(ids.shape, generator=generator, device=ids.device) < p
    return ids.masked_fill(drop & (ids != PAD), UNK)
