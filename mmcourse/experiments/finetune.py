"""Chapter 06's recipe: the full multimodal model fine-tuned on the stamps protocol.

Data (:func:`loaders`): the 738 protocol stamps of 10 categories
(:func:`mmcourse.data.protocol_stamps`) and their 5 unshuffled stratified folds. Each
stamp gives three inputs, held as tensors on the training device
(:class:`mmcourse.training.batches.TensorSet`):

* its picture, decoded once, letterboxed on white to ``size``·256/224 px and cached as
  uint8; training crops a random ``size`` window and flips it, evaluation takes the
  centre;
* its English caption as all-MiniLM-L6-v2 word pieces;
* its spoken caption in the language with the most clips among these stamps (French,
  724 of 738) as log-mel frames; a stamp without one is marked absent
  (``audio_present``), and the fusion leaves it out.

The model (:func:`model`) is encoders + fusion + head: pretrained EfficientNet-Lite0 and
MiniLM towers and an audio CRNN trained here, set up by one of the strategies of
:mod:`mmcourse.nn.finetune`. The frozen-feature probe (:func:`probe`) runs the same towers
on the same centre crops, standardises the features on the training folds and fits a
logistic regression (C = 0.1). A *row* of the comparison is ``strategy/modalities`` with
an optional ``/weighted`` (class-weighted loss) or ``/sampler`` (class-balanced sampling)
for the class imbalance; :func:`run` evaluates every row of ``Settings.rows`` on the
folds and reports accuracy and macro-F1 (mean ± std over folds), trainable parameters,
wall time and peak memory.

Full mode on a CUDA GPU trains at 224 px; on the CPU at 96 px for 6 epochs
(EfficientNet-Lite0 trains at about 75 pictures/s on 2 cores at 96 px, 7 at 224 px), and
every number says which size produced it. :func:`finetune_one` trains one model and
writes its metrics, weights, learning curve and confusion matrix to a folder
(``python -m mmcourse finetune``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mmcourse.data import (image_array, load_spoken_captions, load_stamps, protocol_folds,
                           protocol_stamps)
from mmcourse.data.splits import stratified_split
from mmcourse.display.plots import plot_confusion, plot_history
from mmcourse.nn.encoders import tokenize_captions
from mmcourse.nn.finetune import apply_strategy, parameter_groups, trainable_count
from mmcourse.nn.models import INPUTS, build_model
from mmcourse.preprocessing import crop_margin
from mmcourse.runtime import config
from mmcourse.runtime.device import PeakMemory, try_gpu
from mmcourse.training.batches import DeviceBatches, TensorSet, balanced_weights, class_weights
from mmcourse.training.metrics import classification_scores, confusion_matrix, mean_sd
from mmcourse.training.model_file import save_finetuned
from mmcourse.training.train import FitResult, embed, fit, predict

from . import Outcome, checkpoint, mode_settings

MODALITIES = ("image", "text", "audio")
"""The model's modalities, in the fusion's order."""
PRETRAINED = ("image", "text")
"""Modalities whose towers start from pretrained weights."""
CPU_SIZE = 96
"""Picture size on a CPU (and in fast mode everywhere)."""
GPU_SIZE = 224
"""Picture size in full mode on a CUDA GPU."""
ROWS = ("probe/image", "probe/text", "probe/image+text",
        "full/image", "full/text", "full/audio", "full/all",
        "partial/all", "lora/all", "full/all/weighted", "full/all/sampler")
"""The rows of the full comparison table."""


@dataclass(frozen=True)
class Settings:
    """The recipe's settings; the defaults are the full run's on the CPU."""

    size: int | None = None
    """Picture size the towers see (training crops and evaluation centre crops); None:
    the device's, fixed by :func:`for_device` when a run starts."""
    epochs: int = 6
    batch_size: int = 32
    lr_image: float = 3e-4
    """Peak learning rate of the EfficientNet tower (AdamW)."""
    lr_text: float = 5e-5
    """Peak learning rate of the MiniLM tower."""
    lr_lora: float = 1e-3
    """Peak learning rate of the LoRA adapters."""
    lr_audio: float = 1e-3
    """Peak learning rate of the audio CRNN."""
    lr_head: float = 1e-3
    """Peak learning rate of fusion and head."""
    weight_decay: float = 0.01
    warmup: float = 0.1
    """Share of the steps with a linear learning-rate warm-up before the cosine decay."""
    fusion: str = "concat"
    """A fusion of chapter 04 (:func:`mmcourse.nn.fusion.make_fusion`); ``concat`` puts each
    tower's embedding through its own layer norm first."""
    dropout: float = 0.2
    """Dropout before the linear head."""
    top_stages: int = 2
    """Top stages of each pretrained tower that the ``partial`` strategy trains."""
    lora_rank: int = 8
    lora_alpha: float = 16.0
    probe_c: float = 0.1
    """Inverse regularisation strength of the probe's logistic regression."""
    n_mels: int = 64
    frame_pool: int = 3
    """The audio tower reads 30 ms frames: every 3 log-mel frames (10 ms apart) averaged."""
    max_frames: int = 100
    """Spoken captions are cut to this many (pooled) frames, 3 s."""
    folds: int = 5
    """How many of the 5 protocol folds to run (fold 0 first)."""
    limit: int | None = None
    """Keep a category-stratified subset of this many stamps (None: all 738)."""
    rows: tuple = ROWS
    """The rows of the comparison (see :func:`parse_row`)."""
    channels_last: bool = True
    """Pictures in channels-last memory layout on a CUDA GPU (see :func:`channels_last`)."""
    compile: bool = False
    """Run the model through ``torch.compile`` (worth it on a GPU for long runs)."""
    seed: int = 0


FAST = dict(size=CPU_SIZE, epochs=2, folds=1, rows=("probe/image+text", "full/all"))
"""What fast mode changes: 96 px pictures, 2 epochs, the first fold, two rows."""


def settings(**overrides) -> Settings:
    """The active mode's :class:`Settings` (fast mode applies :data:`FAST`), with
    ``overrides`` on top. They name no device: a size left to the device is fixed by
    :func:`for_device` when a run starts."""
    return mode_settings(Settings(), FAST, overrides)


def run_name(row: str, fold: int) -> str:
    """The checkpoint name of a table row's model trained on ``fold`` ("full/all", 0 →
    "finetune-full-all-fold0"); the chapter loads the table's run through it."""
    return f"finetune-{row.replace('/', '-')}-fold{fold}"


def for_device(s: Settings, device: torch.device) -> Settings:
    """``s`` with a picture size left to the device fixed: :data:`GPU_SIZE` on a CUDA GPU,
    :data:`CPU_SIZE` elsewhere; a size already given stays."""
    if s.size is not None:
        return s
    return dataclasses.replace(s, size=GPU_SIZE if device.type == "cuda" else CPU_SIZE)


def audio_language(stamps) -> str:
    """The language with the most spoken captions among ``stamps``."""
    counts: dict[str, int] = {}
    for stamp in stamps:
        for lang in stamp.spoken:
            counts[lang] = counts.get(lang, 0) + 1
    return max(sorted(counts), key=counts.get)


@dataclass
class StampData:
    """The protocol stamps as tensors: ``data`` (see :func:`stamp_tensors`), the
    ``stamps``, ``categories`` in label order, the spoken ``language`` and the ``folds``
    [(train indices, test indices)]."""

    data: TensorSet
    stamps: list
    categories: list
    language: str
    folds: list

    def batches(self, index, s: Settings, train: bool, modalities=MODALITIES, rank: int = 0,
                world: int = 1, balance: str = "none") -> DeviceBatches:
        """Batches of the rows ``index`` holding what a model of ``modalities`` reads:
        shuffled, augmented and (with ``balance == "sampler"``) class-balanced for
        training; in order and centre-cropped otherwise. A model of audio alone gets no
        presence mask: a stamp without a clip is an empty clip to it."""
        weights = (balanced_weights(self.data.tensors["label"].cpu()[index])
                   if train and balance == "sampler" else None)
        keys = ["label", *(k for m in MODALITIES if m in modalities for k in INPUTS[m])]
        if "audio" in modalities and len(modalities) > 1:
            keys.append("audio_present")
        return DeviceBatches(self.data, index, s.batch_size if train else 2 * s.batch_size,
                             s.size, shuffle=train, augment=train, sample_weights=weights,
                             rank=rank, world=world, keys=keys,
                             channels_last=channels_last(s, self.data.device))


def channels_last(s: Settings, device: torch.device) -> bool:
    """Whether pictures go channels-last: with ``s.channels_last`` on a CUDA GPU, where
    tensor cores want it. On the CPU, benchmarks/throughput.py measured no clear gain on
    the 2-core machine, so pictures stay NCHW there."""
    return s.channels_last and device.type == "cuda"


def pool_frames(frames: torch.Tensor, k: int) -> torch.Tensor:
    """Average every ``k`` consecutive frames: (T, F) → (max(1, T // k), F)."""
    t = max(1, len(frames) // k)
    return frames[:t * k].reshape(t, -1, frames.shape[1]).mean(1) if len(frames) >= k else \
        frames.mean(0, keepdim=True)


def stamp_tensors(stamps, size: int, n_mels: int, max_frames: int, language: str,
                  frame_pool: int = 1) -> dict:
    """Model inputs of ``stamps`` (N): ``image`` uint8 (N, 3, S, S) letterboxed to
    S = :func:`~mmcourse.preprocessing.crop_margin` (``size``); ``tokens`` int64 (N, L) and
    ``tokens_lengths``
    (N,) of the English captions; ``audio`` float32 (N, T, n_mels) log-mel frames of the
    spoken caption in ``language``, every ``frame_pool`` frames averaged into one and cut
    to ``max_frames`` (zeros when absent),
    ``audio_lengths`` (N,) (1 when absent) and ``audio_present`` bool (N,)."""
    pixels = image_array(stamps, crop_margin(size))
    tokens, token_lengths = tokenize_captions([s.caption for s in stamps])
    spoken = load_spoken_captions(stamps, [language], n_mels=n_mels)
    clips = dict(zip(spoken.stamp_names, spoken.features))
    frames = min(max_frames, max((len(f) for f in spoken.features), default=1) // frame_pool)
    audio = torch.zeros(len(stamps), frames, n_mels)
    lengths = torch.ones(len(stamps), dtype=torch.long)
    present = torch.zeros(len(stamps), dtype=torch.bool)
    for i, stamp in enumerate(stamps):
        if stamp.name in clips:
            clip = pool_frames(torch.as_tensor(clips[stamp.name]), frame_pool)[:frames]
            audio[i, :len(clip)], lengths[i], present[i] = clip, len(clip), True
    return {"image": torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
            "tokens": tokens, "tokens_lengths": token_lengths,
            "audio": audio, "audio_lengths": lengths, "audio_present": present}


def loaders(s: Settings, device: torch.device | None = None) -> dict:
    """{"data": the stamps as tensors on ``device`` (:func:`stamp_data`), "settings": ``s``
    with its picture size fixed for that device (:func:`for_device`), "train_index",
    "test_index": fold 0's rows}."""
    device = device or try_gpu()
    s = for_device(s, device)
    data = stamp_data(s, device)
    train_index, test_index = data.folds[0]
    return {"data": data, "settings": s, "train_index": train_index, "test_index": test_index}


def stamp_data(s: Settings, device: torch.device | None = None) -> StampData:
    """The protocol stamps (or a stratified subset of ``s.limit``) as tensors on
    ``device`` (default :func:`~mmcourse.runtime.device.try_gpu`), with their folds.
    ``s.size`` must be fixed (:func:`for_device`)."""
    if s.size is None:
        raise ValueError("these settings leave the picture size to the device: "
                         "use recipe.for_device(s, device) before loading the data")
    stamps = protocol_stamps(load_stamps())
    if s.limit is not None and s.limit < len(stamps):
        share = s.limit / len(stamps)
        keep = sorted(stratified_split([x.category for x in stamps], (share, 1 - share),
                                       config.SPLIT_SEED)[0])
        stamps = [stamps[i] for i in keep]
    categories = sorted({x.category for x in stamps})
    language = audio_language(stamps)
    tensors = stamp_tensors(stamps, s.size, s.n_mels, s.max_frames, language, s.frame_pool)
    labels = torch.tensor([categories.index(x.category) for x in stamps])
    data = TensorSet({**tensors, "label": labels}).to(device or try_gpu())
    return StampData(data, stamps, categories, language, protocol_folds(labels.numpy()))


def parse_row(row: str) -> tuple[str, tuple, str]:
    """``"strategy/modalities[/balance]"`` → (strategy, modalities, balance); ``all`` is
    every modality and ``+`` joins several (``probe/image+text``)."""
    strategy, mods, *rest = row.split("/")
    modalities = MODALITIES if mods == "all" else tuple(mods.split("+"))
    unknown = [m for m in modalities if m not in MODALITIES]
    if strategy == "probe" and "audio" in modalities:
        raise ValueError(f"row {row!r}: the probe needs pretrained towers, and no pretrained "
                         "audio tower ships with the course; use image and text")
    if unknown or len(rest) > 1 or (rest and rest[0] not in ("weighted", "sampler")):
        raise ValueError(f"cannot read row {row!r}: write strategy/modalities[/weighted|"
                         f"/sampler] with modalities from {MODALITIES}, joined by + or 'all'")
    return strategy, modalities, rest[0] if rest else "none"


def model(s: Settings, data: dict, strategy: str = "full", modalities=MODALITIES,
          pretrained: bool = True) -> nn.Module:
    """:func:`network` for the categories of ``data`` (what :func:`loaders` returns)."""
    return network(s, len(data["data"].categories), modalities, strategy, pretrained)


def network(s: Settings, num_classes: int, modalities=MODALITIES, strategy: str = "full",
            pretrained: bool = True) -> nn.Module:
    """A fresh model: an encoder per modality (EfficientNet-Lite0, MiniLM, audio CRNN), the
    fusion ``s.fusion`` and a linear head, set up for ``strategy``."""
    torch.manual_seed(s.seed)
    specs = {"image": {"type": "efficientnet", "pretrained": pretrained},
             "text": {"type": "minilm", "pretrained": pretrained},
             "audio": {"type": "audio_crnn", "n_features": s.n_mels,
                       "conv_channels": (16, 32), "hidden_size": 64}}
    net = build_model({
        "encoders": {m: specs[m] for m in MODALITIES if m in modalities},
        "fusion": ({"type": s.fusion} if s.fusion != "concat" or len(modalities) == 1
                   else {"type": "concat", "normalize": True}),
        "head": {"num_classes": num_classes, "dropout": s.dropout}})
    return apply_strategy(net, strategy, pretrained=[m for m in PRETRAINED if m in modalities],
                          top_stages=s.top_stages, lora_rank=s.lora_rank,
                          lora_alpha=s.lora_alpha)


def learning_rates(s: Settings, strategy: str) -> dict:
    """Parameter-name prefix → peak learning rate (see
    :func:`mmcourse.nn.finetune.parameter_groups`)."""
    tower = s.lr_lora if strategy == "lora" else None
    return {"encoders.image": tower or s.lr_image, "encoders.text": tower or s.lr_text,
            "encoders.audio": s.lr_audio, "": s.lr_head}


def train(net: nn.Module, data: dict, s: Settings, progress: bool = False) -> FitResult:
    """:func:`train_fold` on fold 0 of ``data`` (what :func:`loaders` returns), with the
    checkpoint of the table's row of ``net``'s strategy on all three modalities."""
    base = net.module if hasattr(net, "module") else net
    row = f"{getattr(base, 'strategy', 'full')}/all"
    return train_fold(net, data["data"], data["train_index"], data["settings"],
                      name=run_name(row, 0), progress=progress)


def train_fold(net: nn.Module, data: StampData, train_index, s: Settings, *,
               balance: str = "none", name: str = "finetune", progress: bool = False,
               rank: int = 0, world: int = 1) -> FitResult:
    """Fine-tune ``net`` on the rows ``train_index`` (load-or-train through a checkpoint
    named by ``name`` and the settings): AdamW with :func:`learning_rates` per group, a
    warm-up then cosine decay, clipping at norm 1; ``balance`` "weighted" weighs the loss
    by inverse class frequency, "sampler" draws class-balanced batches."""
    labels = data.data.tensors["label"].cpu()
    num_classes = len(data.categories)
    weight = (class_weights(labels[train_index], num_classes).to(data.data.device)
              if balance == "weighted" else None)
    base = net.module if hasattr(net, "module") else net
    strategy = getattr(base, "strategy", "full")  # set by apply_strategy
    groups = parameter_groups(base, learning_rates(s, strategy), s.weight_decay)
    optimizer = torch.optim.AdamW(groups)
    if s.compile:
        net = torch.compile(net)
    batches = data.batches(train_index, s, True, tuple(base.encoders), rank=rank, world=world,
                           balance=balance)
    return fit(net, batches,
               epochs=s.epochs, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(weight=weight),
               scheduler="warmup_cosine", warmup=s.warmup, clip_grad=1.0,
               device=data.data.device, monitor="train_loss", seed=s.seed,
               checkpoint=None if world > 1 else checkpoint(name, (s, balance, len(train_index))),
               progress=progress and rank == 0, desc=name)


def evaluate(net: nn.Module, data: dict) -> dict[str, float]:
    """Accuracy and macro-F1 of ``net`` on fold 0's test stamps of ``data`` (what
    :func:`loaders` returns)."""
    result = evaluate_fold(net, data["data"], data["test_index"], data["settings"])
    return {"accuracy": result["accuracy"], "macro-F1": result["macro-F1"]}


def evaluate_fold(net: nn.Module, data: StampData, test_index, s: Settings) -> dict:
    """Accuracy, macro-F1, the confusion matrix (K, K) and the predicted labels of the rows
    ``test_index``."""
    scores, targets = predict(net, data.batches(test_index, s, False, tuple(net.encoders)))
    k = len(data.categories)
    return {**classification_scores(scores, targets, k),
            "confusion": confusion_matrix(scores, targets, k),
            "predicted": scores.argmax(-1).numpy(), "probabilities": scores.softmax(-1).numpy()}


def frozen_features(data: StampData, s: Settings, modalities) -> np.ndarray:
    """The frozen pretrained towers' features of every stamp, side by side: float32
    (N, Σ D) — EfficientNet-Lite0 on the centre crop (1,280) and MiniLM on the caption
    (384)."""
    net = network(s, len(data.categories), modalities, "probe").to(data.data.device)
    z, _ = embed(net, data.batches(np.arange(len(data.stamps)), s, False, modalities))
    return np.concatenate([z[m].numpy() for m in MODALITIES if m in z], axis=1)


def probe(features: np.ndarray, labels: np.ndarray, train_index, test_index,
          c: float = 0.1) -> np.ndarray:
    """The frozen-feature probe: standardise ``features`` (N, D) on the training rows, fit
    a logistic regression with inverse strength ``c``; class probabilities (n_test, K)."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    clf.fit(features[train_index], labels[train_index])
    return clf.predict_proba(features[test_index])


@dataclass
class RowResult:
    """One row of the comparison: per-fold accuracy and macro-F1, trainable parameters,
    wall time (s, all folds), peak memory (MiB), the first fold's history and the
    confusion matrix summed over folds."""

    row: str
    accuracy: list
    macro_f1: list
    trainable: int
    seconds: float
    peak_mib: float
    history: dict
    confusion: list

    def summary(self) -> dict:
        """The row as plain numbers: means and standard deviations over folds."""
        (accuracy_mean, accuracy_std), (f1_mean, f1_std) = map(mean_sd, (self.accuracy,
                                                                         self.macro_f1))
        return {"row": self.row, "folds": len(self.accuracy),
                "accuracy_mean": accuracy_mean, "accuracy_std": accuracy_std,
                "macro_f1_mean": f1_mean, "macro_f1_std": f1_std,
                "trainable": self.trainable, "seconds": self.seconds,
                "peak_mib": self.peak_mib}


def run_row(row: str, data: StampData, s: Settings, progress: bool = False,
            features: dict | None = None) -> RowResult:
    """Evaluate one row on the first ``s.folds`` folds; ``features`` caches the probe's
    frozen features by modality set between rows."""
    strategy, modalities, balance = parse_row(row)
    labels = data.data.tensors["label"].cpu().numpy()
    k = len(data.categories)
    accs, f1s, confusion, history, trainable = [], [], np.zeros((k, k), np.int64), {}, 0
    features = {} if features is None else features
    with PeakMemory(data.data.device) as peak:
        tic = time.perf_counter()
        for fold, (train_index, test_index) in enumerate(data.folds[:s.folds]):
            if strategy == "probe":
                if modalities not in features:
                    features[modalities] = frozen_features(data, s, modalities)
                scores = probe(features[modalities], labels, train_index, test_index,
                               s.probe_c)
                trainable = features[modalities].shape[1] * k + k
                confusion += confusion_matrix(scores, labels[test_index], k)
                result = classification_scores(scores, labels[test_index], k)
            else:
                net = network(s, k, modalities, strategy)
                trainable = trainable_count(net)
                fitted = train_fold(net, data, train_index, s, balance=balance, progress=progress,
                               name=run_name(row, fold))
                history = history or fitted.history
                result = evaluate_fold(net, data, test_index, s)
                confusion += result["confusion"]
            accs.append(result["accuracy"])
            f1s.append(result["macro-F1"])
        seconds = time.perf_counter() - tic
    return RowResult(row, accs, f1s, trainable, seconds, peak.mib, history, confusion.tolist())


def finetune_one(s: Settings, strategy: str = "full", modalities=MODALITIES,
                 balance: str = "none", fold: int = 0, out: Path | None = None,
                 progress: bool = False, rank: int = 0, world: int = 1) -> dict:
    """Train one model on the training folds of ``fold`` and test it on that fold.

    Under ``torch.distributed`` (``world`` processes) the model is wrapped in
    ``DistributedDataParallel`` and each process trains on its share of every global
    batch. With ``out`` (written by rank 0 only): ``metrics.json``, ``model.pt`` (see
    :func:`mmcourse.training.model_file.save_finetuned`), ``learning_curve.png`` and
    ``confusion.png``. Returns the metrics dict.
    """
    device = (torch.device("cuda", rank % torch.cuda.device_count())
              if world > 1 and torch.cuda.is_available() else try_gpu())
    s = for_device(s, device)
    data = stamp_data(s, device)
    train_index, test_index = data.folds[fold]
    net = network(s, len(data.categories), modalities, strategy).to(device)
    trainable = trainable_count(net)
    wrapped = net
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    tic = time.perf_counter()
    fitted = train_fold(wrapped, data, train_index, s, balance=balance, progress=progress,
                   rank=rank, world=world,
                   name=f"finetune-{strategy}-{'+'.join(modalities)}-{balance}-fold{fold}")
    seconds = time.perf_counter() - tic
    result = evaluate_fold(net, data, test_index, s)
    metrics = {"strategy": strategy, "modalities": list(modalities), "balance": balance,
               "fold": fold, "size": s.size, "epochs": s.epochs, "device": str(device),
               "machine": machine(), "processes": world, "train_stamps": len(train_index),
               "test_stamps": len(test_index), "accuracy": result["accuracy"],
               "macro_f1": result["macro-F1"], "trainable": trainable,
               "train_seconds": seconds, "samples_per_second": fitted.samples_per_second,
               "history": fitted.history, "confusion": result["confusion"].tolist(),
               "categories": data.categories,
               "test_probabilities": result["probabilities"].tolist()}
    if out is not None and rank == 0:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        save_finetuned(out / "model.pt", net, s, modalities, data.categories, data.language)
        fig = plot_history(fitted.history, ["train_loss", "train_accuracy"],
                           f"{strategy} fine-tuning, {'+'.join(modalities)}, {s.size} px")
        fig.savefig(out / "learning_curve.png", dpi=120, bbox_inches="tight")
        fig = plot_confusion(result["confusion"], data.categories,
                             f"test fold {fold}: accuracy {result['accuracy']:.1%}")
        fig.savefig(out / "confusion.png", dpi=120, bbox_inches="tight")
        plt.close("all")
    return metrics


def machine() -> str:
    """One line naming the machine: the GPU, or the CPU model and its core count."""
    device = try_gpu()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model_name}, {os.cpu_count()} cores"


def table(s: Settings, progress: bool = False, out: Path | None = None) -> list:
    """Every row of ``s.rows`` on the first ``s.folds`` folds, as :class:`RowResult`; with
    ``out`` the table so far (see :func:`table_record`) is written there as JSON after
    every row."""
    device = try_gpu()
    s = for_device(s, device)
    data = stamp_data(s, device)
    features: dict = {}
    results = []
    for row in s.rows:
        results.append(run_row(row, data, s, progress, features))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(table_record(results, s, data), indent=1))
    return results


def table_record(results: list, s: Settings, data: StampData) -> dict:
    """The comparison as plain data: the machine, device, picture size and settings, and
    per row its summary, the first fold's learning curve and the summed confusion."""
    return {"machine": machine(), "device": str(data.data.device), "size": s.size,
            "settings": dataclasses.asdict(s), "categories": data.categories,
            "stamps": len(data.stamps), "audio_language": data.language,
            "rows": [{**r.summary(), "history": r.history, "confusion": r.confusion}
                     for r in results]}


def run(s: Settings | None = None, progress: bool = False) -> Outcome:
    """Every row of ``s.rows`` on ``s.folds`` folds; metrics "<row> accuracy" (mean over
    folds), details {"table": [row summaries], "rows": [RowResult]}."""
    s = s or settings()
    results = table(s, progress)
    return Outcome("finetune-strategies",
                   {f"{r.row} accuracy": float(np.mean(r.accuracy)) for r in results},
                   details={"table": [r.summary() for r in results], "rows": results})
