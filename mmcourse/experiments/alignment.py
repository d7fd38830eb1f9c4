"""Chapter 05's recipes: cross-modal learning on real data.

1. **Contrastive alignment** of stamp pictures and their English captions: frozen
   pretrained towers (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for captions), a
   linear projection each into a shared space, trained with symmetric InfoNCE and a
   learned temperature; evaluated by image→caption and caption→image retrieval on
   held-out stamps (recall@k against the chance level k/N).
2. **Adversarial alignment**: the same kind of projections and a shared category
   classifier, plus a modality discriminator behind a gradient-reversal layer. Fresh
   probes trained afterwards measure how well the modality can still be read off the
   shared space.
3. **Self-supervised pretraining** on AV-digits: image and audio encoders pretrained
   with InfoNCE on unlabelled image–clip pairs, then fine-tuned with a few labels per
   class, against the same model trained from scratch on the same labels.

The stamp features are standardised with the training stamps' per-dimension mean and
standard deviation, so that neither tower's scale or offset gives the modality away for
free.
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from .. import config
from ..crossmodal import (ContrastiveModel, ModalityDiscriminator, contrastive_forward,
                          symmetric_cross_entropy)
from ..data import (AVDigitsDataset, image_array, load_av_digits, load_stamps, split_stamps,
                    stratified_split)
from ..encoders import ImageEncoder, Precomputed, sentence_encoder
from ..metrics import recall_at_k
from ..models import build_encoder, build_model
from ..preprocessing import HALF_MEAN_STD, Tokenizer, collate_multimodal
from ..train import evaluate, fit
from . import Outcome
from .avdigits import collate, model_config

FAST_STAMPS = 240
"""How many stamps (a category-stratified subset) the fast switch keeps."""
ADVERSARIAL_STRENGTHS = (0.0, 0.1, 1.0, 10.0)
"""The λ values of the adversarial sweep."""


@torch.no_grad()
def stamp_features(stamps, batch_size: int = 64) -> dict:
    """Frozen features of the given stamps: ``image`` float32 (N, 1280) from
    EfficientNet-Lite0 on the picture letterboxed to 256 px and centre-cropped to 224,
    ``text`` float32 (N, 384) from all-MiniLM-L6-v2 on the English caption. Cached on
    disk, keyed by the stamp names."""
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
                                     convert_to_numpy=True, show_progress_bar=False)
    features = {"image": torch.cat(image).numpy().astype(np.float32),
                "text": np.asarray(text, dtype=np.float32)}
    np.savez(cached, **features)
    return features


def standardize(features: dict, train_idx) -> dict:
    """Each modality's features (N, D) minus the mean over ``train_idx``, divided by the
    standard deviation there (per dimension; constant dimensions are left at 0)."""
    out = {}
    for modality, x in features.items():
        mean, std = x[train_idx].mean(0), x[train_idx].std(0)
        out[modality] = ((x - mean) / np.where(std > 0, std, 1)).astype(np.float32)
    return out


def stamp_splits(seed: int = 0, limit: int | None = None):
    """Stamps, their standardised features, category labels, the category names and the
    train/val/test index arrays (70/15/15, stratified by category).

    ``limit`` keeps a category-stratified subset of that many stamps first (the fast
    switch uses :data:`FAST_STAMPS`); the split is then made within the subset. Returns
    ``(stamps, features, labels, categories, idx)`` with ``features`` =
    {"image": (N, 1280), "text": (N, 384)}, ``labels`` int64 (N,) and ``idx`` =
    {"train", "val", "test"} → int arrays into the N stamps.
    """
    stamps = load_stamps()
    categories = stamps.categories()
    if limit is not None and limit < len(stamps):
        share = limit / len(stamps)
        keep = stratified_split([s.category for s in stamps], (share, 1 - share), seed)[0]
        stamps = [stamps[i] for i in keep]
    labels = np.array([categories.index(s.category) for s in stamps])
    parts = split_stamps(stamps, seed=seed)
    index = {s.name: i for i, s in enumerate(stamps)}
    idx = {k: np.array([index[s.name] for s in v]) for k, v in parts.items()}
    return stamps, standardize(stamp_features(stamps), idx["train"]), labels, categories, idx


class _FeaturePairs:
    """Dataset of {"image": (1280,), "text": (384,)[, "label": int]} sample dicts."""

    def __init__(self, features, idx, labels=None):
        self.image = torch.from_numpy(features["image"][idx])
        self.text = torch.from_numpy(features["text"][idx])
        self.labels = None if labels is None else labels[idx]

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.image[i], "text": self.text[i]}
        if self.labels is not None:
            item["label"] = int(self.labels[i])
        return item


def feature_loader(features, idx, batch_size: int | None = None, shuffle: bool = False,
                   labels=None) -> DataLoader:
    """Batches {"image": (B, 1280), "text": (B, 384)[, "label": (B,)]} of the stamps
    ``idx``; ``batch_size`` None puts them all in one batch."""
    data = _FeaturePairs(features, idx, labels)
    return DataLoader(data, batch_size=batch_size or len(data), shuffle=shuffle,
                      collate_fn=collate_multimodal)


def alignment_model(dim: int = 128) -> ContrastiveModel:
    """Linear projections of the frozen image (1280) and caption (384) features into a
    shared ``dim``-d space, with a learned temperature (initial τ = 0.1)."""
    return ContrastiveModel({"image": Precomputed(1280), "text": Precomputed(384)}, dim=dim,
                            inputs={"image": ("image",), "text": ("text",)})


@torch.no_grad()
def similarity(model: ContrastiveModel, features, idx) -> torch.Tensor:
    """Cosine similarities (N, N) of the stamps ``idx``: row i = picture i, column j =
    caption j; the diagonal holds the true pairs."""
    model.eval()
    z = model.embed(next(iter(feature_loader(features, idx))))
    return z["image"] @ z["text"].T


@torch.no_grad()
def retrieval(model: ContrastiveModel, features, idx) -> dict:
    """Recall@1/5/10 both ways on the stamps ``idx``, with the chance level k / N."""
    model.eval()
    z = model.embed(next(iter(feature_loader(features, idx))))
    n = len(idx)
    i2t = recall_at_k(z["image"], z["text"])
    t2i = recall_at_k(z["text"], z["image"])
    return {**{f"image→caption R@{k}": v for k, v in i2t.items()},
            **{f"caption→image R@{k}": v for k, v in t2i.items()},
            **{f"chance R@{k}": k / n for k in i2t}, "test stamps": n}


def train_alignment(features, idx, epochs: int | None = None, progress: bool = True):
    """Train :func:`alignment_model` with symmetric InfoNCE on the training stamps
    (batches of 128); the validation "accuracy" is the image→caption recall@1 among all
    validation stamps, and picks the best epoch. Returns (model, FitResult)."""
    torch.manual_seed(0)
    model = alignment_model()
    result = fit(model, feature_loader(features, idx["train"], 128, True),
                 feature_loader(features, idx["val"]),
                 epochs=epochs or config.pick(40, 10), lr=1e-3, weight_decay=1e-2,
                 forward=contrastive_forward, loss_fn=symmetric_cross_entropy,
                 progress=progress, desc="align",
                 checkpoint=config.checkpoint_path("stamps-alignment"))
    return model, result


class SharedSpace(nn.Module):
    """Image and caption projections into one space, a shared category head, and a
    modality discriminator behind a gradient reversal of strength ``adversarial`` (λ).

    The training loss is the category cross-entropy of both modalities plus the
    discriminator's cross-entropy. The discriminator always minimises its term; the
    reversal hands the projections −λ times its gradient, so they maximise it. With
    λ = 0 the discriminator only watches: it measures the modality gap during training
    without changing the projections.
    """

    def __init__(self, num_classes: int, dim: int = 128, adversarial: float = 0.0):
        super().__init__()
        self.project = nn.ModuleDict({"image": nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, dim)),
                                      "text": nn.Sequential(nn.Dropout(0.2), nn.Linear(384, dim))})
        self.head = nn.Linear(dim, num_classes)
        self.adversarial = adversarial
        self.discriminator = ModalityDiscriminator(dim, 2, hidden=64, strength=adversarial)

    def embed(self, batch) -> dict:
        """{"image": (N, dim), "text": (N, dim)} from batch["image"] (N, 1280) and
        batch["text"] (N, 384)."""
        return {m: self.project[m](batch[m]) for m in ("image", "text")}

    def forward(self, batch):
        """((logits (2N, C) for images then captions, discriminator loss), targets (2N,))."""
        z = self.embed(batch)
        logits = self.head(torch.cat([z["image"], z["text"]]))
        extra = self.discriminator.loss([z["image"], z["text"]])[0]
        return (logits, extra), torch.cat([batch["label"], batch["label"]])


def train_shared_space(features, labels, idx, adversarial: float, epochs: int | None = None,
                       progress: bool = True):
    """Train a :class:`SharedSpace` with strength λ = ``adversarial`` on the training
    stamps' category labels; the best epoch by validation category accuracy (images and
    captions together) is kept. Returns (model, FitResult)."""
    torch.manual_seed(0)
    model = SharedSpace(int(labels.max()) + 1, adversarial=adversarial)
    result = fit(model, feature_loader(features, idx["train"], 64, True, labels),
                 feature_loader(features, idx["val"], labels=labels),
                 epochs=epochs or config.pick(40, 10), lr=1e-3, weight_decay=1e-2,
                 forward=lambda m, b: m(b), progress=progress,
                 desc=f"shared λ={adversarial:g}",
                 checkpoint=config.checkpoint_path(f"stamps-shared-adv{adversarial:g}"))
    return model, result


def modality_probes(train: dict, test: dict) -> dict:
    """Accuracy of fresh probes that tell picture from caption embeddings.

    ``train`` and ``test`` map "image" and "text" to embeddings (N, D) of different
    stamps. A logistic regression and an MLP with one hidden layer of 64 units (the
    discriminator's shape) are fitted on ``train`` and scored on ``test``; chance is
    50 %. Returns {"linear probe": acc, "MLP probe": acc}.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    def stack(z):
        x = np.concatenate([np.asarray(z["image"]), np.asarray(z["text"])])
        return x, np.r_[np.zeros(len(z["image"])), np.ones(len(z["text"]))]

    (x_tr, y_tr), (x_te, y_te) = stack(train), stack(test)
    probes = {"linear probe": LogisticRegression(max_iter=5000),
              "MLP probe": MLPClassifier((64,), max_iter=1000, random_state=0)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {name: float(p.fit(x_tr, y_tr).score(x_te, y_te)) for name, p in probes.items()}


@torch.no_grad()
def shared_embeddings(model: nn.Module, features, idx) -> dict:
    """{"image": (N, dim), "text": (N, dim)} numpy embeddings of the stamps ``idx``
    (any model with an ``embed(batch)`` method, in eval mode)."""
    model.eval()
    return {m: z.numpy() for m, z in model.embed(next(iter(feature_loader(features, idx)))).items()}


@torch.no_grad()
def shared_space_report(model: SharedSpace, features, labels, idx) -> dict:
    """On the test stamps: category accuracy from the picture and from the caption
    embedding through the shared head, the accuracy of the model's own discriminator,
    and of fresh probes trained on the training stamps (:func:`modality_probes`)."""
    z_train = shared_embeddings(model, features, idx["train"])
    z_test = shared_embeddings(model, features, idx["test"])
    y = torch.from_numpy(labels[idx["test"]])
    report = {f"{m} category accuracy": float((model.head(torch.from_numpy(z)).argmax(1) == y)
                                              .float().mean()) for m, z in z_test.items()}
    x = torch.from_numpy(np.concatenate([z_test["image"], z_test["text"]]))
    own = model.discriminator(x).argmax(1).numpy()
    truth = np.r_[np.zeros(len(y)), np.ones(len(y))]
    report["own discriminator accuracy"] = float((own == truth).mean())
    report.update(modality_probes(z_train, z_test))
    return report


def adversarial_sweep(features, labels, idx, strengths=ADVERSARIAL_STRENGTHS,
                      progress: bool = False):
    """Train a :class:`SharedSpace` per λ in ``strengths``; return (table indexed by λ
    with the :func:`shared_space_report` columns, {λ: model})."""
    rows, models = {}, {}
    for strength in strengths:
        models[strength] = train_shared_space(features, labels, idx, strength,
                                              progress=progress)[0]
        rows[strength] = shared_space_report(models[strength], features, labels, idx)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "λ"
    return table, models


def whitened_probe(features, idx, dim: int = 32) -> dict:
    """:func:`modality_probes` after whitening each modality separately: PCA to ``dim``
    components with unit variance, fitted on the training stamps. Both modalities then
    have the same mean (0) and covariance (identity), so whatever the probes still find
    lies in higher moments of the distributions, beyond any per-modality linear map."""
    from sklearn.decomposition import PCA

    train, test = {}, {}
    for m, x in features.items():
        pca = PCA(dim, whiten=True, random_state=0).fit(x[idx["train"]])
        train[m], test[m] = pca.transform(x[idx["train"]]), pca.transform(x[idx["test"]])
    return modality_probes(train, test)


def pretraining_model() -> ContrastiveModel:
    """The AV-digits image and audio encoders of chapter 04 (seeded, untrained) with
    64-d projection heads: a :class:`ContrastiveModel` over ("image", "audio")."""
    torch.manual_seed(0)
    specs = model_config("concat", ("image", "audio"))["encoders"]
    return ContrastiveModel({m: build_encoder(s) for m, s in specs.items()}, dim=64)


def _av_data():
    av = load_av_digits(seed=0)
    return av, Tokenizer(level="word").fit(av.train.texts)


def contrastive_pretraining(epochs: int | None = None, progress: bool = True):
    """Pretrain :func:`pretraining_model` with symmetric InfoNCE on the unlabelled
    AV-digits training pairs (image, clip) in batches of 128; labels are never read.
    Returns (model, FitResult)."""
    av, tokenizer = _av_data()
    loader = DataLoader(AVDigitsDataset(av.train, tokenizer), batch_size=128, shuffle=True,
                        collate_fn=collate, drop_last=True)
    model = pretraining_model()
    result = fit(model, loader, epochs=epochs or config.pick(30, 3), lr=2e-3,
                 forward=contrastive_forward, loss_fn=symmetric_cross_entropy,
                 progress=progress, desc="pretrain",
                 checkpoint=config.checkpoint_path("avdigits-contrastive-pretraining"))
    return model, result


@torch.no_grad()
def av_test_embeddings(model: ContrastiveModel) -> tuple[dict, np.ndarray]:
    """The model's encoder outputs (before projection) on the AV-digits test split:
    ({"image": (N, 64), "audio": (N, 64)}, digit labels (N,))."""
    av, tokenizer = _av_data()
    loader = DataLoader(AVDigitsDataset(av.test, tokenizer), batch_size=256, collate_fn=collate)
    model.eval()
    out = {m: [] for m in model.encoders}
    for batch in loader:
        for m, enc in model.encoders.items():
            out[m].append(enc(*(batch[k] for k in model.inputs[m])))
    return {m: torch.cat(v).numpy() for m, v in out.items()}, av.test.labels


def neighbour_accuracy(x, labels, k: int = 10) -> float:
    """How well embeddings ``x`` (N, D) predict ``labels`` (N,) without training a
    classifier: a k-nearest-neighbour vote (Euclidean) fitted on the even rows and scored
    on the odd rows."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(k).fit(x[::2], labels[::2])
    return float(knn.score(x[1::2], labels[1::2]))


def few_label_comparison(pretrained: ContrastiveModel, per_class=(5, 20), seeds=(0, 1, 2),
                         epochs: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Fine-tune image + audio classifiers (chapter 04's encoders, concatenation, linear
    head) on ``per_class`` labelled training pairs per digit, starting from the
    ``pretrained`` encoders and from scratch, every weight trainable.

    For each seed the labelled pairs are drawn with ``numpy.random.default_rng(seed)``
    and both starts get the same ones. There is no validation set (there are too few
    labels to spare), so the epoch with the lowest training loss is kept. Returns a
    table indexed by (labels per class, start) with each seed's test accuracy, the mean
    and the standard deviation.
    """
    av, tokenizer = _av_data()
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
                                    batch_size=32, shuffle=True, collate_fn=collate,
                                    generator=torch.Generator().manual_seed(seed))
                torch.manual_seed(seed)
                model = build_model(model_config("concat", ("image", "audio")))
                if start == "pretrained":
                    for m in ("image", "audio"):
                        model.encoders[m].load_state_dict(pretrained.encoders[m].state_dict())
                fit(model, loader, epochs=epochs or config.pick(60, 10), lr=2e-3, seed=seed,
                    monitor="train_loss", progress=progress, desc=f"{start} {k}/class",
                    checkpoint=config.checkpoint_path(f"avdigits-few{k}-{start}-seed{seed}"))
                scores.append(evaluate(model, test)["accuracy"])
            rows[(k, start)] = {**{f"seed {s}": a for s, a in zip(seeds, scores)},
                                "mean": float(np.mean(scores)), "std": float(np.std(scores))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["labels per class", "start"]
    return table


def run(progress: bool = False) -> Outcome:
    """Retrieval, the adversarial sweep and few-label fine-tuning: the headline numbers."""
    stamps, features, labels, categories, idx = stamp_splits(limit=config.pick(None, FAST_STAMPS))
    model, _ = train_alignment(features, idx, progress=progress)
    metrics = {k: v for k, v in retrieval(model, features, idx["test"]).items() if "R@10" not in k}
    sweep, _ = adversarial_sweep(features, labels, idx, progress=progress)
    pretrained, _ = contrastive_pretraining(progress=progress)
    table = few_label_comparison(pretrained, seeds=config.pick((0, 1, 2), (0,)),
                                 progress=progress)
    metrics["adversarial sweep"] = "\n" + sweep.round(4).to_string()
    metrics["few labels"] = "\n" + table.round(4).to_string()
    return Outcome("crossmodal", metrics, details={"sweep": sweep, "few labels": table})


RUNS = {"crossmodal": run}
