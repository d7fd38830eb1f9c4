"""Image preprocessing: letterboxing, training and evaluation transforms, de-normalising.

The three steps for images:

1. **Cleaning** — :func:`letterbox` brings pictures of any size, shape and mode to one
   square RGB size without distorting them.
2. **Augmentation** — :func:`train_transform` crops, flips and recolours at random.
3. **Normalisation** — both transforms end by scaling to [0, 1] and subtracting the
   per-channel ``mean`` and dividing by ``std`` that the (pre-trained) model expects;
   :func:`denormalize` undoes that for plotting.
"""
from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, used by most torchvision pre-trained weights."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet."""
HALF_MEAN_STD = (0.5, 0.5, 0.5)
"""Mean and std that map [0, 1] to [-1, 1], as the EfficientNet-Lite0 weights expect."""


def crop_margin(size: int) -> int:
    """Side ``round(size·256/224)`` to resize a picture to before cutting its central
    ``size``×``size`` crop: the ImageNet convention of 256 px pictures and 224 px crops,
    at any crop size."""
    return round(size * 256 / 224)


def letterbox(image: Image.Image, size: int,
              fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Fit a PIL image into a ``size``×``size`` RGB PIL image, keeping its aspect ratio.

    The longer side is scaled to ``size`` (Lanczos) and the picture is centred on a
    canvas of colour ``fill`` (white by default), which fills the bands left over and
    any transparent pixels. Any PIL mode is accepted; the result is always ``"RGB"``.
    """
    rgba = image.convert("RGBA")
    scale = size / max(rgba.size)
    width = max(1, round(rgba.width * scale))
    height = max(1, round(rgba.height * scale))
    resized = rgba.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(resized, ((size - width) // 2, (size - height) // 2), mask=resized)
    return canvas


def train_transform(size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Random training transform: PIL RGB or uint8 (3, H, W) → float32 (3, size, size).

    Crops a random 60–100 % of the area with a random aspect ratio and resizes it to
    ``size``, flips left–right half of the time, jitters brightness, contrast and
    saturation by up to 20 %, scales to [0, 1] and normalises with ``mean`` and ``std``.
    The draws come from PyTorch's global generator, so ``torch.manual_seed`` fixes them.
    """
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.6, 1.0)),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def eval_transform(size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Deterministic evaluation transform: PIL RGB or uint8 (3, H, W) → float32 (3, size, size).

    Resizes the shorter side to :func:`crop_margin` (``size``) and takes the central
    ``size``×``size``
    crop (the usual ImageNet evaluation), scales to [0, 1] and normalises with ``mean``
    and ``std``.
    """
    return v2.Compose([
        v2.Resize(crop_margin(size)),
        v2.CenterCrop(size),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def denormalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo ``Normalize`` for plotting: float (..., 3, H, W) → same shape, clipped to [0, 1]."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0.0, 1.0)
