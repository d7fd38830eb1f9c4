"""Image captioning (图像描述) on the stamps: features, baselines, the course captioner,
and the scores that compare them.

* :func:`caption_data` — every stamp's English caption and frozen EfficientNet-Lite0
  features, cached: the S×S grid of 1280-d cells of its last feature map, their mean
  (the pooled 1280-d vector), and its ImageNet class probabilities.
* Baselines — :func:`constant_caption` (one training caption for every picture),
  :func:`template_captions` ("A <top ImageNet label>.") and :func:`retrieval_captions`
  (the caption of the most similar training picture).
* :class:`Captioner` — an :class:`~mmcourse.nn.seq2seq.AttentionDecoder` whose memory holds
  the grid cells, the pooled vector and, as word rows it can attend to and copy, the
  words of the top ImageNet labels ("concepts") and of the nearest training captions.
* :func:`caption_scores` — BLEU and chrF (sacrebleu), a CIDEr-style consensus score, and
  :func:`part_scores`: how often the template words, the object word and the attributes
  of the reference caption come back.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.model_selection import KFold
from torch import Tensor, nn

from mmcourse.data import load_image, load_stamps
from mmcourse.nn.encoders import EFFICIENTNET_DIM, efficientnet_inputs, efficientnet_lite0
from mmcourse.nn.neighbours import nearest_neighbours
from mmcourse.nn.seq2seq import AttentionDecoder, concat_memory
from mmcourse.preprocessing import (BOS, PAD, SequenceTokenizer, crop_margin, eval_transform,
                                    letterbox as letterbox_image)
from mmcourse.runtime import cache
from mmcourse.training.metrics import bleu, chrf
from mmcourse.training.train import model_device

from .decoding import beam_search, greedy_decode

# --- data ------------------------------------------------------------------------------


@dataclass
class CaptionData:
    """Every stamp with its caption and frozen features (N stamps).

    ``captions``: N English captions as written; ``grid``: float16 (N, S·S, 1280), the
    cells of EfficientNet-Lite0's last feature map in row-major order; ``pooled``:
    float32 (N, 1280), their mean; ``imagenet``: float32 (N, 1000), the ImageNet class
    probabilities; ``side``: S; ``size``: the pictures' size in pixels.
    """

    stamps: list
    captions: list
    grid: np.ndarray
    pooled: np.ndarray
    imagenet: np.ndarray
    side: int
    size: int

    def picture(self, i: int) -> np.ndarray:
        """Stamp ``i``'s picture as the network saw it: uint8 (size, size, 3)."""
        crop = eval_transform(self.size, mean=(0, 0, 0), std=(1, 1, 1))
        x = crop(letterbox_image(load_image(self.stamps[i]), crop_margin(self.size)))
        return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()

    def __len__(self) -> int:
        return len(self.captions)


def grid_features(stamps, size: int = 224, batch_size: int = 32) -> dict:
    """Frozen EfficientNet-Lite0 features of ``stamps`` (N), cached by stamp and size.

    Pictures are letterboxed on white to ``size``·256/224 px and centre-cropped to
    ``size`` (:func:`mmcourse.preprocessing.eval_transform`). Returns {"grid": float16
    (N, S·S, 1280) with S = ⌈size/32⌉, "imagenet": float32 (N, 1000) softmax of the
    ImageNet head}.
    """
    def compute() -> dict:
        net = efficientnet_lite0(pretrained=True, num_classes=1000).eval()
        grids, probs = [], []
        with torch.no_grad():
            for x in efficientnet_inputs(stamps, size, batch_size):
                fmap = net.forward_features(x)  # (B, 1280, S, S)
                probs.append(torch.softmax(net.forward_head(fmap), -1))
                grids.append(fmap.flatten(2).transpose(1, 2).half())
        return {"grid": torch.cat(grids).numpy(), "imagenet": torch.cat(probs).numpy()}

    return cache.arrays("stamp-grid", [size, *(s.name for s in stamps)], compute)


def caption_data(size: int = 224, limit: int | None = None, seed: int = 0) -> CaptionData:
    """All installed stamps in name order (or ``limit`` of them drawn at random with
    ``seed``, kept in name order) with their English captions and :func:`grid_features`
    at ``size`` px."""
    stamps = sorted(load_stamps(), key=lambda s: s.name)
    if limit is not None and limit < len(stamps):
        keep = np.sort(np.random.default_rng(seed).choice(len(stamps), limit, replace=False))
        stamps = [stamps[i] for i in keep]
    feats = grid_features(stamps, size)
    grid = feats["grid"]
    side = int(round(math.sqrt(grid.shape[1])))
    return CaptionData(stamps, [s.caption for s in stamps], grid,
                       grid.astype(np.float32).mean(1), feats["imagenet"].astype(np.float32),
                       side, size)


def caption_folds(n: int, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split N stamps into ``folds`` (train, test) index pairs by stamp: scikit-learn's
    ``KFold(folds, shuffle=True, random_state=seed)``, so every stamp is tested once and
    train and test never share a stamp (80/20 with 5 folds)."""
    return [(tr, te) for tr, te in KFold(folds, shuffle=True, random_state=seed)
            .split(np.zeros(n))]


@lru_cache(maxsize=1)
def imagenet_names() -> list[str]:
    """The 1000 ImageNet classes' short names ("koala", "fire engine"), lower-cased: the
    first synonym of each class description (from timm's class list)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip().lower() for i in range(1000)]


def top_labels(imagenet: np.ndarray, k: int = 5) -> tuple[np.ndarray, list[list[str]]]:
    """The ``k`` most probable ImageNet classes of each row of ``imagenet`` (N, 1000):
    their probabilities float32 (N, k), best first, and names (N lists of k strings)."""
    order = np.argsort(-imagenet, axis=1)[:, :k]
    names = imagenet_names()
    return (np.take_along_axis(imagenet, order, 1).astype(np.float32),
            [[names[c] for c in row] for row in order])


def nearest(pooled: np.ndarray, queries, pool, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` stamps of ``pool`` (indices) whose pooled features are the most
    cosine-similar to each stamp of ``queries`` (indices), a stamp never being its own
    neighbour. Returns neighbour indices into ``pooled`` int64 (Q, k) and their cosine
    similarities float32 (Q, k), most similar first."""
    queries, pool = np.asarray(queries), np.asarray(pool)
    order, sims = nearest_neighbours(pooled[queries], pooled[pool], k,
                                     exclude=queries[:, None] == pool[None, :])
    return pool[order], sims


# --- baselines -------------------------------------------------------------------------


def constant_caption(train_captions, candidates: int = 20) -> str:
    """The one caption to give every picture: among the ``candidates`` most frequent
    training captions (lower-cased), the one with the best BLEU + chrF on the training
    captions themselves."""
    counts = Counter(c.lower() for c in train_captions)
    pool = [c for c, _ in counts.most_common(candidates)]
    refs = list(train_captions)

    def score(c):
        hyps = [c] * len(refs)
        return bleu(hyps, refs) + chrf(hyps, refs)

    return max(pool, key=score)


def template_captions(imagenet: np.ndarray) -> list[str]:
    """"A <top ImageNet label>." for each row of ``imagenet`` (N, 1000) ("An" before a
    vowel)."""
    _, names = top_labels(imagenet, 1)
    return [f"{'An' if n[0][0] in 'aeiou' else 'A'} {n[0]}." for n in names]


def retrieval_captions(data: CaptionData, train_idx, test_idx) -> list[str]:
    """The caption of the training stamp whose pooled features are the most
    cosine-similar to each test stamp's (nearest-neighbour caption retrieval)."""
    idx, _ = nearest(data.pooled, test_idx, train_idx, k=1)
    return [data.captions[i] for i in idx[:, 0]]


def gated_captions(data: CaptionData, train_idx, test_idx, generated, quantile: float = 0.5
                   ) -> tuple[list[str], np.ndarray]:
    """Keep the nearest training caption where the picture has a close match, generate
    elsewhere: for each test stamp, the retrieved caption when its top-1 cosine
    similarity reaches τ, else ``generated[j]``. τ is the ``quantile`` of the training
    stamps' own top-1 similarities (each against the other training stamps), so it is
    fixed before any test stamp is seen. Returns the captions and the mask of test stamps
    that kept the retrieved caption."""
    _, train_sims = nearest(data.pooled, train_idx, train_idx, k=1)
    tau = float(np.quantile(train_sims[:, 0], quantile))
    idx, sims = nearest(data.pooled, test_idx, train_idx, k=1)
    keep = sims[:, 0] >= tau
    return [data.captions[i] if k else g for i, k, g in zip(idx[:, 0], keep, generated)], keep


# --- scores ----------------------------------------------------------------------------

_WORD = re.compile(r"\w")


def template_words(train_captions, tokenizer: SequenceTokenizer,
                   min_share: float = 0.03) -> set[str]:
    """The words that make up the captions' templates: word tokens found in at least
    ``min_share`` of the training captions ("a", "the", "letter", "sign", "in", …)."""
    df = Counter(t for c in train_captions for t in set(tokenizer.split(c)) if _WORD.search(t))
    return {t for t, n in df.items() if n >= min_share * len(train_captions)}


def caption_parts(caption: str, template: set[str], tokenizer: SequenceTokenizer) -> dict:
    """Split a caption's word tokens into ``template`` words, the ``object`` word — the
    last word that is not a template word, which in these "A/The … X." captions is the
    head noun (None when every word is a template word) — and ``attributes``, the other
    non-template words ("red" in "A red apple.")."""
    words = [t for t in tokenizer.split(caption) if _WORD.search(t)]
    content = [t for t in words if t not in template]
    return {"template": [t for t in words if t in template],
            "object": content[-1] if content else None, "attributes": content[:-1]}


def part_scores(hypotheses, references, template: set[str],
                tokenizer: SequenceTokenizer) -> dict:
    """How much of each part of the references (:func:`caption_parts`) the hypotheses
    recover, in %: "template words" and "attributes" — the share of the reference's
    tokens of that part found in its hypothesis (counted with multiplicity), "object
    word" — the share of references whose object word is in the hypothesis."""
    found = {"template words": [0, 0], "object word": [0, 0], "attributes": [0, 0]}
    for hyp, ref in zip(hypotheses, references):
        have = Counter(tokenizer.split(hyp))
        parts = caption_parts(ref, template, tokenizer)
        for key, words in (("template words", parts["template"]),
                           ("attributes", parts["attributes"]),
                           ("object word", [parts["object"]] if parts["object"] else [])):
            need = Counter(words)
            found[key][0] += sum(min(n, have[w]) for w, n in need.items())
            found[key][1] += sum(need.values())
    return {k: 100.0 * a / b if b else float("nan") for k, (a, b) in found.items()}


def cider(hypotheses, references, tokenizer: SequenceTokenizer, n: int = 4) -> float:
    """A CIDEr-style consensus score (×100): the cosine between TF-IDF weighted n-gram
    vectors of each hypothesis and its reference, averaged over n = 1..``n`` (the n for
    which the reference has n-grams) and then over the corpus; IDF comes from the references, so words every caption shares ("a",
    ".") count little and rare, specific words count a lot. (CIDEr-D's length penalty
    and clipping are left out.)"""
    def grams(text, k):
        toks = tokenizer.split(text)
        return Counter(tuple(toks[i:i + k]) for i in range(len(toks) - k + 1))

    totals, counts = np.zeros(len(references)), np.zeros(len(references))
    for k in range(1, n + 1):
        refs = [grams(r, k) for r in references]
        df = Counter(g for r in refs for g in r)
        idf = {g: math.log(len(refs) / d) for g, d in df.items()}
        unseen = math.log(len(refs))

        def vec(c):
            return {g: tf * idf.get(g, unseen) for g, tf in c.items()}

        for j, (hyp, ref) in enumerate(zip(hypotheses, refs)):
            if not ref:
                continue
            h, r = vec(grams(hyp, k)), vec(ref)
            dot = sum(v * r.get(g, 0.0) for g, v in h.items())
            norm = math.sqrt(sum(v * v for v in h.values()) * sum(v * v for v in r.values()))
            totals[j] += dot / norm if norm else 0.0
            counts[j] += 1
    return float(100.0 * np.mean(totals / np.maximum(counts, 1)))


def caption_scores(hypotheses, references, template: set[str],
                   tokenizer: SequenceTokenizer) -> dict:
    """BLEU, chrF (lower-cased, sacrebleu), CIDEr-style (:func:`cider`) and the
    :func:`part_scores` of ``hypotheses`` against one reference each."""
    return {"BLEU": bleu(hypotheses, references), "chrF": chrf(hypotheses, references),
            "CIDEr": cider(hypotheses, references, tokenizer),
            **part_scores(hypotheses, references, template, tokenizer)}


# --- the course captioner --------------------------------------------------------------

# kinds of memory rows
GRID, POOLED, CONCEPT, NEIGHBOUR = range(4)


def word_rows(tokenizer: SequenceTokenizer, texts, scores, max_tokens: int
              ) -> dict[str, Tensor]:
    """Several short texts per stamp as word rows of a memory, for N stamps.

    ``texts``: N lists of strings (concept names or neighbour captions), ``scores``:
    (N, k) floats (a probability or a similarity per text). Returns {"ids": (N, L) long,
    "rank": (N, L) long — which text of the stamp the token comes from, "position":
    (N, L) long — its place in that text, "previous": (N, L) long — the token before it
    in that text (``<bos>`` first), "score": (N, L) float32}, the texts' tokens one
    after another, cut to ``max_tokens`` each and padded with :data:`PAD` to L. The
    previous token lets a decoder that has just written word w find the row after w,
    and so copy a caption word by word."""
    rows = []
    for stamp_texts, stamp_scores in zip(texts, scores):
        row = []
        for r, (text, sc) in enumerate(zip(stamp_texts, stamp_scores)):
            ids = tokenizer.encode(text, max_len=max_tokens).tolist()
            row.extend((tok, r, p, float(sc)) for p, tok in enumerate(ids))
        rows.append(row)
    length = max(1, max(len(r) for r in rows))
    out = {"ids": torch.full((len(rows), length), PAD, dtype=torch.long),
           "previous": torch.full((len(rows), length), PAD, dtype=torch.long),
           "rank": torch.zeros(len(rows), length, dtype=torch.long),
           "position": torch.zeros(len(rows), length, dtype=torch.long),
           "score": torch.zeros(len(rows), length)}
    for i, row in enumerate(rows):
        for j, (tok, r, p, sc) in enumerate(row):
            out["ids"][i, j], out["rank"][i, j], out["position"][i, j] = tok, r, p
            out["previous"][i, j] = BOS if p == 0 else row[j - 1][0]
            out["score"][i, j] = sc
    return out


@dataclass
class CaptionInputs:
    """Everything the :class:`Captioner` reads for N stamps, as tensors on the CPU.

    ``grid`` float16 (N, S·S, F) (F = 1280, or fewer after a PCA), ``pooled`` float32
    (N, 1280), ``concepts`` and
    ``neighbours`` word rows (:func:`word_rows`), ``captions`` the N reference captions.
    """

    grid: Tensor
    pooled: Tensor
    concepts: dict
    neighbours: dict
    captions: list

    def batch(self, index) -> dict:
        """The stamps ``index`` as a dict batch (see :meth:`Captioner.memory`)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return {"grid": self.grid[index], "pooled": self.pooled[index],
                **{f"concept_{k}": v[index] for k, v in self.concepts.items()},
                **{f"neighbour_{k}": v[index] for k, v in self.neighbours.items()}}

    def __len__(self) -> int:
        return len(self.captions)


def grid_basis(data: CaptionData, train_idx, dim: int = 256, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """A PCA of the training stamps' grid cells: their mean float32 (1280,) and the top
    ``dim`` principal directions float32 (1280, dim), to shrink each cell to ``dim``
    numbers before training (:func:`caption_inputs`)."""
    cells = torch.from_numpy(data.grid[np.asarray(train_idx)].reshape(-1, data.grid.shape[-1])
                             .astype(np.float32))
    mean = cells.mean(0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(cells - mean, q=dim, center=False, niter=3)
    return mean.numpy(), v.numpy()


def caption_inputs(data: CaptionData, index, train_idx, tokenizer: SequenceTokenizer,
                   concepts: int = 5, neighbours: int = 3, max_tokens: int = 12,
                   basis: tuple | None = None) -> CaptionInputs:
    """The :class:`CaptionInputs` of the stamps ``index``: their grid features (projected
    on ``basis`` from :func:`grid_basis` when given), the names of their top
    ``concepts`` ImageNet classes, and the captions of their ``neighbours`` nearest
    training stamps (from ``train_idx``; a training stamp is never its own neighbour, so
    training sees neighbours as a test stamp does)."""
    index = np.asarray(index)
    probs, names = top_labels(data.imagenet[index], max(concepts, 1))
    nn_idx, sims = nearest(data.pooled, index, train_idx, k=max(neighbours, 1))
    grid = data.grid[index]
    if basis is not None:
        mean, components = basis
        grid = ((grid.astype(np.float32) - mean) @ components).astype(np.float16)
    return CaptionInputs(
        grid=torch.from_numpy(grid),
        pooled=torch.from_numpy(data.pooled[index]),
        concepts=word_rows(tokenizer, [n[:concepts] for n in names], probs, max_tokens),
        neighbours=word_rows(tokenizer, [[data.captions[j] for j in row[:neighbours]]
                                         for row in nn_idx], sims, max_tokens),
        captions=[data.captions[i] for i in index])


class Captioner(nn.Module):
    """Image features (+ concept words, + neighbours' captions) → caption.

    The memory (B, M, D) that the :class:`~mmcourse.nn.seq2seq.AttentionDecoder` attends
    to joins, along M: the S·S grid cells (``grid_dim`` → D, plus a learned position per
    cell),
    the pooled vector (1280 → D), and, when switched on, the ``concepts`` and
    ``neighbours`` word rows — a word embedding plus embeddings of the row's kind, of
    which label or caption it comes from and of its place there, plus its score times a
    learned vector, plus an embedding of the word before it. With ``copy`` the decoder can copy those words (pointer-generator).

    ``forward(batch, inputs (B, T))`` → log-probabilities or logits (B, T, V) and
    attention (B, T, M); ``memory(batch)`` → (memory, mask, sources).
    """

    def __init__(self, vocab_size: int, grid_cells: int, dim: int = 256, embed_dim: int = 128,
                 hidden_dim: int = 256, attention_dim: int = 128, dropout: float = 0.3,
                 concepts: bool = True, neighbours: bool = True, copy: bool = True,
                 grid_dim: int = EFFICIENTNET_DIM, feature_dim: int = EFFICIENTNET_DIM):
        super().__init__()
        self.use_concepts, self.use_neighbours = concepts, neighbours
        self.copy = copy and (concepts or neighbours)
        self.grid_cells = grid_cells
        self.grid_norm = nn.LayerNorm(grid_dim)
        self.norm = nn.LayerNorm(feature_dim)
        self.grid_proj = nn.Linear(grid_dim, dim)
        self.cell = nn.Parameter(torch.zeros(grid_cells, dim))
        self.pooled_proj = nn.Linear(feature_dim, dim)
        self.word = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.previous = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.kind = nn.Embedding(4, dim)
        self.rank = nn.Embedding(16, dim)
        self.position = nn.Embedding(64, dim)
        self.score = nn.Linear(1, dim, bias=False)
        self.drop = nn.Dropout(dropout)
        self.decoder = AttentionDecoder(vocab_size, dim, embed_dim, hidden_dim, attention_dim,
                                        dropout, copy=self.copy)

    def _words(self, batch: dict, prefix: str, kind: int) -> tuple[Tensor, Tensor, Tensor]:
        ids = batch[f"{prefix}_ids"]
        rows = (self.word(ids) + self.previous(batch[f"{prefix}_previous"])
                + self.kind.weight[kind]
                + self.rank(batch[f"{prefix}_rank"].clamp_max(15))
                + self.position(batch[f"{prefix}_position"].clamp_max(63))
                + self.score(batch[f"{prefix}_score"][..., None].to(self.score.weight.dtype)))
        return self.drop(rows), ids != PAD, ids

    def memory(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """``batch`` ({"grid" (B, S·S, 1280), "pooled" (B, 1280), "concept_*" and
        "neighbour_*" word rows}) → ``memory`` (B, M, D), ``mask`` (B, M) bool and
        ``sources`` (B, M) long — the word id of each word row, PAD elsewhere. Rows are
        ordered grid cells, pooled vector, concept words, neighbour words."""
        grid = self.grid_norm(batch["grid"].to(self.grid_proj.weight.dtype))
        pooled = self.norm(batch["pooled"].to(self.grid_proj.weight.dtype))
        b = grid.shape[0]
        cells = self.drop(self.grid_proj(grid) + self.cell + self.kind.weight[GRID])
        whole = self.drop(self.pooled_proj(pooled) + self.kind.weight[POOLED])[:, None]
        parts = [(cells, None), (whole, None)]
        no_word = torch.full((b, self.grid_cells + 1), PAD, dtype=torch.long,
                             device=grid.device)
        sources = [no_word]
        for used, prefix, kind in ((self.use_concepts, "concept", CONCEPT),
                                   (self.use_neighbours, "neighbour", NEIGHBOUR)):
            if used:
                rows, mask, ids = self._words(batch, prefix, kind)
                parts.append((rows, mask))
                sources.append(ids)
        memory, mask = concat_memory(parts)
        return memory, mask, torch.cat(sources, 1)

    def forward(self, batch: dict, inputs: Tensor) -> tuple[Tensor, Tensor]:
        memory, mask, sources = self.memory(batch)
        return self.decoder(memory, mask, inputs, sources if self.copy else None)

    def stepper(self, batch: dict):
        """``(step, state)`` for :mod:`mmcourse.tasks.decoding` over ``batch``'s stamps."""
        memory, mask, sources = self.memory(batch)
        step = self.decoder.stepper(memory, mask, sources if self.copy else None)
        return step, self.decoder.init_state(memory, mask)


def _on(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def generate(model: Captioner, inputs: CaptionInputs, tokenizer: SequenceTokenizer,
             beam_size: int = 1, max_len: int = 24, length_penalty: float = 0.0,
             batch_size: int = 128) -> list[str]:
    """Captions for every stamp of ``inputs``, on the model's device: greedy search
    (``beam_size`` 1, in batches) or beam search (one stamp at a time)."""
    model.eval()
    device = model_device(model)
    out = []
    if beam_size == 1:
        for start in range(0, len(inputs), batch_size):
            index = range(start, min(start + batch_size, len(inputs)))
            step, state = model.stepper(_on(inputs.batch(index), device))
            for seq, _ in greedy_decode(step, state, tokenizer.bos, tokenizer.eos, max_len):
                out.append(tokenizer.decode(seq))
        return out
    for i in range(len(inputs)):
        step, state = model.stepper(_on(inputs.batch([i]), device))
        best = beam_search(step, state, tokenizer.bos, tokenizer.eos, beam_size, max_len,
                           length_penalty)[0][0]
        out.append(tokenizer.decode(best))
    return out


@torch.no_grad()
def attention_maps(model: Captioner, inputs: CaptionInputs, i: int, caption: str,
                   tokenizer: SequenceTokenizer) -> tuple[list[str], Tensor, Tensor]:
    """Where the decoder looked while writing ``caption`` for stamp ``i`` of ``inputs``:
    its tokens (T, ``<eos>`` last), the attention on the grid cells (T, S, S) and the
    attention share that went to the grid, the pooled vector and the word rows (T, 3)."""
    model.eval()
    device = model_device(model)
    dec_in, targets = tokenizer.teacher_forcing([caption])
    _, attention = model(_on(inputs.batch([i]), device), dec_in.to(device))
    attention = attention[0].float().cpu()
    cells = model.grid_cells
    side = int(round(math.sqrt(cells)))
    tokens = [tokenizer.vocab.tokens[t] for t in targets[0].tolist()]
    shares = torch.stack([attention[:, :cells].sum(-1), attention[:, cells],
                          attention[:, cells + 1:].sum(-1)], -1)
    return tokens, attention[:, :cells].reshape(-1, side, side), shares

