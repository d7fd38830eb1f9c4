"""A multimodal model is encoders + fusion + head, each replaceable.

:class:`MultimodalModel` runs one encoder per modality on its part of a batch dict, fuses
the embeddings (:mod:`mmcourse.nn.fusion`) and classifies the fused vector. Which batch
entries feed which encoder is given by :data:`INPUTS`: an image encoder gets
``batch["image"]``; a text encoder ``batch["tokens"], batch["tokens_lengths"]``; an audio
encoder ``batch["audio"], batch["audio_lengths"]``. A bool entry ``"<modality>_present"``
(N,) marks samples where that modality is missing.

:func:`build_model` makes the whole model from a plain config dict, so an experiment can
swap any part by changing one entry.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from . import encoders
from .fusion import Fusion, make_fusion

INPUTS = {"image": ("image",), "text": ("tokens", "tokens_lengths"),
          "audio": ("audio", "audio_lengths")}
"""Modality → the batch keys passed to its encoder, in order."""


class MultimodalModel(nn.Module):
    """encoders + fusion + head: batch dict → logits (N, num_classes).

    Args:
        encoders: modality → encoder module with an ``out_dim`` attribute.
        fusion: a :class:`~mmcourse.nn.fusion.Fusion` over the same modalities.
        head: maps the fused vector (N, fusion.out_dim) to logits; ``None`` for the
            identity (late fusion already produces logits).
        inputs: modality → batch keys (default :data:`INPUTS`).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: Fusion,
                 head: nn.Module | None, inputs: Mapping[str, tuple] | None = None):
        super().__init__()
        if set(encoders) != set(fusion.modalities):
            raise ValueError(f"encoders {sorted(encoders)} and fusion {fusion.modalities} "
                             "must cover the same modalities")
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.head = head if head is not None else nn.Identity()
        self.inputs = dict(INPUTS if inputs is None else inputs)

    def embed(self, batch: Mapping[str, Tensor]) -> dict:
        """Each modality's embedding: {modality: (N, D_m)}."""
        return {m: enc(*(batch[k] for k in self.inputs[m])) for m, enc in self.encoders.items()}

    def presence(self, batch: Mapping[str, Tensor]) -> dict:
        """The ``<modality>_present`` masks found in ``batch`` (modality → bool (N,))."""
        return {m: batch[f"{m}_present"] for m in self.encoders if f"{m}_present" in batch}

    def forward(self, *inputs) -> Tensor:
        """Logits (N, num_classes) for a batch dict; a model of one modality may also be
        called with its encoder's inputs, ``model(images)`` or ``model(x, lengths)``."""
        batch = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], Mapping) else None
        if batch is None:
            if len(self.encoders) != 1:
                raise TypeError("a model of several modalities takes one batch dict")
            (modality,) = self.encoders
            batch = dict(zip(self.inputs[modality], inputs, strict=True))
        return self.head(self.fusion(self.embed(batch), self.presence(batch) or None))


ENCODERS = {
    "small_cnn": encoders.SmallCNN,
    "efficientnet": encoders.ImageEncoder,
    "text_rnn": encoders.TextRNNEncoder,
    "audio_crnn": encoders.AudioCRNNEncoder,
    "minilm": encoders.MiniLMEncoder,
    "precomputed": encoders.Precomputed,
}
"""Encoder type name → class, for :func:`build_model`."""


def build_encoder(spec: Mapping) -> nn.Module:
    """One encoder from ``{"type": name in ENCODERS, **arguments of its class}``."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in ENCODERS:
        raise KeyError(f"unknown encoder type {kind!r}; choose from {', '.join(ENCODERS)}")
    return ENCODERS[kind](**spec)


def build_model(config: Mapping) -> MultimodalModel:
    """Build a :class:`MultimodalModel` from a config dict.

    Example::

        {"encoders": {"image": {"type": "small_cnn", "in_channels": 1, "embed_dim": 64},
                      "audio": {"type": "audio_crnn", "n_features": 13}},
         "fusion": {"type": "gated", "dim": 64},
         "head": {"num_classes": 10, "hidden": 0, "dropout": 0.1}}

    Every encoder entry other than ``type`` goes to the encoder's class; fusion entries
    other than ``type`` go to :func:`~mmcourse.nn.fusion.make_fusion`. The head is a linear
    layer, with a hidden ReLU layer when ``hidden`` > 0 (identity for late fusion).
    """
    built = {m: build_encoder(spec) for m, spec in config["encoders"].items()}
    head_spec = dict(config["head"])
    num_classes = head_spec["num_classes"]
    fusion_spec = dict(config.get("fusion", {"type": "concat"}))
    fusion = make_fusion(fusion_spec.pop("type"), {m: e.out_dim for m, e in built.items()},
                         num_classes=num_classes, **fusion_spec)
    if getattr(fusion, "is_late", False):
        head = None
    else:
        hidden, dropout = head_spec.get("hidden", 0), head_spec.get("dropout", 0.0)
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        if hidden:
            layers += [nn.Linear(fusion.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
        else:
            layers += [nn.Linear(fusion.out_dim, num_classes)]
        head = nn.Sequential(*layers)
    return MultimodalModel(built, fusion, head, config.get("inputs"))


def drop_modality(batch: Mapping[str, Tensor], modality: str, p: float = 1.0,
                  generator: torch.Generator | None = None) -> dict:
    """A copy of ``batch`` where ``modality`` is marked missing for a random share ``p`` of
    the samples (``"<modality>_present"`` = False); other modalities are untouched. The
    mask stays on the batch's device; ``generator`` (a CPU generator) draws the samples."""
    first = next(v for v in batch.values() if isinstance(v, Tensor))
    n, device = first.shape[0], first.device
    present = batch.get(f"{modality}_present", torch.ones(n, dtype=torch.bool, device=device))
    dropped = torch.rand(n, generator=generator) < p
    out = dict(batch)
    out[f"{modality}_present"] = present & ~dropped.to(present.device)
    return out
