"""Device selection: CUDA, then Apple MPS, then the CPU, so no chapter hard-codes a device."""
from __future__ import annotations

import torch


def try_gpu(index: int = 0) -> torch.device:
    """Return ``cuda:index`` if it exists, else ``mps`` if available, else ``cpu``."""
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return torch.device(f"cuda:{index}")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype to autocast to on ``device``, or None for float32.

    bfloat16 on CUDA GPUs that support it (it needs no loss scaling), float16 on MPS,
    nothing on the CPU, where autocast would slow small models down.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def describe(device: torch.device) -> str:
    """A one-line human description of ``device``."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device}: {props.name}, {props.total_memory / 2**30:.0f} GiB"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"
