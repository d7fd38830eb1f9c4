"""Batching samples whose sequences differ in length: padding, lengths and masks."""
from __future__ import annotations

from numbers import Integral, Number
from typing import Iterable, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence


def pad_sequences(seqs: Sequence[torch.Tensor], padding_value: float = 0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad tensors (T_i, *D) along their first dimension into one batch.

    Returns ``(padded, lengths, mask)``: ``padded`` (B, T_max, *D) with the inputs' dtype
    and ``padding_value`` after each sequence's end, ``lengths`` int64 (B,) holding each
    T_i, and ``mask`` bool (B, T_max), True at real steps and False at padding. The
    trailing dimensions ``*D`` must agree.
    """
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long, device=seqs[0].device)
    padded = pad_sequence(list(seqs), batch_first=True, padding_value=padding_value)
    mask = torch.arange(padded.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    return padded, lengths, mask


def collate_multimodal(batch: Sequence[dict], pad_keys: Iterable[str] = (),
                       padding_value: float = 0) -> dict:
    """Collate a list of sample dicts into one dict of batched values.

    For each key (all samples must have the same keys):

    * tensors of one shape are stacked: (*S) → (B, *S) — images, fixed-size features;
    * tensors whose shapes differ only in the first dimension are padded with
      ``padding_value`` by :func:`pad_sequences`: (T_i, *D) → (B, T_max, *D), and the batch
      also gets ``"<key>_lengths"`` int64 (B,) and ``"<key>_mask"`` bool (B, T_max) — token
      ids (L,), feature frames (T, F), waveforms (T,). 0 is also :data:`~.text.PAD`;
    * keys listed in ``pad_keys`` are always padded that way, even when every sample of
      the batch happens to have the same length (a batch of one, say), so the batch has
      the same entries every time;
    * Python or NumPy numbers become a tensor (B,): int64 when all are integers or bools
      (labels), float32 otherwise;
    * anything else (strings, paths) is returned as a list.

    Raises ValueError naming the key when its tensors differ in a dimension other than
    the first, when samples have different keys, or when a key mixes tensors and others.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    keys = list(batch[0])
    for sample in batch[1:]:
        if set(sample) != set(keys):
            raise ValueError(f"samples have different keys: {sorted(keys)} vs {sorted(sample)}")
    pad_keys = set(pad_keys)
    out = {}
    for key in keys:
        values = [sample[key] for sample in batch]
        if all(isinstance(v, torch.Tensor) for v in values):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) == 1 and key not in pad_keys:
                out[key] = torch.stack(values)
                continue
            if len({(v.dim(), *v.shape[1:]) for v in values}) > 1 or values[0].dim() == 0:
                raise ValueError(f"cannot pad {key!r}: its shapes {sorted(shapes)} must have "
                                 "at least one dimension and differ only in the first")
            out[key], out[f"{key}_lengths"], out[f"{key}_mask"] = pad_sequences(
                values, padding_value)
        elif any(isinstance(v, torch.Tensor) for v in values):
            raise ValueError(f"key {key!r} mixes tensors and other values")
        elif all(isinstance(v, Number) for v in values):
            integral = all(isinstance(v, Integral) for v in values)
            out[key] = torch.tensor(values, dtype=torch.long if integral else torch.float32)
        else:
            out[key] = values
    return out
