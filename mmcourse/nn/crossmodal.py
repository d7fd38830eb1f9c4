"""Cross-modal learning (跨模态学习): alignment (对齐), adversarial (对抗) and
self-supervised (自监督) objectives.

* :func:`info_nce` and :class:`ContrastiveLoss` — symmetric InfoNCE with a learned
  temperature: paired embeddings of two modalities are pulled together and every other
  pair in the batch pushed apart (the CLIP objective).
* :class:`GradientReversal` and :class:`ModalityDiscriminator` — adversarial alignment: a
  discriminator learns to tell which modality an embedding came from, while the reversed
  gradient trains the encoders to make that impossible.
* :class:`ContrastiveModel` — self-supervised pretraining on unlabelled pairs: two
  encoders with projection heads trained with InfoNCE; it plugs into
  :func:`mmcourse.training.train.fit` through :func:`contrastive_forward` and
  :func:`symmetric_cross_entropy`, which reports the in-batch retrieval accuracy.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mmcourse.training.metrics import accuracy

from .models import INPUTS


def info_nce(a: Tensor, b: Tensor, temperature: Tensor | float = 0.07) -> Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` (N, D) and ``b`` (N, D).

    With unit vectors â_i, b̂_j and logits s_ij = â_i · b̂_j / τ,

        L = ½ [ −(1/N) Σ_i log softmax_j(s_ij)[i]  −(1/N) Σ_j log softmax_i(s_ij)[j] ],

    the mean cross-entropy of finding the partner in both directions. For random
    high-dimensional embeddings s ≈ 0 and L ≈ log N; for N orthonormal pairs
    L = log(1 + (N − 1) e^{−1/τ}).
    """
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    return symmetric_cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def symmetric_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean of the cross-entropies of ``logits`` (N, N) by rows and by columns, where
    ``targets`` (N,) gives each row's (and column's) partner — InfoNCE's two directions."""
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class ContrastiveLoss(nn.Module):
    """:func:`info_nce` with a learned temperature τ = exp(−t), t initialised to log(1/0.07)
    and τ kept above 0.01 (as in CLIP)."""

    def __init__(self, initial_temperature: float = 0.07, min_temperature: float = 0.01):
        super().__init__()
        self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1 / initial_temperature)))
        self.max_log = math.log(1 / min_temperature)

    @property
    def temperature(self) -> Tensor:
        """The current τ (a scalar tensor)."""
        return torch.exp(-self.log_inverse_temperature.clamp(max=self.max_log))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """The loss for paired ``a`` (N, D) and ``b`` (N, D)."""
        return info_nce(a, b, self.temperature)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, strength):
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.strength * grad, None


class GradientReversal(nn.Module):
    """Identity on the forward pass; multiplies the gradient by −``strength`` backwards
    (Ganin & Lempitsky, 2015). Placed before a discriminator, it makes the layers below
    maximise the discriminator's loss while the discriminator minimises it."""

    def __init__(self, strength: float = 1.0):
        super().__init__()
        self.strength = strength

    def forward(self, x: Tensor) -> Tensor:
        """x (…) → x, with the reversed gradient."""
        return _ReverseGradient.apply(x, self.strength)


class ModalityDiscriminator(nn.Module):
    """Predicts which of ``num_modalities`` an embedding (N, dim) came from, behind a
    :class:`GradientReversal`: logits (N, num_modalities)."""

    def __init__(self, dim: int, num_modalities: int = 2, hidden: int = 64,
                 strength: float = 1.0):
        super().__init__()
        self.reverse = GradientReversal(strength)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_modalities))

    def forward(self, x: Tensor) -> Tensor:
        """Embeddings (N, dim) → modality logits (N, num_modalities)."""
        return self.net(self.reverse(x))

    def loss(self, embeddings: Sequence[Tensor]) -> tuple[Tensor, float]:
        """Cross-entropy of telling the modalities apart, and the discriminator's accuracy.

        ``embeddings[m]`` holds modality m's embeddings (N_m, dim); chance accuracy is
        about 1 / num_modalities when the modalities are balanced.
        """
        x = torch.cat(list(embeddings))
        y = torch.cat([torch.full((len(e),), m, device=x.device, dtype=torch.long)
                       for m, e in enumerate(embeddings)])
        logits = self(x)
        return F.cross_entropy(logits, y), accuracy(logits, y)


class ContrastiveModel(nn.Module):
    """Two encoders, a projection head each, and a learned temperature: batch → logits.

    ``forward(batch)`` embeds modality ``a`` and ``b`` of the batch (inputs chosen by
    ``inputs``, as in :class:`mmcourse.nn.models.MultimodalModel`), projects both to ``dim``,
    normalises, and returns the similarity logits (N, N) = â b̂ᵀ / τ; row i's partner is
    column i. Train it with ``fit(..., forward=contrastive_forward,
    loss_fn=symmetric_cross_entropy)``.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], dim: int = 64,
                 inputs: Mapping[str, tuple] | None = None, initial_temperature: float = 0.1):
        super().__init__()

        if len(encoders) != 2:
            raise ValueError(f"contrastive pretraining pairs two modalities, got {list(encoders)}")
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.projections = nn.ModuleDict({m: nn.Linear(e.out_dim, dim) for m, e in encoders.items()})
        self.loss = ContrastiveLoss(initial_temperature)
        self.inputs = dict(INPUTS if inputs is None else inputs)

    def embed(self, batch: Mapping[str, Tensor]) -> dict:
        """Normalised projected embeddings {modality: (N, dim)}."""
        return {m: F.normalize(self.projections[m](enc(*(batch[k] for k in self.inputs[m]))),
                               dim=-1) for m, enc in self.encoders.items()}

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Similarity logits (N, N) between modality a (rows) and b (columns)."""
        z = self.embed(batch)
        a, b = (z[m] for m in self.modalities)
        return a @ b.T / self.loss.temperature


def contrastive_forward(model: ContrastiveModel, batch: Mapping[str, Tensor]
                        ) -> tuple[Tensor, Tensor]:
    """``fit``'s forward for a :class:`ContrastiveModel`: (logits (N, N), targets arange(N))."""
    logits = model(batch)
    return logits, torch.arange(logits.shape[0], device=logits.device)
