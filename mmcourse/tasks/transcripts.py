"""Transcripts as character ids for speech recognition, one alphabet per language.

A recogniser that spells needs a small, fixed set of output symbols. Captions are
normalised to the letters of their language and the space (:func:`normalize_transcript`),
and a :class:`CharTokenizer` built from the training captions maps those characters to
ids 1..K, keeping id 0 = :data:`BLANK` for CTC's blank.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

BLANK = 0
"""Id of CTC's blank symbol; characters get the ids after it."""

_LATIN = "abcdefghijklmnopqrstuvwxyz"
ALPHABETS = {
    "es": _LATIN + "áéíóúüñ",
    "fr": _LATIN + "àâæçèéêëîïôœùûüÿ",
    "ca": _LATIN + "àçèéíïòóúü",
    "ro": _LATIN + "ăâîșț",
    "ru": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "bg": "абвгдежзийклмнопрстуфхцчшщъьюя",
    "en": _LATIN,
}
"""The lower-case letters each language's transcripts keep (besides the space)."""
_COMMA_BELOW = str.maketrans({"ş": "ș", "ţ": "ț"})  # Romanian: cedilla → comma below


def normalize_transcript(text: str, language: str) -> str:
    """A caption as the recogniser should spell it: ``str`` → ``str``.

    Unicode NFC and lower case; a letter outside the language's alphabet
    (:data:`ALPHABETS`) becomes its base letter when that one is in the alphabet
    (``"ä"`` → ``"a"`` in Spanish), otherwise a space; digits, punctuation and symbols
    become spaces; runs of spaces collapse and the ends are stripped.
    ``"Tux, ¡la mascota de Linux!"`` → ``"tux la mascota de linux"`` (``"es"``).
    """
    if language not in ALPHABETS:
        raise KeyError(f"no alphabet for language {language!r}; known: {', '.join(ALPHABETS)}")
    letters = ALPHABETS[language]
    text = unicodedata.normalize("NFC", text).lower().translate(_COMMA_BELOW)
    kept = []
    for c in text:
        if c not in letters:
            base = unicodedata.normalize("NFD", c)[0]
            c = base if base in letters else " "
        kept.append(c)
    return " ".join("".join(kept).split())


class CharTokenizer:
    """Characters of normalised transcripts ↔ ids, with 0 reserved for CTC's blank.

    ``symbols[i]`` is the character of id i (``symbols[0]`` is ``"_"``, the blank).
    The inventory is every character of the training transcripts (:meth:`fit`), so the
    output layer has ``len(tokenizer)`` units. A character never seen in training is
    dropped by :meth:`encode` (and counted in ``unknown``).
    """

    def __init__(self, language: str, symbols: Sequence[str] = ("_",)):
        self.language = language
        self.symbols = list(symbols)
        self.index = {c: i for i, c in enumerate(self.symbols)}
        self.unknown = 0

    @classmethod
    def fit(cls, texts: Iterable[str], language: str) -> CharTokenizer:
        """The tokenizer of every character of the normalised ``texts``, sorted."""
        chars = sorted(set("".join(normalize_transcript(t, language) for t in texts)))
        return cls(language, ["_", *chars])

    def __len__(self) -> int:
        return len(self.symbols)

    def normalize(self, text: str) -> str:
        """:func:`normalize_transcript` in this tokenizer's language."""
        return normalize_transcript(text, self.language)

    def encode(self, text: str) -> list[int]:
        """Ids of the normalised ``text``; unseen characters are dropped and counted."""
        ids = []
        for c in self.normalize(text):
            if c in self.index:
                ids.append(self.index[c])
            else:
                self.unknown += 1
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The string of ``ids``, blanks left out."""
        return "".join(self.symbols[int(i)] for i in ids if int(i) != BLANK)
