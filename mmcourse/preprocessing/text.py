"""Text preprocessing: cleaning, tokenising, a vocabulary, and token-dropout augmentation.

The three steps for text:

1. **Cleaning** — :func:`normalize_text` maps every spelling of the same caption to one
   string: Unicode NFKC, case folding, punctuation and symbols to spaces.
2. **Augmentation** — :func:`token_dropout` hides random tokens behind ``<unk>`` so a
   model cannot lean on any single word.
3. **Normalisation** — text becomes integers: a :class:`Vocabulary` maps tokens to ids,
   with ``<pad>`` = :data:`PAD` = 0 and ``<unk>`` = :data:`UNK` = 1 reserved.

For generating text (captions, translations) :class:`SequenceTokenizer` keeps the
punctuation as tokens, adds ``<bos>`` = :data:`BOS` = 2 and ``<eos>`` = :data:`EOS` = 3,
builds teacher-forcing batches, and turns generated ids back into a sentence
(:func:`detokenize`).
"""
from __future__ import annotations

import re
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
BOS = 2
"""Id of the begin-of-sentence token ``<bos>`` in a :class:`SequenceTokenizer`."""
EOS = 3
"""Id of the end-of-sentence token ``<eos>`` in a :class:`SequenceTokenizer`."""
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"


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

    ``reserved`` tokens (such as ``<bos>``, ``<eos>``) take the ids right after the two
    specials, in the order given, whether or not they occur in ``sequences``.

    ``tokens`` is the list of all tokens by id.
    """

    def __init__(self, sequences: Iterable[Iterable[str]] = (), min_freq: int = 1,
                 max_size: int | None = None, reserved: Iterable[str] = ()):
        reserved = tuple(reserved)
        fixed = (*SPECIALS, *reserved)
        if max_size is not None and max_size < len(fixed):
            raise ValueError(f"max_size must be at least {len(fixed)} (the specials)")
        counts = Counter(tok for seq in sequences for tok in seq)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in fixed),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - len(fixed)]
        self._set_tokens([*fixed, *ranked])

    def _set_tokens(self, tokens: list[str]) -> None:
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.tokens = list(tokens)
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def id(self, token: str) -> int:
        """The id of ``token`` (UNK when it is not in the vocabulary)."""
        return self._ids.get(token, UNK)

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


_WORD_OR_MARK = re.compile(r"\d+(?:[.,:]\d+)+|\w+['’](?=\w)|\w+|[^\w\s]")
_NO_SPACE_BEFORE = set(".,;:!?)]}%…»”-/")
_NO_SPACE_AFTER = set("([{¿¡«“-/")
_QUOTES = set("'\"’‘")


def sentence_tokens(s: str, level: str = "word", lowercase: bool = True) -> list[str]:
    """Split a sentence into the tokens a generator emits: ``str`` in, ``list[str]`` out.

    Unlike :func:`tokenize`, punctuation is kept: ``level="word"`` gives runs of letters,
    digits and combining marks of any script as words, a number keeps its decimal point
    or separators (``"0.20"``), an elided word keeps its apostrophe (``"L'avion."`` →
    ``["l'", "avion", "."]``), and every other non-space character is a token of its own;
    ``level="char"`` gives every character, with one ``" "`` token between words. Text is
    put in Unicode NFKC first and case-folded when ``lowercase``.
    """
    text = unicodedata.normalize("NFKC", s)
    text = " ".join((text.casefold() if lowercase else text).split())
    if level == "word":
        return _WORD_OR_MARK.findall(text)
    if level == "char":
        return list(text)
    raise ValueError(f"level must be one of {LEVELS}, not {level!r}")


def detokenize(tokens: Iterable[str], level: str = "word") -> str:
    """Join tokens from :func:`sentence_tokens` back into a sentence.

    At word level words are joined by spaces, with none before closing punctuation
    (``. , ; : ! ? )``), none after opening punctuation, a hyphen or an elided word
    (``["l'", "avion", "."]`` → ``"l'avion."``), and quotes alternately opening and
    closing. At character level the characters are concatenated. The result is
    normalised text, not always the original spelling.
    """
    tokens = list(tokens)
    if level == "char":
        return "".join(tokens)
    if level != "word":
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    out, glue_next, quotes = "", True, 0
    for tok in tokens:
        closing_quote = tok in _QUOTES and quotes % 2 == 1
        if not glue_next and tok not in _NO_SPACE_BEFORE and not closing_quote:
            out += " "
        out += tok
        if tok in _QUOTES:
            quotes += 1
            glue_next = not closing_quote
        else:
            glue_next = tok in _NO_SPACE_AFTER or (len(tok) > 1 and tok[-1] in _QUOTES)
    return out


class SequenceTokenizer:
    """Sentences ↔ ids for models that generate text, in any language.

    Tokens come from :func:`sentence_tokens` (punctuation kept), and the vocabulary
    reserves ``<pad>`` = :data:`PAD` = 0, ``<unk>`` = :data:`UNK` = 1, ``<bos>`` =
    :data:`BOS` = 2 and ``<eos>`` = :data:`EOS` = 3. ``fit(texts)`` builds :attr:`vocab`;
    ``encode`` gives ids (L,), ``decode`` a sentence, and :meth:`teacher_forcing` a padded
    batch of decoder inputs (``<bos>`` + tokens) and targets (tokens + ``<eos>``).
    """

    pad, unk, bos, eos = PAD, UNK, BOS, EOS

    def __init__(self, level: str = "word", lowercase: bool = True, min_freq: int = 1,
                 max_size: int | None = None):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        self.level = level
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_size = max_size
        self.vocab: Vocabulary | None = None

    def split(self, text: str) -> list[str]:
        """The tokens of ``text`` (:func:`sentence_tokens` with this tokenizer's options)."""
        return sentence_tokens(text, self.level, self.lowercase)

    def fit(self, texts: Iterable[str]) -> "SequenceTokenizer":
        """Build the vocabulary from ``texts`` (strings); return ``self``."""
        self.vocab = Vocabulary((self.split(t) for t in texts), self.min_freq,
                                self.max_size, reserved=(BOS_TOKEN, EOS_TOKEN))
        return self

    def _fitted(self) -> Vocabulary:
        if self.vocab is None:
            raise RuntimeError("the tokenizer has no vocabulary yet; call fit(texts) first")
        return self.vocab

    def __len__(self) -> int:
        return len(self._fitted())

    def encode(self, text: str, bos: bool = False, eos: bool = False,
               max_len: int | None = None) -> torch.Tensor:
        """``text`` → ``torch.long`` ids (L,): its tokens cut to ``max_len``, with
        ``<bos>`` in front and ``<eos>`` at the end when asked."""
        ids = self._fitted().encode(self.split(text))[:max_len]
        return torch.tensor([BOS] * bos + ids + [EOS] * eos, dtype=torch.long)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids (ints or a tensor (L,)) → tokens: stops at the first ``<eos>``, drops
        ``<bos>`` and ``<pad>``; unknown ids read ``<unk>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (BOS, PAD):
                out.extend(self._fitted().decode([i]))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Ids (L,) → a sentence (:meth:`tokens` joined by :func:`detokenize`)."""
        return detokenize(self.tokens(ids), self.level)

    def normalize(self, text: str) -> str:
        """The sentence this tokenizer would give back for ``text`` if every token were
        known: the reference form that generated sentences are compared to."""
        return detokenize(self.split(text), self.level)

    def teacher_forcing(self, texts: Iterable[str], max_len: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch for teacher forcing: ``(inputs, targets)``, both ``torch.long`` (B, T).

        Row b of ``inputs`` is ``<bos>`` followed by the (at most ``max_len``) tokens of
        ``texts[b]``; row b of ``targets`` is those tokens followed by ``<eos>``, so the
        decoder reading ``inputs[:, t]`` must predict ``targets[:, t]``. Both are padded
        with :data:`PAD` to the longest row, T = longest + 1.
        """
        rows = [self.encode(t, max_len=max_len) for t in texts]
        if not rows:
            raise ValueError("teacher_forcing needs at least one text")
        T = max(len(r) for r in rows) + 1
        inputs = torch.full((len(rows), T), PAD, dtype=torch.long)
        targets = torch.full((len(rows), T), PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            inputs[b, 0] = BOS
            inputs[b, 1:len(r) + 1] = r
            targets[b, :len(r)] = r
            targets[b, len(r)] = EOS
        return inputs, targets

    def to_dict(self) -> dict:
        """A JSON-ready dict that :meth:`from_dict` restores (options and vocabulary)."""
        return {"level": self.level, "lowercase": self.lowercase, "min_freq": self.min_freq,
                "max_size": self.max_size, "vocab": self._fitted().to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "SequenceTokenizer":
        """Rebuild a tokenizer saved with :meth:`to_dict`, with the same ids."""
        tok = cls(data["level"], data["lowercase"], data["min_freq"], data["max_size"])
        tok.vocab = Vocabulary.from_dict(data["vocab"])
        return tok


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
