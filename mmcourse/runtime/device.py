"""Device selection: CUDA, then Apple MPS, then the CPU, so no chapter hard-codes a device."""
from __future__ import annotations

import threading

import psutil
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


class PeakMemory:
    """Peak memory of the code run inside ``with PeakMemory(device) as peak:``, in MiB
    (``peak.mib``).

    On CUDA it is the peak of the tensors allocated on ``device`` (the allocator's
    statistics are reset on entry). On the CPU it is the growth of the process's resident
    memory above its size on entry, sampled every 20 ms by a background thread.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.mib = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self


        process = psutil.Process()
        self._start = self._peak = process.memory_info().rss
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.02):
                self._peak = max(self._peak, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.mib = (self._peak - self._start) / 2**20
