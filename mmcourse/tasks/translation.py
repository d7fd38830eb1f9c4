"""Multimodal machine translation (机器翻译) of the stamps' captions, English → French.

Every stamp gives a caption in English, its French translation and a picture: a tiny
Multi30k. This module holds what chapter 09 builds on:

* the data — :func:`caption_pairs` (the stamps' caption pairs), :func:`clean_caption`
  (one spelling per caption), :func:`stamp_folds` (held-out stamps, k folds);
* the baselines — :func:`copy_baseline` (the English as it is) and
  :func:`retrieval_baseline` (the French caption of the nearest English training caption);
* retrieve and repair — :class:`WordLexicon` (word translation probabilities learned
  by IBM Model 1) and :func:`repair_translation`, which edits the retrieved French
  caption where the new English caption differs from the retrieved one;
* the neural model — :class:`Translator`: a bidirectional GRU over the English words, the
  course's attention decoder (:class:`mmcourse.nn.seq2seq.AttentionDecoder`) over its
  states, extended so that it can **copy** a source word it has never seen
  (:class:`CopyDecoder`, a pointer-generator over an extended vocabulary): unseen
  nouns are often cognates (koala → koala), and names, numbers and letters pass
  through unchanged. Optionally the picture is one more memory row
  (:func:`mmcourse.nn.seq2seq.concat_memory`), which the decoder may attend to and which
  enters its initial state.
"""
from __future__ import annotations

import difflib
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from torch import Tensor, nn

from mmcourse.nn.encoders import sentence_encoder
from mmcourse.nn.neighbours import nearest_neighbour
from mmcourse.nn.seq2seq import AttentionDecoder, concat_memory
from mmcourse.preprocessing.text import (BOS, EOS, PAD, UNK, SequenceTokenizer, detokenize,
                                         sentence_tokens)
from mmcourse.training.train import model_device, to_device

from .decoding import beam_search, greedy_decode

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                         "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-",
                         "\u0153": "oe", "\u0152": "Oe"})


def clean_caption(text: str) -> str:
    """One spelling per caption: ``str`` → ``str``.

    Unicode NFC (an accented letter is one character, ``é`` not ``e`` + ``◌́``); curly
    quotes and guillemets become straight quotes, dashes a hyphen, the ligature ``œ``
    the two letters ``oe`` (the captions write ``oeuf`` and ``œuf``); every run of
    whitespace, the narrow no-break space French puts before ``!``, ``?`` and ``:``
    included, becomes one space. Case and punctuation are kept: they are part of the
    translation.
    """
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    return " ".join(text.split())


def caption_pairs(stamps, source: str = "en", target: str = "fr") -> tuple[list, list, list]:
    """The stamps that have a caption in both languages, and those captions cleaned
    (:func:`clean_caption`): (stamps, source captions, target captions), three lists of
    the same length, in the order of ``stamps``."""
    kept = [s for s in stamps if source in s.captions and target in s.captions]
    return (kept, [clean_caption(s.caption_in(source)) for s in kept],
            [clean_caption(s.caption_in(target)) for s in kept])


def stamp_folds(n: int, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, test) splits of ``n`` stamps, each stamp tested once: the
    indices 0..n−1 shuffled with ``numpy.random.default_rng(seed)`` and cut into
    ``folds`` near-equal parts. Each test part is about 1/``folds`` of the stamps
    (20 % for 5 folds); int64 index arrays, sorted."""
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [(np.sort(np.concatenate(parts[:k] + parts[k + 1:])), np.sort(part))
            for k, part in enumerate(parts)]


def copy_baseline(sources: Sequence[str]) -> list[str]:
    """The translation that leaves the English as it is."""
    return list(sources)


def sentence_vectors(fit_on: Sequence[str], captions: Sequence[str],
                     method: str = "minilm") -> np.ndarray:
    """Unit-length vectors float32 (N, D) of ``captions`` for nearest-neighbour search.

    ``method="tfidf"``: TF-IDF vectors of character 1–4-grams within words
    (scikit-learn ``analyzer="char_wb"``, lower-cased), fitted on ``fit_on`` — similar
    spelling ("A green apple." finds "A red apple."). ``method="minilm"``:
    all-MiniLM-L6-v2 sentence embeddings (``fit_on`` is not used) — similar meaning.
    """
    if method == "tfidf":
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=True)
        vectorizer.fit(fit_on)
        return vectorizer.transform(captions).toarray().astype(np.float32)
    if method == "minilm":

        return sentence_encoder().encode(list(captions), convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False)
    raise ValueError(f"method must be 'tfidf' or 'minilm', not {method!r}")


def retrieval_baseline(train_sources: Sequence[str], train_targets: Sequence[str],
                       test_sources: Sequence[str], method: str = "minilm") -> list[str]:
    """Nearest-neighbour translation: for each test caption, the target caption of the
    most similar training source caption (:func:`sentence_vectors`,
    :func:`~mmcourse.nn.neighbours.nearest_neighbour`)."""
    train = sentence_vectors(train_sources, train_sources, method)
    test = sentence_vectors(train_sources, test_sources, method)
    return [train_targets[j] for j in nearest_neighbour(test, train, unit=True)]


NULL_WORD = "<null>"
"""The empty English word of :class:`WordLexicon`: it explains French words that
translate no English word (articles, elisions)."""


def is_word(token: str) -> bool:
    """Whether a token of :func:`~mmcourse.preprocessing.text.sentence_tokens` holds a
    letter or a digit (a word or a number, not punctuation)."""
    return any(c.isalnum() for c in token)


class WordLexicon:
    r"""Word translation probabilities $t(f \mid e)$ learned from sentence pairs alone
    by **IBM Model 1** (Brown et al., 1993).

    Model 1 says that each French word $f_j$ of a pair is the translation of one English
    word $e_{a_j}$ (or of the empty word $e_0$ = :data:`NULL_WORD`), every alignment
    $a_j$ equally likely: $p(f \mid e) \propto \prod_j \sum_{i=0}^{I} t(f_j \mid e_i)$.
    Nobody tells it which word translates which; expectation–maximisation finds out.
    The E-step shares each French word among the English words of its sentence in
    proportion to the current $t$, $\gamma_{ij} = t(f_j \mid e_i) / \sum_{i'}
    t(f_j \mid e_{i'})$; the M-step sets $t(f \mid e)$ to the shares $f$ received from
    $e$ over the corpus, normalised over $f$. Starting from uniform $t$, words that
    co-occur more often than chance pull their probability together ("la maison" and
    "la fleur" leave "la" to "the" and "maison" to "house").

    Tokens are lower-cased :func:`~mmcourse.preprocessing.text.sentence_tokens`.
    """

    def __init__(self, iterations: int = 10):
        self.iterations = iterations
        self.t: dict[tuple[str, str], float] = {}
        self.best: dict[str, tuple[str, float]] = {}

    def fit(self, sources: Sequence[str], targets: Sequence[str]) -> "WordLexicon":
        """Learn $t(f \\mid e)$ from the sentence pairs (``sources[n]``, ``targets[n]``)
        with :attr:`iterations` EM steps; return ``self``."""
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} source sentences but {len(targets)} targets")
        pairs = [([NULL_WORD, *sentence_tokens(e)], sentence_tokens(f))
                 for e, f in zip(sources, targets)]
        t: dict = defaultdict(lambda: 1.0)
        for _ in range(self.iterations):
            counts, totals = defaultdict(float), defaultdict(float)
            for e_words, f_words in pairs:
                for f in f_words:
                    z = sum(t[f, e] for e in e_words)
                    for e in e_words:
                        share = t[f, e] / z
                        counts[f, e] += share
                        totals[e] += share
            t = defaultdict(float, {(f, e): c / totals[e] for (f, e), c in counts.items()})
        self.t = dict(t)
        self.best = {}
        for (f, e), p in self.t.items():
            if e not in self.best or p > self.best[e][1]:
                self.best[e] = (f, p)
        return self

    def prob(self, f: str, e: str) -> float:
        """$t(f \\mid e)$ (0 for a pair never seen together)."""
        return self.t.get((f.lower(), e.lower()), 0.0)

    def translate_word(self, e: str, min_prob: float = 0.1) -> str:
        """The most probable French word for the English token ``e``, when its
        probability is at least ``min_prob``; otherwise ``e`` itself, copied — a name,
        a number, or a word the training pairs never held, which is often a cognate
        (*koala*)."""
        f, p = self.best.get(e.lower(), (e, 0.0))
        return f if p >= min_prob and is_word(e) else e

    def align(self, source: Sequence[str], target: Sequence[str]) -> list[int]:
        """The Viterbi alignment of Model 1: for each target token, the position of the
        source token it most probably translates, or −1 for the empty word and for
        punctuation. Both are token lists (any case)."""
        out = []
        for f in target:
            scores = [self.prob(f, e) for e in source]
            i = int(np.argmax(scores)) if scores else -1
            keep = is_word(f) and i >= 0 and scores[i] > self.prob(f, NULL_WORD)
            out.append(i if keep else -1)
        return out


def repair_translation(source: str, neighbour_source: str, neighbour_target: str,
                       lexicon: WordLexicon, min_prob: float = 0.1) -> str:
    """Edit a retrieved translation to fit a new source, as a translation memory's
    "fuzzy match repair" does: ``str`` → ``str``.

    The English words of ``neighbour_source`` are matched against those of ``source``
    (:class:`difflib.SequenceMatcher`, lower-cased tokens). Where a run of neighbour
    words is replaced by a run of new words ("The letter **P**." → "The letter
    **Q**."), the French words of ``neighbour_target`` that the lexicon aligns with
    the old run (:meth:`WordLexicon.align`) give way to the lexicon's translations of
    the new run (:meth:`WordLexicon.translate_word`, which copies unknown words): the
    first aligned French word takes them all, the others are dropped. Words only deleted
    or only inserted are left alone, and a French word aligned to nothing is never
    touched. With the same English words, ``neighbour_target`` comes back unchanged.
    """
    new, old = sentence_tokens(source), sentence_tokens(neighbour_source)
    if new == old:
        return neighbour_target
    french = sentence_tokens(neighbour_target, lowercase=False)
    alignment = lexicon.align(old, french)
    put, drop = {}, set()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new,
                                                      autojunk=False).get_opcodes():
        positions = [p for p, i in enumerate(alignment) if i1 <= i < i2]
        if op == "replace" and positions:
            put[positions[0]] = [lexicon.translate_word(e, min_prob) for e in new[j1:j2]]
            drop.update(positions[1:])
    out = []
    for p, token in enumerate(french):
        out.extend(put.get(p, [] if p in drop else [token]))
    text = detokenize(out)
    return text[:1].upper() + text[1:]


def extended_ids(source_tokens: Sequence[str], target_vocab) -> list[int]:
    """The id of each source token in the decoder's **extended vocabulary**: its id in
    ``target_vocab`` (a :class:`~mmcourse.preprocessing.text.Vocabulary`) when the
    target language has it, else ``V + i`` with ``i`` the position of the token's first
    occurrence in the source (``V = len(target_vocab)``). A word the decoder cannot
    generate can then still be copied."""
    first: dict[str, int] = {}
    out = []
    for i, tok in enumerate(source_tokens):
        first.setdefault(tok, i)
        out.append(target_vocab.id(tok) if tok in target_vocab
                   else len(target_vocab) + first[tok])
    return out


class CopyDecoder(AttentionDecoder):
    r"""The course's attention decoder with a pointer over an extended vocabulary.

    ``sources`` (B, M) gives each memory row's id in the extended vocabulary of size
    V + M (:func:`extended_ids`; :data:`PAD` for rows that are not source words, such as
    a picture). The next-token distribution is

    .. math::

        p(w) = g\,p_{\text{vocab}}(w) + (1 - g) \sum_{m:\ s_m = w} \beta_{t,m},
        \qquad g = \sigma(w_g^\top [h_t; c_t; E y_{t-1}])

    over the V vocabulary words and the M source positions: a source word outside the
    vocabulary (id ≥ V) can only be copied. ``output`` returns log-probabilities
    (K, V + M); a copied word read back as the next input is embedded as ``<unk>``.
    """

    def __init__(self, vocab_size: int, memory_dim: int, **kwargs):
        super().__init__(vocab_size, memory_dim, copy=True, **kwargs)

    def advance(self, tokens: Tensor, h: Tensor, memory: Tensor, mask: Tensor | None,
                projected: Tensor | None = None):
        return super().advance(tokens.masked_fill(tokens >= self.vocab_size, UNK), h,
                               memory, mask, projected)

    def output(self, h: Tensor, context: Tensor, embedded: Tensor, weights: Tensor,
               memory: Tensor, mask: Tensor | None, sources: Tensor | None = None) -> Tensor:
        features = torch.cat([h, context, embedded], dim=-1)
        logits = self.proj(self.dropout(torch.tanh(self.deep(features))))
        extra = 0 if sources is None else sources.shape[1]
        return self.copy_mixture(logits, features, h, memory, mask, sources, extra)


class Translator(nn.Module):
    """English words (and optionally a retrieved French caption and a picture) → French
    words.

    A bidirectional GRU reads the source word ids (B, S) into states (B, S, hidden), the
    memory of a :class:`CopyDecoder`. Two optional extra memories join it along M
    (:func:`mmcourse.nn.seq2seq.concat_memory`):

    * ``neighbour=True`` — the French caption of the nearest training stamp (its words
      (B, N), read by a second bidirectional GRU): rows the decoder can attend to and
      copy, so that it can start from a translation of a similar caption and edit it
      (*retrieve and edit*);
    * ``image_dim`` > 0 — the picture vector (B, image_dim) as one row ``tanh(W_v v)``:
      the decoder may attend to it at every step, and it enters the initial state (the
      mean of the memory rows). It is never copied.

    During training each source word is hidden behind ``<unk>`` with probability
    ``word_dropout``, so that the model learns what to do with a word it does not know:
    copy it.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, image_dim: int = 0,
                 neighbour: bool = False, embed_dim: int = 64, hidden_size: int = 128,
                 dropout: float = 0.2, word_dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(src_vocab, embed_dim, padding_idx=PAD)
        self.rnn = nn.GRU(embed_dim, hidden_size // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.neighbour = (nn.ModuleDict({
            "embed": nn.Embedding(tgt_vocab, embed_dim, padding_idx=PAD),
            "rnn": nn.GRU(embed_dim, hidden_size // 2, batch_first=True, bidirectional=True)})
            if neighbour else None)
        self.image = (nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, hidden_size),
                                    nn.Tanh()) if image_dim else None)
        self.decoder = CopyDecoder(tgt_vocab, hidden_size, embed_dim=embed_dim,
                                   hidden_dim=hidden_size, attention_dim=hidden_size,
                                   dropout=dropout)

    @property
    def reads_image(self) -> bool:
        """Whether the picture is part of the memory."""
        return self.image is not None

    @property
    def reads_neighbour(self) -> bool:
        """Whether the retrieved caption is part of the memory."""
        return self.neighbour is not None

    def _read(self, embed: nn.Embedding, rnn: nn.GRU, ids: Tensor, lengths: Tensor):
        """Ids (B, L) with lengths (B,) → GRU states (B, L, hidden) and mask (B, L)."""
        x = self.dropout(embed(ids))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, _ = rnn(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True,
                                                     total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device)[:, None]
        return self.dropout(states), mask

    def encode(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """A batch of :class:`PairBatches` → memory (B, M, hidden), mask (B, M) and each
        memory row's extended id (B, M): M = S source rows (+ N neighbour rows, whose ids
        are their words') (+ 1 picture row, id :data:`PAD`)."""
        src = batch["src"]
        if self.training and self.word_dropout:
            drop = torch.rand(src.shape, device=src.device) < self.word_dropout
            src = src.masked_fill(drop & (src != PAD), UNK)
        parts = [self._read(self.embed, self.rnn, src, batch["src_len"])]
        ids = [batch["sources"]]
        if self.reads_neighbour:
            if "nbr" not in batch:
                raise ValueError("this model reads a retrieved caption: the batch needs "
                                 "'nbr' and 'nbr_len'")
            parts.append(self._read(self.neighbour["embed"], self.neighbour["rnn"],
                                    batch["nbr"], batch["nbr_len"]))
            ids.append(batch["nbr"].masked_fill(~parts[-1][1], PAD))
        if self.reads_image:
            if batch.get("image") is None:
                raise ValueError("this model reads a picture: the batch needs 'image' "
                                 "(B, image_dim)")
            parts.append((self.image(batch["image"])[:, None, :], None))
            ids.append(torch.full_like(ids[0][:, :1], PAD))
        memory, mask = concat_memory(parts)
        return memory, mask, torch.cat(ids, 1)

    def forward(self, batch: dict) -> Tensor:
        """Teacher forcing on a batch of :class:`PairBatches`: log-probabilities
        (B, T, V + M) of every next target token given the true previous ones."""
        memory, mask, sources = self.encode(batch)
        return self.decoder(memory, mask, batch["tgt_in"], sources)[0]

    @torch.no_grad()
    def generate(self, batch: dict, max_len: int = 40, beam_size: int = 1) -> list[list[int]]:
        """Translations of a batch as extended ids (without ``<bos>``/``<eos>``): greedy
        for ``beam_size`` 1, else beam search stamp by stamp. ``<unk>`` is never
        generated (a word the model does not know is copied or left out)."""
        memory, mask, sources = self.encode(batch)

        def no_unk(step):
            def wrapped(tokens, state):
                log_probs, state = step(tokens, state)
                return log_probs.index_fill(1, torch.tensor([UNK], device=log_probs.device),
                                            float("-inf")), state
            return wrapped

        if beam_size == 1:
            step = no_unk(self.decoder.stepper(memory, mask, sources))
            found = greedy_decode(step, self.decoder.init_state(memory, mask), BOS, EOS,
                                  max_len)
            return [tokens for tokens, _ in found]
        out = []
        for b in range(memory.shape[0]):
            m, k, s = memory[b:b + 1], mask[b:b + 1], sources[b:b + 1]
            step = no_unk(self.decoder.stepper(m, k, s))
            found = beam_search(step, self.decoder.init_state(m, k), BOS, EOS, beam_size,
                                max_len)
            out.append(found[0][0])
        return out


class PairBatches:
    """Dict batches of caption pairs for a :class:`Translator`, grouped by length.

    ``source`` and ``target`` are lists of captions, ``image`` float32 (N, image_dim) or
    None, ``index`` the rows served; ``src_tok`` and ``tgt_tok`` fitted
    :class:`~mmcourse.preprocessing.text.SequenceTokenizer` s. Each batch is a dict:
    "src" int64 (B, S) source word ids, "src_len" (B,), "sources" (B, S) their extended
    ids (:func:`extended_ids`), "tgt_in" (B, T) ``<bos>`` + target ids (a word outside
    the vocabulary is ``<unk>``), "tgt_out" (B, T) target extended ids + ``<eos>`` (a
    word outside the vocabulary is copied from the source when it is there, else
    ``<unk>``), "image" (B, image_dim) when given, "nbr" (B, N) and "nbr_len" (B,) the
    target words of row ``neighbours[i]`` (the retrieved caption) when ``neighbours``
    (int array (N_all,)) is given, "rows" (B,). With ``shuffle`` the rows
    are sorted by target length plus a random jitter from PyTorch's global generator
    (which :func:`mmcourse.training.train.fit` seeds every epoch), cut into batches, and the
    batches served in random order; without it, in ``index`` order.
    """

    def __init__(self, source: Sequence[str], target: Sequence[str], image, index,
                 src_tok: SequenceTokenizer, tgt_tok: SequenceTokenizer, batch_size: int,
                 shuffle: bool = False, neighbours=None):
        self.source, self.target, self.image = source, target, image
        self.neighbours = neighbours
        self.index = np.asarray(index)
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.batch_size, self.shuffle = batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.index) // self.batch_size)

    def batches(self) -> list[np.ndarray]:
        """The rows of each batch of one pass."""
        rows = self.index
        if self.shuffle:
            lengths = torch.tensor([len(self.target[i]) for i in rows], dtype=torch.float)
            rows = rows[torch.argsort(lengths + 8 * torch.rand(len(rows))).numpy()]
        chunks = [rows[b:b + self.batch_size] for b in range(0, len(rows), self.batch_size)]
        if self.shuffle:
            chunks = [chunks[k] for k in torch.randperm(len(chunks)).tolist()]
        return chunks

    def source_tokens(self, row: int) -> list[str]:
        """The source caption of ``row`` as tokens."""
        return self.src_tok.split(self.source[row])

    def batch(self, rows) -> dict:
        """The batch dict of ``rows`` (see the class docstring), on the CPU."""
        rows = np.asarray(rows)
        vocab = self.tgt_tok.vocab
        src, ext, tin, tout, nbr = [], [], [], [], []
        for i in rows:
            if self.neighbours is not None:
                nbr.append(vocab.encode(self.tgt_tok.split(self.target[self.neighbours[i]])))
            tokens = self.source_tokens(i)
            src.append(self.src_tok.vocab.encode(tokens))
            ext.append(extended_ids(tokens, vocab))
            position = {tok: e for tok, e in zip(tokens, ext[-1])}
            target = self.tgt_tok.split(self.target[i])
            tin.append([BOS] + vocab.encode(target))
            tout.append([vocab.id(t) if t in vocab else position.get(t, UNK)
                         for t in target] + [EOS])

        def pad(seqs):
            out = torch.full((len(seqs), max(len(q) for q in seqs)), PAD, dtype=torch.long)
            for r, q in enumerate(seqs):
                out[r, :len(q)] = torch.tensor(q, dtype=torch.long)
            return out

        batch = {"src": pad(src), "src_len": torch.tensor([len(q) for q in src]),
                 "sources": pad(ext), "tgt_in": pad(tin), "tgt_out": pad(tout),
                 "rows": torch.as_tensor(rows, dtype=torch.long)}
        if self.image is not None:
            batch["image"] = torch.as_tensor(self.image[rows])
        if nbr:
            batch["nbr"], batch["nbr_len"] = pad(nbr), torch.tensor([len(q) for q in nbr])
        return batch

    def __iter__(self):
        for rows in self.batches():
            yield self.batch(rows)

    def decode(self, row: int, ids: Sequence[int]) -> str:
        """Extended ids generated for ``row`` → a sentence with a capital first letter:
        an id below V is a target word, ``V + i`` the source's token ``i``."""
        vocab, tokens = self.tgt_tok.vocab, self.source_tokens(row)
        words = [vocab.tokens[i] if i < len(vocab) else tokens[i - len(vocab)] for i in ids]
        text = detokenize(words)
        return text[:1].upper() + text[1:]


def teacher_forcing_forward(model: Translator, batch: dict) -> tuple[Tensor, Tensor]:
    """The forward of :func:`mmcourse.training.train.fit` for a :class:`Translator`:
    log-probabilities of every next token (B·T, V + M) given the true previous ones, and
    the true next tokens (B·T,) (:data:`PAD` where a caption has ended, which the loss,
    ``nn.NLLLoss(ignore_index=PAD)``, ignores)."""
    log_probs = model(batch)
    return log_probs.flatten(0, 1), batch["tgt_out"].flatten()


def translate(model: Translator, batches: PairBatches, max_len: int = 40,
              image=None, beam_size: int = 1) -> list[str]:
    """Translations of the rows of ``batches`` (in its order; it must not shuffle).
    Every batch runs on the model's device. ``image`` float32 (N, image_dim), when
    given, replaces ``batches.image`` — for instance with the pictures of other stamps,
    for the incongruent test."""
    device, out = model_device(model), []
    model.eval()
    for rows in batches.batches():
        batch = to_device(batches.batch(rows), device)
        if image is not None:
            batch["image"] = torch.as_tensor(image[np.asarray(rows)]).to(device)
        ids = model.generate(batch, max_len, beam_size)
        out.extend(batches.decode(r, seq) for r, seq in zip(rows, ids))
    return out
