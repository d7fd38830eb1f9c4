"""Chapter 05's recipes: cross-modal learning on real data.

1. **Contrastive alignment** of stamp pictures and their English captions: frozen
   pretrained towers (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for captions), a
   linear projection each into a shared space, trained with symmetric InfoNCE and a
   learned temperature; evaluated by image→caption and caption→image retrieval on
   held-out stamps (recall@k against the chance level k/N).
2. **Adversarial alignment**: the same projections and a shared category classifier,
   plus a modality discriminator behind a gradient-reversal layer. A fresh probe trained
   afterwards measures how well the modality can still be read off the shared space.
3. **Self-supervised pretraining** on AV-digits: image and audio encoders pretrained
   with InfoNCE on unlabelled image–clip pairs, then fine-tuned with a few labels per
   class, against the same model trained from scratch on the same labels.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import config
from ..crossmodal import (ContrastiveModel, ModalityDiscriminator, contrastive_forward,
                          symmetric_cross_entropy)
from ..data import AVDigitsDataset, image_array, load_av_digits, load_stamps, split_stamps
from ..encoders import ImageEncoder, Precomputed, sentence_encoder
from ..metrics import recall_at_k
from ..models import build_encoder, build_model
from ..preprocessing import HALF_MEAN_STD, Tokenizer
from ..train import evaluate, fit
from . import Outcome
from .fusion import collate, model_config


@torch.no_grad()
def stamp_features(stamps, batch_size: int = 64) -> dict:
    """Frozen features of every stamp: ``image`` float32 (N, 1280) from EfficientNet-Lite0
    on the picture letterboxed to 256 px and centre-cropped to 224, ``text`` float32
    (N, 384) from all-MiniLM-L6-v2 on the English caption. Cached on disk."""
    key = hashlib.sha1("|".join(s.name for s in stamps).encode()).hexdigest()[:16]
    cached = config.cache_dir("arrays") / f"stamp-features-{key}.npz"
    if cached.exists():
        with np.load(cached) as npz:
            return {"image": npz["image"], "text": npz["text"]}
    encoder = ImageEncoder(pretrained=True).eval()
    pixels = image_array(stamps, 256)[:, 16:240, 16:240]  # (N, 224, 224, 3) uint8
    mean = torch.tensor(HALF_MEAN_STD).view(1, 3, 1, 1)
    image = []
    for start in range(0, len(pixels), batch_size):
        x = torch.from_numpy(pixels[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
        image.append(encoder((x - mean) / mean))
    text = sentence_encoder().encode([s.caption for s in stamps], batch_size=batch_size,
                                     convert_to_numpy=True)
    features = {"image": torch.cat(image).numpy().astype(np.float32),
                "text": np.asarray(text, dtype=np.float32)}
    np.savez(cached, **features)
    return features


def stamp_splits(seed: int = 0):
    """Stamps, their features, category labels and the train/val/test index arrays."""
    stamps = load_stamps()
    features = stamp_features(stamps)
    categories = stamps.categories()
    labels = np.array([categories.index(s.category) for s in stamps])
    parts = split_stamps(stamps, seed=seed)
    index = {s.name: i for i, s in enumerate(stamps)}
    idx = {k: np.array([index[s.name] for s in v]) for k, v in parts.items()}
    return stamps, features, labels, categories, idx


def _feature_loader(features, idx, batch_size, shuffle, labels=None):
    tensors = [torch.from_numpy(features["image"][idx]), torch.from_numpy(features["text"][idx])]
    if labels is not None:
        tensors.append(torch.from_numpy(labels[idx]))
    data = TensorDataset(*tensors)
    return DataLoader(data, batch_size=batch_size or len(data), shuffle=shuffle,
                      collate_fn=lambda items: {"image": torch.stack([t[0] for t in items]),
                                                "text": torch.stack([t[1] for t in items]),
                                                **({"label": torch.stack([t[2] for t in items])}
                                                   if labels is not None else {})})


def alignment_model(dim: int = 128) -> ContrastiveModel:
    """Linear projections of the frozen image (1280) and caption (384) features."""
    return ContrastiveModel({"image": Precomputed(1280), "text": Precomputed(384)}, dim=dim,
                            inputs={"image": ("image",), "text": ("text",)})


@torch.no_grad()
def retrieval(model: ContrastiveModel, features, idx) -> dict:
    """Recall@1/5/10 both ways on the stamps ``idx``, with the chance level k / N."""
    model.eval()
    z = model.embed({"image": torch.from_numpy(features["image"][idx]),
                     "text": torch.from_numpy(features["text"][idx])})
    n = len(idx)
    i2t = recall_at_k(z["image"], z["text"])
    t2i = recall_at_k(z["text"], z["image"])
    return {**{f"image→caption R@{k}": v for k, v in i2t.items()},
            **{f"caption→image R@{k}": v for k, v in t2i.items()},
            **{f"chance R@{k}": k / n for k in i2t}, "test stamps": n}


def train_alignment(features, idx, epochs: int | None = None, progress: bool = True):
    """Train :func:`alignment_model` with InfoNCE; validation accuracy = val R@1."""
    torch.manual_seed(0)
    model = alignment_model()
    result = fit(model, _feature_loader(features, idx["train"], 128, True),
                 _feature_loader(features, idx["val"], None, False),
                 epochs=epochs or config.pick(60, 15), lr=1e-3, weight_decay=1e-2,
                 forward=contrastive_forward, loss_fn=symmetric_cross_entropy,
                 progress=progress, desc="align",
                 checkpoint=config.checkpoint_path("stamps-alignment"))
    return model, result


class SharedSpace(nn.Module):
    """Image and caption projections into one space, a shared category head, and an
    optional modality discriminator behind gradient reversal (``adversarial`` > 0)."""

    def __init__(self, num_classes: int, dim: int = 128, adversarial: float = 0.0):
        super().__init__()
        self.project = nn.ModuleDict({"image": nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, dim)),
                                      "text": nn.Sequential(nn.Dropout(0.2), nn.Linear(384, dim))})
        self.head = nn.Linear(dim, num_classes)
        self.adversarial = adversarial
        self.discriminator = ModalityDiscriminator(dim, 2, hidden=64, strength=1.0)

    def embed(self, batch) -> dict:
        """{"image": (N, dim), "text": (N, dim)}."""
        return {m: self.project[m](batch[m]) for m in ("image", "text")}

    def forward(self, batch):
        """((logits (2N, C) for images then captions, adversarial loss), targets (2N,))."""
        z = self.embed(batch)
        logits = self.head(torch.cat([z["image"], z["text"]]))
        extra = 0.0
        if self.adversarial:
            extra = self.adversarial * self.discriminator.loss([z["image"], z["text"]])[0]
        return (logits, extra), torch.cat([batch["label"], batch["label"]])


def train_shared_space(features, labels, idx, adversarial: float, epochs: int | None = None,
                       progress: bool = True):
    """Train a :class:`SharedSpace` on the training stamps' category labels."""
    torch.manual_seed(0)
    model = SharedSpace(int(labels.max()) + 1, adversarial=adversarial)
    result = fit(model, _feature_loader(features, idx["train"], 64, True, labels),
                 _feature_loader(features, idx["val"], None, False, labels),
                 epochs=epochs or config.pick(40, 10), lr=1e-3, weight_decay=1e-2,
                 forward=lambda m, b: m(b), progress=progress,
                 desc=f"shared λ={adversarial}",
                 checkpoint=config.checkpoint_path(f"stamps-shared-adv{adversarial}"))
    return model, result


@torch.no_grad()
def shared_space_report(model: SharedSpace, features, labels, idx) -> dict:
    """Category accuracy per modality on the test stamps, and the accuracy of a fresh
    logistic-regression probe that tells image from caption embeddings (trained on the
    training stamps, tested on the test stamps; chance = 50 %)."""
    from sklearn.linear_model import LogisticRegression

    model.eval()

    def embed(part):
        batch = {"image": torch.from_numpy(features["image"][idx[part]]),
                 "text": torch.from_numpy(features["text"][idx[part]])}
        return model.embed(batch)

    z_test = embed("test")
    y_test = torch.from_numpy(labels[idx["test"]])
    acc = {f"{m} category accuracy": float((model.head(z).argmax(1) == y_test).float().mean())
           for m, z in z_test.items()}
    z_train = embed("train")
    x_tr = torch.cat([z_train["image"], z_train["text"]]).numpy()
    y_tr = np.r_[np.zeros(len(idx["train"])), np.ones(len(idx["train"]))]
    x_te = torch.cat([z_test["image"], z_test["text"]]).numpy()
    y_te = np.r_[np.zeros(len(idx["test"])), np.ones(len(idx["test"]))]
    probe = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
    return {**acc, "modality probe accuracy": float(probe.score(x_te, y_te))}


def contrastive_pretraining(epochs: int | None = None, progress: bool = True):
    """Pretrain AV-digits image and audio encoders with InfoNCE on the unlabelled training
    pairs; return the ContrastiveModel."""
    av = load_av_digits(seed=0)
    tokenizer = Tokenizer().fit(av.train.texts)
    data = AVDigitsDataset(av.train, tokenizer)
    loader = DataLoader(data, batch_size=128, shuffle=True, collate_fn=collate, drop_last=True)
    torch.manual_seed(0)
    specs = model_config("concat", ("image", "audio"))["encoders"]
    model = ContrastiveModel({m: build_encoder(s) for m, s in specs.items()}, dim=64)
    fit(model, loader, epochs=epochs or config.pick(30, 3), lr=2e-3, forward=contrastive_forward,
        loss_fn=symmetric_cross_entropy, progress=progress, desc="pretrain",
        checkpoint=config.checkpoint_path("avdigits-contrastive-pretraining"))
    return model


def few_label_comparison(pretrained: ContrastiveModel, per_class=(5, 20), seeds=(0, 1, 2),
                         epochs: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Fine-tune image+audio classifiers on ``per_class`` labels per digit, from the
    pretrained encoders and from scratch; test accuracy per seed, mean and std."""
    av = load_av_digits(seed=0)
    tokenizer = Tokenizer().fit(av.train.texts)
    test = DataLoader(AVDigitsDataset(av.test, tokenizer), batch_size=256, collate_fn=collate)
    rows = {}
    for k in per_class:
        for start in ("pretrained", "scratch"):
            scores = []
            for seed in seeds:
                chosen = np.concatenate([
                    np.random.default_rng(seed).choice(np.flatnonzero(av.train.labels == d), k,
                                                       replace=False) for d in range(10)])
                loader = DataLoader(AVDigitsDataset(av.train, tokenizer, chosen),
                                    batch_size=32, shuffle=True, collate_fn=collate)
                torch.manual_seed(seed)
                model = build_model(model_config("concat", ("image", "audio")))
                if start == "pretrained":
                    for m in ("image", "audio"):
                        model.encoders[m].load_state_dict(pretrained.encoders[m].state_dict())
                fit(model, loader, epochs=epochs or config.pick(40, 5), lr=2e-3, seed=seed,
                    progress=progress, desc=f"{start} {k}/class")
                scores.append(evaluate(model, test)["accuracy"])
            rows[(k, start)] = {**{f"seed {s}": a for s, a in zip(seeds, scores)},
                                "mean": float(np.mean(scores)), "std": float(np.std(scores))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["labels per class", "start"]
    return table


def run(progress: bool = False) -> Outcome:
    """Retrieval, adversarial alignment and few-label fine-tuning: the headline numbers."""
    stamps, features, labels, categories, idx = stamp_splits()
    model, _ = train_alignment(features, idx, progress=progress)
    ret = retrieval(model, features, idx["test"])
    plain = shared_space_report(train_shared_space(features, labels, idx, 0.0,
                                                   progress=progress)[0], features, labels, idx)
    adv = shared_space_report(train_shared_space(features, labels, idx, 1.0,
                                                 progress=progress)[0], features, labels, idx)
    table = few_label_comparison(contrastive_pretraining(progress=progress),
                                 seeds=config.pick((0, 1, 2), (0,)), progress=progress)
    metrics = {k: v for k, v in ret.items() if "R@10" not in k}
    metrics.update({f"no adversary: {k}": v for k, v in plain.items()})
    metrics.update({f"adversarial: {k}": v for k, v in adv.items()})
    metrics["few labels"] = "\n" + table.round(4).to_string()
    return Outcome("crossmodal", metrics)


RUNS = {"crossmodal": run}
