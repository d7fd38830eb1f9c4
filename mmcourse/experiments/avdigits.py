"""AV-digits models and loaders shared by chapter 04's fusion recipe and chapter 05's
self-supervised recipe (this module is not a recipe itself).

Every AV-digits model has the same three small encoders — a CNN for the 8×8 image, a GRU
over the words of the text, a CRNN over the MFCC frames — built by
:func:`mmcourse.nn.models.build_model` from :func:`model_config`; models differ only in
their fusion and in which modalities they read.
"""
from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader

from mmcourse.data import AVDigitsDataset, load_av_digits, stratified_split
from mmcourse.preprocessing import Tokenizer, collate_multimodal

MODALITIES = ("image", "text", "audio")
ENCODERS = {
    "image": {"type": "small_cnn", "in_channels": 1, "widths": (16, 32), "embed_dim": 64,
              "dropout": 0.1},
    "text": {"type": "text_rnn", "embed_dim": 16, "hidden_size": 32},
    "audio": {"type": "audio_crnn", "n_features": 13, "conv_channels": (8, 16),
              "hidden_size": 32},
}
"""Encoder configs (the text encoder's ``vocab_size`` is added from the tokenizer)."""
FUSION_OPTIONS = {
    "sum": {"dim": 64}, "learned": {"dim": 64}, "gated": {"dim": 64},
    "product": {"dim": 64}, "concat": {}, "late": {}, "conv": {"dim": 64},
    "tensor": {"dim": 8}, "lowrank": {"dim": 64, "rank": 4},
    "attention": {"dim": 64, "heads": 4},
}
"""Fusion name → options: every method in :data:`mmcourse.nn.fusion.FUSIONS` but ``lstm``, the
fusion of the blog post's repaired model (chapter 06)."""
collate = functools.partial(collate_multimodal, pad_keys=("tokens", "audio"))
"""Collate AV-digits samples into dict batches with lengths and masks."""


def tokenizer(av=None) -> Tokenizer:
    """The word-level tokenizer fitted on the AV-digits training texts."""
    av = load_av_digits(seed=0) if av is None else av
    return Tokenizer(level="word").fit(av.train.texts)


def av_loaders(seed: int | None = 0, batch_size: int = 64, train_limit: int | None = None):
    """AV-digits train/val/test DataLoaders of dict batches and the fitted tokenizer.

    The training split's last 10 % (stratified) is the validation part. ``train_limit``
    keeps a stratified subset of the training part. The training order comes from a
    generator seeded with ``seed``, or from PyTorch's global generator when ``seed`` is
    None (which :func:`mmcourse.training.train.fit` reseeds every epoch, so a run's batch order
    does not depend on what ran before it).
    """
    av = load_av_digits(seed=0)
    tok = tokenizer(av)
    train_idx, val_idx = stratified_split(av.train.labels, (0.9, 0.1), seed=0)
    if train_limit is not None and train_limit < len(train_idx):
        share = train_limit / len(train_idx)
        keep = stratified_split(av.train.labels[train_idx], (share, 1 - share), seed=0)[0]
        train_idx = train_idx[keep]
    g = None if seed is None else torch.Generator().manual_seed(seed)
    train = DataLoader(AVDigitsDataset(av.train, tok, train_idx), batch_size=batch_size,
                       shuffle=True, collate_fn=collate, generator=g)
    val = DataLoader(AVDigitsDataset(av.train, tok, val_idx), batch_size=256,
                     collate_fn=collate)
    test = DataLoader(AVDigitsDataset(av.test, tok), batch_size=256, collate_fn=collate)
    return {"train": train, "val": val, "test": test}, tok


def model_config(fusion: str, modalities=MODALITIES, vocab_size: int = 32) -> dict:
    """The :func:`mmcourse.nn.models.build_model` config of one AV-digits model."""
    encoders = {m: dict(ENCODERS[m]) for m in modalities}
    if "text" in encoders:
        encoders["text"]["vocab_size"] = vocab_size
    return {"encoders": encoders, "fusion": {"type": fusion, **FUSION_OPTIONS[fusion]},
            "head": {"num_classes": 10}}
