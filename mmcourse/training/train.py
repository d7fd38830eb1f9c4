"""The one training loop every chapter uses.

:func:`fit` trains a model for a number of epochs and returns a :class:`FitResult` with the
per-epoch history, the best validation score and a time/throughput report. It handles:

* devices — whatever :func:`mmcourse.runtime.device.try_gpu` picks; mixed precision on CUDA
  (bfloat16 autocast, no loss scaling needed) and MPS;
* gradient clipping by global norm;
* a ``tqdm.auto`` progress bar with the running loss and accuracy;
* checkpoints — after every epoch the model, optimiser, scheduler, history and best
  weights go to ``checkpoint`` (loadable with ``torch.load(..., weights_only=True)``);
  with ``resume=True`` a later call continues from the last finished epoch. Every epoch
  reseeds the random generators from ``seed + epoch``, so a resumed run reproduces the
  uninterrupted run's metrics. A checkpoint records its run's settings
  (:func:`run_signature`); one saved with other settings is not resumed but kept as
  ``<name>.previous.pt``, with a warning, and the run starts afresh;
* early stopping on the validation metric, restoring the best weights at the end.

Batches are either tuples ``(inputs..., target)`` — the model is called as
``model(*inputs)`` — or dicts with a ``"label"`` entry — the model is called as
``model(batch)``. Pass ``forward`` to change that; a forward may also return
``((outputs, extra_loss), targets)`` to add an auxiliary loss term (for example an
adversarial one) to the training loss.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from mmcourse.runtime.cache import write_atomically
from mmcourse.runtime.device import autocast_dtype, try_gpu

from .metrics import accuracy

Batch = tuple | list | dict


def default_forward(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on one batch; return ``(outputs, targets)``.

    A tuple/list batch ``(x1, …, xk, y)`` gives ``model(x1, …, xk)`` and ``y``; a dict batch
    gives ``model(batch)`` and ``batch["label"]``.
    """
    if isinstance(batch, dict):
        return model(batch), batch["label"]
    *inputs, target = batch
    return model(*inputs), target


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor of a tuple/list/dict batch to ``device`` (others stay as they are)."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch


def _batch_size(target: torch.Tensor) -> int:
    return int(target.shape[0])


def _split_extra(output) -> tuple[torch.Tensor, torch.Tensor | float]:
    """(outputs, extra_loss) from a forward's output, extra 0.0 when there is none."""
    if isinstance(output, tuple):
        return output
    return output, 0.0


def _autocast(device: torch.device, enabled: bool):
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _to_cpu(output):
    """Detach a tensor, or every tensor of a dict, to float32 on the CPU."""
    if isinstance(output, dict):
        return {k: _to_cpu(v) for k, v in output.items()}
    out = output.detach()
    return (out.float() if out.is_floating_point() else out).cpu()


def _concat(parts: list):
    """Concatenate a list of tensors, or of dicts of tensors, along the first axis."""
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


def predict(model: nn.Module, loader: Iterable, device: torch.device | None = None,
            forward: Callable = default_forward, amp: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (N, …) and targets (N,) over a whole loader, concatenated on the CPU
    (float32 outputs).

    Each batch is moved to ``device`` (default: the model's own device, see
    :func:`model_device`) before ``forward(model, batch)`` runs in eval mode; an extra
    loss term a forward returns is dropped.
    """
    def outputs_and_targets(m: nn.Module, batch: Batch):
        out, target = forward(m, batch)
        return _split_extra(out)[0], target

    return embed(model, loader, outputs_and_targets, device, amp)


def embed_forward(model: nn.Module, batch: Batch):
    """The forward of :func:`embed`: ``(model.embed(batch), batch["label"] or None)``."""
    return model.embed(batch), batch.get("label") if isinstance(batch, dict) else None


@torch.no_grad()
def embed(model: nn.Module, loader: Iterable, fn: Callable = embed_forward,
          device: torch.device | None = None, amp: bool = False):
    """Embeddings of every batch of ``loader``, concatenated on the CPU, and the labels.

    ``fn(model, batch)`` returns ``(embedding, labels)``: the embedding a tensor (B, D) or
    a dict {name: (B, D_name)}, the labels (B,) or None. The default calls
    ``model.embed(batch)`` and reads ``batch["label"]``. Each batch is moved to the
    model's device first. Returns ``(embeddings (N, D) or {name: (N, D_name)}, labels
    (N,) or None)``, float32 on the CPU.
    """
    device = device or model_device(model)
    model.eval()
    outputs, labels = [], []
    for batch in loader:
        with _autocast(device, amp):
            out, label = fn(model, to_device(batch, device))
        outputs.append(_to_cpu(out))
        if label is not None:
            labels.append(label.cpu())
    return _concat(outputs), (torch.cat(labels) if labels else None)


def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None,
             device: torch.device | None = None, forward: Callable = default_forward,
             amp: bool = True) -> dict:
    """Mean loss and accuracy of a classifier over ``loader``: ``{"loss", "accuracy"}``."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    outputs, targets = predict(model, loader, device, forward, amp)
    return {"loss": float(loss_fn(outputs, targets)), "accuracy": accuracy(outputs, targets)}


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history`` maps ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
    ``lr`` and ``epoch_seconds`` to one value per epoch; ``best_epoch`` (1-based) and
    ``best_score`` refer to the metric named by ``monitor`` (a history key: a validation
    metric, or a training one when there is no validation data); ``seconds`` and
    ``samples_per_second`` cover the training epochs run in this call.
    """

    history: dict = field(default_factory=dict)
    best_epoch: int = 0
    best_score: float = float("nan")
    seconds: float = 0.0
    samples_per_second: float = 0.0
    stopped_early: bool = False
    resumed_from: int = 0
    monitor: str = "val_accuracy"

    def report(self) -> str:
        """A one-line summary: epochs, the best value of the monitored metric, time and
        throughput."""
        epochs = len(self.history.get("train_loss", []))
        resumed = f", resumed after epoch {self.resumed_from}" if self.resumed_from else ""
        stop = ", stopped early" if self.stopped_early else ""
        timing = (f"{self.seconds:.1f} s, {self.samples_per_second:,.0f} samples/s"
                  if self.seconds else "nothing left to train")
        return (f"{epochs} epochs{resumed}{stop}; best {self.monitor} {self.best_score:.4f} at "
                f"epoch {self.best_epoch}; {timing}")


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule that scales every group's learning rate by (s + 1) / w during the
    first w = ``warmup_steps`` steps, then by ½ (1 + cos(π p)) where p runs from 0 to 1
    over the remaining steps up to ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _seed_epoch(seed: int, epoch: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch)


def run_signature(model: nn.Module, optimizer: torch.optim.Optimizer, *, epochs: int,
                  steps_per_epoch: int, scheduler: str | None, clip_grad: float | None,
                  monitor: str, seed: int) -> dict:
    """The settings a checkpoint must share with a run to be resumed by it: every
    parameter's and buffer's name and shape, the optimiser's class with each parameter
    group's learning rate and weight decay, the number of epochs and of batches per
    epoch, the scheduler, the clipping norm, the monitored metric and the seed."""
    return {"parameters": [[name, list(t.shape)] for name, t in model.state_dict().items()],
            "optimizer": type(optimizer).__name__,
            "groups": [[g.get("lr"), g.get("weight_decay")] for g in optimizer.param_groups],
            "epochs": epochs, "steps_per_epoch": steps_per_epoch, "scheduler": scheduler,
            "clip_grad": clip_grad, "monitor": monitor, "seed": seed}


def _load_matching_checkpoint(path: Path, signature: dict, device) -> dict | None:
    """The checkpoint at ``path`` if it was saved with ``signature``; otherwise None, after
    moving it to ``<name>.previous.pt`` with a warning that says what differs."""
    state = torch.load(path, map_location=device, weights_only=True)
    saved = state.get("signature", {})
    differing = sorted(k for k in signature if saved.get(k) != signature[k])
    if not differing:
        return state
    backup = path.with_suffix(".previous.pt")
    path.replace(backup)
    warnings.warn(f"{path} was saved by a run with other settings ({', '.join(differing)}); "
                  f"training from scratch. The old checkpoint is kept as {backup}.",
                  stacklevel=3)
    return None


def make_scheduler(optimizer: torch.optim.Optimizer, scheduler: str | None, steps: int,
                   warmup: float = 0.1):
    """The per-batch learning-rate schedule named ``scheduler`` over ``steps`` batches:
    ``"onecycle"``, ``"cosine"``, ``"warmup_cosine"`` (a linear warm-up over the first
    ``warmup`` share of the steps, then cosine decay) or None (constant: returns None)."""
    if scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=steps)
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if scheduler == "warmup_cosine":
        return warmup_cosine(optimizer, round(warmup * steps), steps)
    if scheduler is not None:
        raise ValueError("scheduler must be 'onecycle', 'cosine', 'warmup_cosine' or None, "
                         f"not {scheduler!r}")
    return None


HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                "epoch_seconds")
"""What :func:`fit` records once per epoch (``FitResult.history``)."""


def _grad_scaler(device: torch.device, amp: bool):
    """A loss scaler where autocast runs in float16 on CUDA (bfloat16 needs none), else
    None."""
    if amp and device.type == "cuda" and autocast_dtype(device) == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


@dataclass
class _Run:
    """What one call of :func:`fit` trains with, and where it stands between epochs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    params: list
    loss_fn: Callable
    forward: Callable
    device: torch.device
    amp: bool
    clip_grad: float | None
    scaler: object = None
    best_state: dict | None = None
    since_best: int = 0


def _train_epoch(run: _Run, loader: Iterable, bar_desc: str, progress: bool
                 ) -> tuple[float, float, int]:
    """One pass over ``loader``: forward, backward, clipping, optimiser and scheduler
    steps per batch. Returns (mean training loss, training accuracy, samples)."""
    run.model.train()
    total_loss, correct, count = 0.0, 0, 0
    bar = tqdm(loader, desc=bar_desc, leave=False, disable=not progress)
    for batch in bar:
        batch = to_device(batch, run.device)
        with _autocast(run.device, run.amp):
            output, target = run.forward(run.model, batch)
            output, extra = _split_extra(output)
            loss = run.loss_fn(output.float(), target) + extra
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is not None:
            run.scaler.scale(loss).backward()
            run.scaler.unscale_(run.optimizer)
        else:
            loss.backward()
        if run.clip_grad is not None:
            nn.utils.clip_grad_norm_(run.params, run.clip_grad)
        if run.scaler is not None:
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            run.optimizer.step()
        if run.scheduler is not None:
            run.scheduler.step()
        n = _batch_size(target)
        total_loss += float(loss.detach()) * n
        if output.ndim == 2 and target.ndim == 1:
            correct += int((output.argmax(-1) == target).sum())
        count += n
        bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.3f}")
    return total_loss / count, correct / count, count


def _resume(run: _Run, result: FitResult, checkpoint: Path | None, resume: bool,
            signature: dict) -> int:
    """Load a matching checkpoint into ``run`` and ``result``; return the epoch to start
    from (0 when there is none to resume)."""
    if checkpoint is None or not resume or not checkpoint.exists():
        return 0
    state = _load_matching_checkpoint(checkpoint, signature, run.device)
    if state is None:
        return 0
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("scheduler"):
        run.scheduler.load_state_dict(state["scheduler"])
    result.history = {k: list(v) for k, v in state["history"].items()}
    result.best_epoch, result.best_score = state["best_epoch"], state["best_score"]
    run.best_state, run.since_best = state["best_model"], state["since_best"]
    result.resumed_from = state["epoch"]
    return state["epoch"]


def _record_epoch(run: _Run, result: FitResult, val_loader: Iterable | None,
                  train: tuple[float, float], seconds: float) -> None:
    """Append one epoch to the history: training loss and accuracy, learning rate, time,
    and the validation loss and accuracy when there is a validation loader."""
    h = result.history
    h["train_loss"].append(train[0])
    h["train_accuracy"].append(train[1])
    h["lr"].append(run.optimizer.param_groups[0]["lr"])
    h["epoch_seconds"].append(seconds)
    if val_loader is not None:
        scores = evaluate(run.model, val_loader, run.loss_fn, run.device, run.forward, run.amp)
        h["val_loss"].append(scores["loss"])
        h["val_accuracy"].append(scores["accuracy"])


def _print_epoch(h: dict, epoch: int, seconds: float) -> None:
    """One line per epoch: training (and validation, when there is some) loss and accuracy."""
    val = (f", val loss {h['val_loss'][-1]:.4f}, val acc {h['val_accuracy'][-1]:.4f}"
           if h["val_loss"] else "")
    print(f"epoch {epoch + 1:>3}: train loss {h['train_loss'][-1]:.4f}, "
          f"train acc {h['train_accuracy'][-1]:.4f}{val} ({seconds:.1f} s)")


def _keep_if_best(run: _Run, result: FitResult, epoch: int, maximise: bool) -> None:
    """Note epoch ``epoch`` (0-based) as the best so far if its monitored score is."""
    score = result.history[result.monitor][-1]
    better = (math.isnan(result.best_score)
              or (score > result.best_score if maximise else score < result.best_score))
    if better:
        result.best_epoch, result.best_score, run.since_best = epoch + 1, score, 0
        run.best_state = copy.deepcopy(run.model.state_dict())
    else:
        run.since_best += 1


def _save(run: _Run, result: FitResult, checkpoint: Path, epoch: int, signature: dict) -> None:
    """Write everything a later call needs to resume after epoch ``epoch`` (0-based)."""
    snapshot = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict() if run.scheduler is not None else {},
                "history": result.history, "epoch": epoch + 1,
                "best_epoch": result.best_epoch, "best_score": result.best_score,
                "best_model": run.best_state, "since_best": run.since_best,
                "signature": signature}
    write_atomically(checkpoint, lambda tmp: torch.save(snapshot, tmp))


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, *,
        epochs: int = 10, optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        weight_decay: float = 0.0, loss_fn: Callable | None = None,
        scheduler: str | None = "onecycle", warmup: float = 0.1,
        clip_grad: float | None = 1.0,
        forward: Callable = default_forward, device: torch.device | None = None,
        amp: bool = True, checkpoint: str | Path | None = None, resume: bool = True,
        patience: int | None = None, monitor: str = "val_accuracy", seed: int = 0,
        progress: bool = True, desc: str = "train") -> FitResult:
    """Train ``model`` for ``epochs`` epochs; see the module docstring.

    Args:
        optimizer: defaults to AdamW over the trainable parameters with ``lr`` and
            ``weight_decay``.
        scheduler: see :func:`make_scheduler` (stepped once per batch).
        monitor: the history key that picks the best epoch and drives early stopping;
            ``val_accuracy`` is maximised, any key ending in ``loss`` minimised (without a
            validation loader, ``train_accuracy`` is monitored).
        patience: stop after this many epochs without improvement (None: never).
    """
    device = device or try_gpu()
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    run = _Run(model, optimizer, make_scheduler(optimizer, scheduler, epochs * len(train_loader),
                                                warmup),
               params, loss_fn or nn.CrossEntropyLoss(), forward, device, amp, clip_grad,
               scaler=_grad_scaler(device, amp))
    if val_loader is None and monitor.startswith("val_"):
        monitor = "train_" + monitor[len("val_"):]
    named = f"{scheduler}({warmup})" if scheduler == "warmup_cosine" else scheduler
    signature = run_signature(model, optimizer, epochs=epochs, steps_per_epoch=len(train_loader),
                              scheduler=named, clip_grad=clip_grad, monitor=monitor, seed=seed)
    result = FitResult(history={k: [] for k in HISTORY_KEYS}, monitor=monitor)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    start = _resume(run, result, checkpoint, resume, signature)
    samples, train_time = 0, 0.0
    for epoch in range(start, epochs):
        if patience is not None and run.since_best >= patience:
            result.stopped_early = True
            break
        _seed_epoch(seed, epoch)
        tic = time.perf_counter()
        loss, acc, count = _train_epoch(run, train_loader, f"{desc} {epoch + 1}/{epochs}", progress)
        seconds = time.perf_counter() - tic
        train_time += seconds
        samples += count
        _record_epoch(run, result, val_loader, (loss, acc), seconds)
        _keep_if_best(run, result, epoch, maximise=not monitor.endswith("loss"))
        if progress:
            _print_epoch(result.history, epoch, seconds)
        if checkpoint is not None:
            _save(run, result, checkpoint, epoch, signature)
    if run.best_state is not None and result.best_epoch != len(result.history["train_loss"]):
        model.load_state_dict(run.best_state)
    result.seconds = train_time
    result.samples_per_second = samples / train_time if train_time else 0.0
    return result


def load_weights(model: nn.Module, path: str | Path, best: bool = True) -> nn.Module:
    """Load a :func:`fit` checkpoint's best (or last) weights into ``model``; return it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["best_model"] if best and state.get("best_model")
                          else state["model"])
    return model
