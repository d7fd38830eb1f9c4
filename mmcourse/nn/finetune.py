"""Fine-tuning (微调) a pretrained model: what to train, at which rate, and LoRA adapters.

* :func:`freeze` and :func:`trainable_count` — switch parameters off and count what is
  left to train;
* :func:`parameter_groups` — one learning rate per part of the model (discriminative
  rates), with no weight decay on biases and normalisation weights;
* :class:`LoRALinear` and :class:`LoRAConv2d` — low-rank adapters: a frozen weight W plus
  a trained update (alpha / r)·B A of rank r, which :meth:`LoRALinear.merged` folds back
  into one layer; :func:`add_lora` puts them on the layers a model names;
* :func:`apply_strategy` — the chapter's four strategies (:data:`STRATEGIES`) on a model
  of :mod:`mmcourse.nn.models`: the frozen probe, partial unfreezing, full fine-tuning and
  LoRA.

The adapters follow the layout of the ``peft`` library (``lora_A`` initialised like a
linear layer, ``lora_B`` zero, so training starts from the pretrained function);
``tests/test_finetune.py`` checks them against ``peft`` on the same weights.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

STRATEGIES = ("probe", "partial", "full", "lora")
"""What a fine-tuning run trains: ``probe`` — only fusion and head on frozen pretrained
towers; ``partial`` — also the top stages of each pretrained tower; ``full`` —
everything; ``lora`` — LoRA adapters on the pretrained towers, plus fusion and head.
Towers that are not pretrained (the audio CRNN) are trained in every strategy."""


def freeze(module: nn.Module) -> nn.Module:
    """Switch off ``requires_grad`` for every parameter of ``module``; return it."""
    return module.requires_grad_(False)


def trainable_count(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` that will be trained (``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _no_decay(name: str, p: Tensor) -> bool:
    """Biases and 1-D parameters (norm weights) are not decayed."""
    return p.ndim <= 1 or name.endswith(".bias")


def parameter_groups(model: nn.Module, lrs: Mapping[str, float],
                     weight_decay: float = 0.01) -> list[dict]:
    """Optimiser parameter groups with one learning rate per name prefix.

    ``lrs`` maps a parameter-name prefix (``"encoders.image"``, ``"head"``, ``""`` for
    everything else) to a learning rate; each trainable parameter takes the rate of the
    longest prefix its name starts with. Frozen parameters are left out. Within a prefix,
    biases and 1-D parameters form their own group with weight decay 0. Returns a list
    of {"params", "lr", "weight_decay", "name"} dicts for ``torch.optim.AdamW``. A
    trainable parameter that matches no prefix raises ValueError.
    """
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        matches = [k for k in lrs if name == k or name.startswith(k + ".") or k == ""]
        if not matches:
            raise ValueError(f"parameter {name} matches none of the prefixes {list(lrs)}; "
                             "add its prefix (or '' for the rest) to lrs")
        prefix = max(matches, key=len)
        groups.setdefault((prefix, _no_decay(name, p)), []).append(p)
    return [{"params": params, "lr": lrs[prefix], "name": prefix or "rest",
             "weight_decay": 0.0 if no_decay else weight_decay}
            for (prefix, no_decay), params in groups.items()]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a low-rank update: x (…, in) → (…, out).

    ``y = base(x) + (alpha / rank) · dropout(x) Aᵀ Bᵀ`` with ``lora_A`` (rank, in) and
    ``lora_B`` (out, rank). B starts at zero, so the layer starts as ``base``; only A and
    B are trained, rank·(in + out) numbers instead of in·out.
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        self.base = freeze(base)
        self.rank, self.scaling = rank, alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def delta(self) -> Tensor:
        """The update (alpha / rank)·B A, shaped like the base weight (out, in)."""
        return self.scaling * self.lora_B @ self.lora_A

    def forward(self, x: Tensor) -> Tensor:
        """x (…, in) → (…, out)."""
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_A),
                                       self.lora_B) * self.scaling

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """One ``nn.Linear`` with weight W + (alpha / rank)·B A: the same function (in eval
        mode) at the cost of the base layer."""
        layer = nn.Linear(self.base.in_features, self.base.out_features,
                          bias=self.base.bias is not None, device=self.base.weight.device,
                          dtype=self.base.weight.dtype)
        layer.weight.copy_(self.base.weight + self.delta())
        if self.base.bias is not None:
            layer.bias.copy_(self.base.bias)
        return layer


class LoRAConv2d(nn.Module):
    """A frozen ``nn.Conv2d`` plus a low-rank update: (N, C_in, H, W) → (N, C_out, H', W').

    ``lora_A`` is a convolution to ``rank`` channels with the base's kernel, stride and
    padding, ``lora_B`` a 1×1 convolution back to C_out (zero at the start). For a 1×1
    base (EfficientNet's head convolution) this is :class:`LoRALinear` applied at every
    pixel.
    """

    def __init__(self, base: nn.Conv2d, rank: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0):
        super().__init__()
        if base.groups != 1:
            raise ValueError("LoRA needs an ungrouped convolution (groups=1)")
        self.base = freeze(base)
        self.rank, self.scaling = rank, alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_channels, *base.kernel_size,
                                               **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_channels, rank, 1, 1, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) → (N, C_out, H', W')."""
        b = self.base
        low = F.conv2d(self.dropout(x), self.lora_A, None, b.stride, b.padding, b.dilation)
        return b(x) + F.conv2d(low, self.lora_B) * self.scaling


def add_lora(model: nn.Module, targets: Iterable[str], rank: int = 8, alpha: float = 16.0,
             dropout: float = 0.0) -> list[str]:
    """Wrap every ``nn.Linear`` or ``nn.Conv2d`` of ``model`` whose name ends with one of
    ``targets`` (as ``peft``'s ``target_modules`` do: ``"query"`` matches
    ``encoder.layer.0.attention.self.query``) in :class:`LoRALinear` /
    :class:`LoRAConv2d`, in place. Returns the wrapped names; raises ValueError when none
    matches."""
    targets = tuple(targets)
    names = [name for name, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d)) and name.split(".")[-1] in targets]
    if not names:
        raise ValueError(f"no Linear or Conv2d layer of the model is named {targets}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, child)
        wrapper = LoRALinear if isinstance(layer, nn.Linear) else LoRAConv2d
        setattr(parent, child, wrapper(layer, rank, alpha, dropout))
    return names


def merge_lora(model: nn.Module) -> int:
    """Replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear``, in
    place; return how many were merged."""
    merged = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, m in merged:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, m.merged())
    return len(merged)


def apply_strategy(model: nn.Module, strategy: str, *, pretrained: Iterable[str],
                   top_stages: int = 2, lora_rank: int = 8, lora_alpha: float = 16.0,
                   lora_targets: Mapping[str, Iterable[str]] | None = None) -> nn.Module:
    """Set up ``model`` (a :class:`~mmcourse.nn.models.MultimodalModel`) for ``strategy``
    (one of :data:`STRATEGIES`), in place, and return it; ``model.strategy`` records it.

    ``pretrained`` names the modalities whose encoders start from pretrained weights;
    only those are frozen, partly unfrozen or adapted. Each such encoder must offer
    ``stages()`` (its blocks, bottom to top) and ``set_trainable_stages(k)``, as
    :class:`~mmcourse.nn.encoders.ImageEncoder` and :class:`~mmcourse.nn.encoders.MiniLMEncoder`
    do. ``top_stages`` is how many top stages ``partial`` trains; ``lora_targets`` maps a
    modality to the layer names that get adapters (default :data:`LORA_TARGETS`).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    lora_targets = dict(LORA_TARGETS if lora_targets is None else lora_targets)
    for modality in pretrained:
        encoder = model.encoders[modality]
        if strategy == "full":
            encoder.set_trainable_stages(None)
        elif strategy == "partial":
            encoder.set_trainable_stages(top_stages)
        else:
            encoder.set_trainable_stages(0)
        if strategy == "lora":
            add_lora(encoder, lora_targets[modality], lora_rank, lora_alpha)
    model.strategy = strategy
    return model


LORA_TARGETS = {"image": ("conv_head",), "text": ("query", "value")}
"""Default LoRA layers: EfficientNet-Lite0's 1×1 head convolution and MiniLM's attention
query and value projections."""
