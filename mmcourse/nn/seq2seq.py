r"""An attention decoder: the "sentence out" half of captioning and translation.

The decoder reads a **memory** (B, M, D) — M vectors of size D, with a mask (B, M) that
is True at real rows — and writes a sentence one token at a time:

.. math::

    c_t = \sum_m \alpha_{t,m}\, k_m, \qquad
    \alpha_{t,\cdot} = \operatorname{softmax}_m\big(v^\top \tanh(W_q h_{t-1} + W_k k_m)\big)

    h_t = \mathrm{GRU}([E y_{t-1}; c_t],\ h_{t-1}), \qquad
    p(y_t \mid y_{<t}, \text{memory}) = \operatorname{softmax}(W_o \tanh(W_d [h_t; c_t; E y_{t-1}]))

(additive attention, Bahdanau et al., 2015). With ``copy=True`` the decoder can also copy
words that are memory rows (pointer-generator, See et al., 2017):
:math:`p(w) = g\,p_{\text{vocab}}(w) + (1-g) \sum_{m:\ s_m = w} \beta_{t,m}`, where
:math:`s_m` is the word id of row m (``sources``), :math:`\beta` a second attention over
the word rows only and :math:`g = \sigma(w_g^\top [h_t; c_t; E y_{t-1}])`.

The memory is whatever the task provides:
the cells of an image's feature grid, the states of a source-sentence encoder, and any
extra inputs (a whole-image vector, concept words) as more rows joined along M with
:func:`concat_memory`, so one decoder serves every chapter.

Training uses teacher forcing (:meth:`AttentionDecoder.forward` reads the true previous
tokens) and :func:`sequence_loss`; generation uses :meth:`AttentionDecoder.stepper` with
:mod:`mmcourse.tasks.decoding`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.preprocessing.text import PAD


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention: score ``v^T tanh(W_q q + W_k k_m)`` per memory row.

    ``forward(query (B, Q), keys (B, M, K), mask (B, M) bool, True = valid)`` returns
    ``context`` (B, K), the weights' average of the keys, and ``weights`` (B, M), a
    softmax over the valid rows (0 at masked rows; a row of ``mask`` without any True
    gives zero weights and a zero context).
    ``projected`` (B, M, A), the keys already multiplied by ``W_k`` (:meth:`project_keys`),
    may be passed to skip that product when one memory is read at many steps.
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int = 128):
        super().__init__()
        self.query = nn.Linear(query_dim, attention_dim, bias=False)
        self.key = nn.Linear(key_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """``W_k k_m + b`` for every row: (B, M, K) → (B, M, A)."""
        return self.key(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                projected: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if projected is None:
            projected = self.project_keys(keys)
        energy = self.score(torch.tanh(projected + self.query(query)[:, None, :])).squeeze(-1)
        if mask is not None:
            energy = energy.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(energy, dim=-1)
        if mask is not None:  # a row with no valid entry attends to nothing
            weights = weights.masked_fill(~mask.any(-1, keepdim=True), 0.0)
        context = torch.bmm(weights[:, None, :], keys).squeeze(1)
        return context, weights


def concat_memory(parts: Sequence[tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor]:
    """Join memories ``(rows (B, M_i, D), mask (B, M_i) or None)`` along M.

    Returns ``memory`` (B, ΣM_i, D) and ``mask`` (B, ΣM_i) bool; a part given without a
    mask counts as all valid. The parts must share B and D (project them first).
    """
    if not parts:
        raise ValueError("concat_memory needs at least one part")
    rows, masks = [], []
    for memory, mask in parts:
        if memory.ndim != 3:
            raise ValueError(f"a memory must be (B, M, D), not {tuple(memory.shape)}")
        rows.append(memory)
        masks.append(torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
                     if mask is None else mask.bool())
    return torch.cat(rows, dim=1), torch.cat(masks, dim=1)


def sequence_loss(logits: Tensor, targets: Tensor, pad: int = PAD,
                  label_smoothing: float = 0.0) -> Tensor:
    """Mean token cross-entropy of ``logits`` (B, T, V) against ``targets`` (B, T),
    ignoring positions where the target is ``pad``: ``-(1/N) Σ log p(y_t | y_<t, memory)``
    over the N real tokens."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad,
                           label_smoothing=label_smoothing)


class AttentionDecoder(nn.Module):
    """Token embedding + GRU cell + additive attention over a memory (B, M, D).

    * ``forward(memory, mask, inputs (B, T))`` — teacher forcing: ``inputs`` are the true
      previous tokens (``<bos>`` first); returns ``logits`` (B, T, V) and the attention
      weights ``attention`` (B, T, M).
    * ``init_state(memory, mask)`` — the first hidden state (B, H), ``tanh`` of a linear
      map of the memory's mean over its valid rows.
    * ``step(tokens (K,), state (K, H), memory (K, M, D), mask (K, M))`` — one step:
      ``log_probs`` (K, V), the new state (K, H) and the attention weights (K, M).
    * ``stepper(memory, mask)`` — a ``step(tokens, state) -> (log_probs, state)`` closure
      for :mod:`mmcourse.tasks.decoding`; a memory of batch 1 is shared by all K hypotheses.

    With ``copy=True`` every one of these also takes ``sources`` (B, M) long: the
    vocabulary id of each memory row that is a word, :data:`PAD` for the other rows;
    the output then mixes generating and copying (see the module docstring) and
    ``forward`` returns log-probabilities as its logits.
    """

    def __init__(self, vocab_size: int, memory_dim: int, embed_dim: int = 128,
                 hidden_dim: int = 256, attention_dim: int = 128, dropout: float = 0.1,
                 pad: int = PAD, copy: bool = False):
        super().__init__()
        self.pad = pad
        self.copy = copy
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.attention = AdditiveAttention(hidden_dim, memory_dim, attention_dim)
        self.init = nn.Linear(memory_dim, hidden_dim)
        self.cell = nn.GRUCell(embed_dim + memory_dim, hidden_dim)
        self.deep = nn.Linear(hidden_dim + memory_dim + embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)
        if copy:
            self.copy_attention = AdditiveAttention(hidden_dim, memory_dim, attention_dim)
            self.gate = nn.Linear(hidden_dim + memory_dim + embed_dim, 1)

    def init_state(self, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        """The initial hidden state (B, H) from the mean of the valid memory rows."""
        if mask is None:
            mean = memory.mean(1)
        else:
            w = mask.to(memory.dtype)[..., None]
            mean = (memory * w).sum(1) / w.sum(1).clamp_min(1.0)
        return torch.tanh(self.init(mean))

    def advance(self, tokens: Tensor, h: Tensor, memory: Tensor, mask: Tensor | None,
                projected: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Attend with ``h`` (K, H), then update it with the token ``tokens`` (K,).

        Returns ``(h_new (K, H), context (K, D), weights (K, M), embedded (K, E))``.
        """
        embedded = self.dropout(self.embed(tokens))
        context, weights = self.attention(h, memory, mask, projected)
        h = self.cell(torch.cat([embedded, context], dim=-1), h)
        return h, context, weights, embedded

    def output(self, h: Tensor, context: Tensor, embedded: Tensor, weights: Tensor,
               memory: Tensor, mask: Tensor | None, sources: Tensor | None = None) -> Tensor:
        """Next-token scores (K, V) after the attention ``weights`` (K, M): logits, or
        log-probabilities when copying."""
        features = torch.cat([h, context, embedded], dim=-1)
        logits = self.proj(self.dropout(torch.tanh(self.deep(features))))
        if not self.copy:
            return logits
        return self.copy_mixture(logits, features, h, memory, mask, sources)

    def copy_mixture(self, logits: Tensor, features: Tensor, h: Tensor, memory: Tensor,
                     mask: Tensor | None, sources: Tensor | None, extra: int = 0) -> Tensor:
        """log p(w) (K, V + extra), float32: ``g`` times the softmax of ``logits`` (K, V)
        (padded with ``extra`` zero-probability ids) plus ``1 - g`` times the copy
        attention's weight on the memory rows whose id in ``sources`` (K, M) is ``w``.
        The gate ``g`` reads ``features`` (K, F); with no word row to copy, ``g = 1``."""
        if sources is None:
            raise ValueError("a copying decoder needs sources (B, M): the id of each memory "
                             "row that is a word, PAD for rows that are not words")
        words = sources != self.pad
        if mask is not None:
            words = words & mask
        _, beta = self.copy_attention(h, memory, words)
        gate = torch.sigmoid(self.gate(features))
        gate = torch.where(words.any(-1, keepdim=True), gate, torch.ones_like(gate))
        generated = F.pad(torch.softmax(logits.float(), -1), (0, extra))
        copied = torch.zeros_like(generated).scatter_add(1, sources, beta.float())
        return torch.log((gate * generated + (1 - gate) * copied).clamp_min(1e-12))

    def forward(self, memory: Tensor, mask: Tensor | None, inputs: Tensor,
                sources: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.init_state(memory, mask)
        projected = self.attention.project_keys(memory)
        logits, attention = [], []
        for t in range(inputs.shape[1]):
            h, context, weights, embedded = self.advance(inputs[:, t], h, memory, mask,
                                                         projected)
            logits.append(self.output(h, context, embedded, weights, memory, mask, sources))
            attention.append(weights)
        return torch.stack(logits, 1), torch.stack(attention, 1)

    def step(self, tokens: Tensor, state: Tensor, memory: Tensor, mask: Tensor | None,
             projected: Tensor | None = None, sources: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        h, context, weights, embedded = self.advance(tokens, state, memory, mask, projected)
        logits = self.output(h, context, embedded, weights, memory, mask, sources)
        return torch.log_softmax(logits.float(), dim=-1), h, weights

    def stepper(self, memory: Tensor, mask: Tensor | None = None,
                sources: Tensor | None = None):
        """A step function ``step(tokens (K,), state (K, H)) -> (log_probs (K, V), state)``
        over this memory (B, M, D), for :func:`mmcourse.tasks.decoding.greedy_decode` (K = B)
        and :func:`mmcourse.tasks.decoding.beam_search` (B = 1, shared by the K hypotheses).
        Use with ``init_state(memory, mask)`` as the initial state; the decoder should be
        in eval mode."""
        projected = self.attention.project_keys(memory)

        def step(tokens: Tensor, state: Tensor):
            k = tokens.shape[0]
            mem, msk, proj, src = memory, mask, projected, sources
            if k != memory.shape[0]:
                if memory.shape[0] != 1:
                    raise ValueError(f"{k} hypotheses for a memory of batch {memory.shape[0]}")
                mem, proj = memory.expand(k, -1, -1), projected.expand(k, -1, -1)
                msk = None if mask is None else mask.expand(k, -1)
                src = None if sources is None else sources.expand(k, -1)
            log_probs, h, _ = self.step(tokens, state, mem, msk, proj, src)
            return log_probs, h

        return step
