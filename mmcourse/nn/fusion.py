"""Cross-modal fusion (跨模态融合): every method behind one interface.

A fusion module takes a mapping ``{modality name: embedding (N, D_m)}`` and an optional
presence mask (N, M) — True where a sample has that modality, in the order of
``modalities`` — and returns one fused vector per sample, (N, out_dim). Missing
modalities are handled by each method in the way that leaves the others' contribution
intact: weights are renormalised over the present modalities, a product uses the
neutral 1, a concatenation zeros, attention masks the missing tokens, the LSTM
reads only the present ones.

The methods (see :data:`FUSIONS`):

========== ===============================================================
``sum``       fixed weighted sum  F = α f(I) + β f(T) + γ f(A)  (the post's formula)
``learned``   weights w = softmax(θ) learned with the model
``gated``     per-sample weights w(x) = softmax(g([z_1, …, z_M]))
``product``   element-wise product of the projected embeddings
``concat``    early fusion: concatenation
``late``      late fusion: the average of per-modality class predictions
``conv``      a 1-D convolution across the stacked modality axis
``tensor``    tensor fusion: the outer product of [z_m; 1] over modalities
``lowrank``   low-rank tensor fusion: the same product through rank-R factors
``attention`` cross-modal attention between the modality tokens
``lstm``      an LSTM over the modalities as a length-M sequence; F = its last hidden state
========== ===============================================================

The post projects nothing and adds raw encoder outputs, which only makes sense when the
encoders' outputs live in one space of one size; here every method except ``concat``
and ``late`` first maps each modality to a shared width ``dim`` with a linear layer.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


def presence_mask(embeddings: Mapping[str, Tensor], modalities: Sequence[str],
                  mask: Tensor | Mapping[str, Tensor] | None) -> Tensor:
    """Normalise ``mask`` to a bool tensor (N, M); all True when None.

    ``mask`` may be a bool tensor (N, M) or a mapping modality → bool (N,), on any device;
    the result is on the embeddings' device. Raises ValueError when a sample has no
    modality at all.
    """
    first = embeddings[modalities[0]]
    n = first.shape[0]
    if mask is None:
        return torch.ones(n, len(modalities), dtype=torch.bool, device=first.device)
    if isinstance(mask, Mapping):
        mask = torch.stack([mask[m].to(first.device) if m in mask else
                            torch.ones(n, dtype=torch.bool, device=first.device)
                            for m in modalities], dim=1)
    mask = mask.to(device=first.device, dtype=torch.bool)
    if mask.shape != (n, len(modalities)):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {(n, len(modalities))}")
    if not mask.any(dim=1).all():
        raise ValueError("every sample needs at least one present modality")
    return mask


class Fusion(nn.Module, ABC):
    """Base class: holds ``modalities`` (their order), ``dims`` and ``out_dim``.

    Subclasses implement ``fuse(embeddings, mask)`` with ``mask`` a bool tensor (N, M).
    """

    out_dim: int

    def __init__(self, dims: Mapping[str, int]):
        super().__init__()
        if not dims:
            raise ValueError("fusion needs at least one modality")
        self.modalities = list(dims)
        self.dims = dict(dims)

    def forward(self, embeddings: Mapping[str, Tensor],
                mask: Tensor | Mapping[str, Tensor] | None = None) -> Tensor:
        """Fuse ``{modality: (N, D_m)}`` with an optional presence mask → (N, out_dim)."""
        missing = [m for m in self.modalities if m not in embeddings]
        if missing:
            raise KeyError(f"embeddings lack {missing}; this fusion expects {self.modalities}")
        return self.fuse(embeddings, presence_mask(embeddings, self.modalities, mask))

    @abstractmethod
    def fuse(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Fuse with ``mask`` already a bool tensor (N, M)."""


class _Projected(Fusion):
    """A fusion that first maps every modality to a shared width ``dim``."""

    def __init__(self, dims: Mapping[str, int], dim: int):
        super().__init__(dims)
        self.dim = dim
        self.project = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})

    def stacked(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        """Projected embeddings stacked over modalities: (N, M, dim)."""
        return torch.stack([self.project[m](embeddings[m]) for m in self.modalities], dim=1)


class _Mixture(_Projected):
    """F = Σ_m w_m(x) · z_m with per-sample weights from :meth:`sample_weights`."""

    def __init__(self, dims: Mapping[str, int], dim: int):
        super().__init__(dims, dim)
        self.out_dim = dim

    @abstractmethod
    def sample_weights(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Per-sample weights (N, M), zero for missing modalities, rows summing to 1."""

    def fuse(self, embeddings, mask):
        w = self.sample_weights(embeddings, mask)
        return (w.unsqueeze(-1) * self.stacked(embeddings)).sum(dim=1)


class WeightedSum(_Mixture):
    """F = Σ_m w_m · z_m over the present modalities, with Σ_m w_m = 1.

    ``weights`` fixes w (e.g. ``{"image": α, "text": β, "audio": γ}``; they are divided by
    their sum). Otherwise w = softmax(θ) with θ learned, starting equal. Missing
    modalities get weight 0 and the others are renormalised.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 64,
                 weights: Mapping[str, float] | None = None):
        super().__init__(dims, dim)
        if weights is not None:
            values = torch.tensor([float(weights[m]) for m in self.modalities])
            if (values < 0).any() or values.sum() <= 0:
                raise ValueError(f"fixed weights must be non-negative, not all 0: {weights}")
            self.register_buffer("logits", values.log())
        else:
            self.logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def sample_weights(self, embeddings, mask):
        logits = self.logits.expand(mask.shape[0], -1)
        return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)

    def weights(self) -> dict:
        """The global weights {modality: w_m} (all modalities present)."""
        w = torch.softmax(self.logits.detach(), dim=0)
        return {m: float(v) for m, v in zip(self.modalities, w)}


class GatedSum(_Mixture):
    """Per-sample weights w(x) = softmax(g([z_1; …; z_M])): a small gate network looks at
    all projected embeddings and decides, sample by sample, whom to trust."""

    def __init__(self, dims: Mapping[str, int], dim: int = 64, hidden: int = 64):
        super().__init__(dims, dim)
        m = len(self.modalities)
        self.gate = nn.Sequential(nn.Linear(m * dim, hidden), nn.ReLU(), nn.Linear(hidden, m))

    def sample_weights(self, embeddings, mask):
        z = self.stacked(embeddings) * mask.unsqueeze(-1)
        logits = self.gate(z.flatten(1))
        return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)


class ProductFusion(_Projected):
    """F = ⊙_m z_m, the element-wise (Hadamard) product; a missing modality counts as 1."""

    def __init__(self, dims: Mapping[str, int], dim: int = 64):
        super().__init__(dims, dim)
        self.out_dim = dim

    def fuse(self, embeddings, mask):
        z = self.stacked(embeddings)
        z = torch.where(mask.unsqueeze(-1), z, torch.ones_like(z))
        return z.prod(dim=1)


class ConcatFusion(Fusion):
    """Early fusion: F = [z_1; …; z_M], out_dim = Σ_m D_m; a missing modality is zeros.

    With ``normalize`` each z_m first goes through its own ``nn.LayerNorm(D_m)``, so that
    towers whose embeddings live on different scales (unit-length sentence embeddings
    beside 1,280 image features of size ~1) enter the head on an equal footing.
    """

    def __init__(self, dims: Mapping[str, int], normalize: bool = False):
        super().__init__(dims)
        self.out_dim = sum(dims.values())
        self.norms = (nn.ModuleDict({m: nn.LayerNorm(d) for m, d in dims.items()})
                      if normalize else None)

    def fuse(self, embeddings, mask):
        parts = []
        for i, m in enumerate(self.modalities):
            z = embeddings[m]
            if self.norms is not None:
                z = self.norms[m](torch.where(mask[:, i:i + 1], z, torch.zeros_like(z)))
            parts.append(z * mask[:, i:i + 1])
        return torch.cat(parts, dim=1)


class LateFusion(Fusion):
    """Late fusion: each modality predicts the classes on its own; F is the mean of the
    present modalities' logits, (N, num_classes). The model's head is then the identity."""

    is_late = True

    def __init__(self, dims: Mapping[str, int], num_classes: int):
        super().__init__(dims)
        self.out_dim = num_classes
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def per_modality(self, embeddings: Mapping[str, Tensor]) -> Tensor:
        """Each modality's logits, stacked: (N, M, num_classes)."""
        return torch.stack([self.heads[m](embeddings[m]) for m in self.modalities], dim=1)

    def fuse(self, embeddings, mask):
        logits = self.per_modality(embeddings) * mask.unsqueeze(-1)
        return logits.sum(dim=1) / mask.sum(dim=1, keepdim=True)


class ConvFusion(_Projected):
    """A 1-D convolution across the stacked modalities.

    The projected embeddings form M input channels over the feature axis, (N, M, dim);
    a Conv1d with ``channels`` outputs and ``kernel_size`` mixes modalities at
    neighbouring features → (N, channels · dim). With kernel size 1 and one channel its
    pre-activation is exactly a (learned, unnormalised) weighted sum plus a bias; the ReLU
    then clips it. Missing modalities are zeros.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 64, channels: int = 4,
                 kernel_size: int = 3):
        super().__init__(dims, dim)
        self.conv = nn.Conv1d(len(self.modalities), channels, kernel_size,
                              padding=kernel_size // 2)
        self.out_dim = channels * dim

    def fuse(self, embeddings, mask):
        z = self.stacked(embeddings) * mask.unsqueeze(-1)
        return torch.relu(self.conv(z)).flatten(1)


class TensorFusion(_Projected):
    """Tensor fusion (Zadeh et al., 2017): F = vec(⊗_m [z_m; 1]).

    Appending 1 keeps every lower-order term — each single modality and each pair — in
    the product. out_dim = (dim + 1) ** M, so ``dim`` must stay small. A missing modality
    contributes [0; 1], which keeps only the terms without it.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 16):
        super().__init__(dims, dim)
        self.out_dim = (dim + 1) ** len(self.modalities)

    def fuse(self, embeddings, mask):
        z = self.stacked(embeddings) * mask.unsqueeze(-1)
        ones = torch.ones_like(z[..., :1])
        z = torch.cat([z, ones], dim=-1)  # (N, M, dim + 1)
        fused = z[:, 0]
        for i in range(1, z.shape[1]):
            fused = torch.einsum("na,nb->nab", fused, z[:, i]).flatten(1)
        return fused


class LowRankFusion(Fusion):
    """Low-rank multimodal fusion (Liu et al., 2018).

    The tensor-fusion output times a weight tensor, W · vec(⊗_m [z_m; 1]), with W of rank
    R factorised per modality: F = Σ_{r=1}^R ⊙_m (W_m^{(r)} [z_m; 1]) — linear in the
    number of modalities instead of exponential. A missing modality uses [0; 1].
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 64, rank: int = 4):
        super().__init__(dims)
        self.out_dim = dim
        self.factors = nn.ParameterDict({
            m: nn.Parameter(torch.randn(rank, d + 1, dim) * (d + 1) ** -0.5)
            for m, d in dims.items()})

    def fuse(self, embeddings, mask):
        fused = None
        for i, m in enumerate(self.modalities):
            z = embeddings[m] * mask[:, i:i + 1]
            z = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)  # (N, D_m + 1)
            term = torch.einsum("nd,rdo->nro", z, self.factors[m])
            fused = term if fused is None else fused * term
        return fused.sum(dim=1)


class AttentionFusion(_Projected):
    """Cross-modal attention: the M projected embeddings are tokens that attend to each
    other (multi-head attention, then a residual and layer norm); F is the mean of the
    present tokens. Missing tokens are masked out of the keys and of the mean."""

    def __init__(self, dims: Mapping[str, int], dim: int = 64, heads: int = 4):
        super().__init__(dims, dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.modality_embedding = nn.Parameter(torch.zeros(len(self.modalities), dim))
        self.out_dim = dim

    def fuse(self, embeddings, mask):
        z = self.stacked(embeddings) + self.modality_embedding
        attended, _ = self.attention(z, z, z, key_padding_mask=~mask, need_weights=False)
        z = self.norm(z + attended)
        m = mask.unsqueeze(-1).to(z.dtype)
        return (z * m).sum(dim=1) / m.sum(dim=1)


class SequenceFusion(_Projected):
    """An LSTM reads the modalities as a sequence; F is its final state h_n[-1].

    Each modality is projected to ``dim`` and the M vectors form a sequence (N, M, dim)
    in the fixed order of ``modalities``; an ``nn.LSTM(dim, hidden, num_layers,
    batch_first=True)`` runs over it and the last layer's final hidden state (N, hidden)
    is the fused vector, ``out_dim = hidden``. This is what the blog post's
    ``MultiModalNet`` meant its LSTM to do (see :mod:`mmcourse.nn.post_model`).

    A sample's present modalities are moved to the front, in the same order, and packed
    (``pack_padded_sequence`` with ``enforce_sorted=False``), so the LSTM runs only over
    them: a missing modality's embedding, whatever its values (NaN included), never
    reaches the output or the gradients. Only the lengths go to the CPU, as packing needs.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 64, hidden: int = 64,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__(dims, dim)
        self.hidden = hidden
        self.lstm = nn.LSTM(dim, hidden, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.out_dim = hidden

    def sequence(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        """The projected present modalities moved to the front, (N, M, dim), and their
        count per sample, (N,); positions past the count are zeros."""
        # a missing embedding is replaced by zeros before the projection, so that NaN or
        # inf there cannot reach the projection's weight gradient either
        z = torch.stack([self.project[m](torch.where(mask[:, i:i + 1], embeddings[m],
                                                     torch.zeros_like(embeddings[m])))
                         for i, m in enumerate(self.modalities)], dim=1)
        m = mask.shape[1]
        position = torch.arange(m, device=mask.device)
        order = torch.argsort(position + m * (~mask).long(), dim=1)  # present first, in order
        z = z.gather(1, order.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
        lengths = mask.sum(dim=1)
        return z * (position < lengths.unsqueeze(1)).unsqueeze(-1).to(z.dtype), lengths

    def fuse(self, embeddings, mask):
        z, lengths = self.sequence(embeddings, mask)
        packed = pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n (num_layers, N, hidden), in the batch's order
        return h_n[-1]


FUSIONS = {
    "sum": WeightedSum,
    "learned": WeightedSum,
    "gated": GatedSum,
    "product": ProductFusion,
    "concat": ConcatFusion,
    "late": LateFusion,
    "conv": ConvFusion,
    "tensor": TensorFusion,
    "lowrank": LowRankFusion,
    "attention": AttentionFusion,
    "lstm": SequenceFusion,
}
"""Fusion name → class; :func:`make_fusion` builds one by name."""


def make_fusion(name: str, dims: Mapping[str, int], num_classes: int | None = None,
                **options) -> Fusion:
    """Build the fusion called ``name`` (see :data:`FUSIONS`) over ``dims``.

    ``sum`` needs ``weights`` (equal weights when omitted); ``late`` needs
    ``num_classes``; ``options`` go to the class (``dim``, ``rank``, ``heads``, ``hidden``, …).
    """
    if name not in FUSIONS:
        raise KeyError(f"unknown fusion {name!r}; choose from {', '.join(FUSIONS)}")
    if name == "sum":
        options.setdefault("weights", {m: 1.0 for m in dims})
    if name == "late":
        if num_classes is None:
            raise ValueError("late fusion needs num_classes")
        return LateFusion(dims, num_classes)
    return FUSIONS[name](dims, **options)
