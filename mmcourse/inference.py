"""A fine-tuned model saved to one file, loaded back, and run on a user's own input.

:func:`mmcourse.training.model_file.save_finetuned` writes the model's weights with everything
needed to rebuild it (settings, modalities, strategy, categories, spoken language, file
format version); :func:`load_finetuned` checks the format and rebuilds it without downloading or
re-loading pretrained weights. :func:`prepare_inputs` turns a PNG, JPEG or SVG picture,
an English caption and a recorded clip into one batch, through the same preprocessing as
training (letterbox on white, centre crop, MiniLM word pieces, trimmed log-mel frames);
:func:`predict_files` returns the top categories with their probabilities.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from mmcourse.data.spoken_captions import clip_log_mel
from mmcourse.data.stamps import on_white, rasterise_svg
from mmcourse.experiments import finetune as recipe
from mmcourse.nn.encoders import tokenize_captions
from mmcourse.preprocessing import AudioReadError, crop_margin, letterbox
from mmcourse.training.batches import crop_flip_normalize
from mmcourse.training.model_file import FORMAT, FORMAT_VERSION, CheckpointError
from mmcourse.training.train import model_device, to_device


class InputError(ValueError):
    """A user input that cannot be read, or a modality the model needs but did not get."""


def load_finetuned(path: str | Path, device: torch.device | str = "cpu"):
    """The model saved at ``path``, in eval mode on ``device``, and its record (the saved
    dict without the weights; ``record["settings"]`` is a recipe Settings)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train a model first with "
                              "`python -m mmcourse finetune --out DIR` (it writes DIR/model.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say so, whatever the reason
        raise CheckpointError(f"{path} is not a model file this course can read ({err})") \
            from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fine-tuned model written by "
                              "`python -m mmcourse finetune`")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written in format version {state.get('version')}, this course reads "
            f"version {FORMAT_VERSION}; fine-tune again with this version of the course")
    fields = {f.name for f in dataclasses.fields(recipe.Settings)}
    s = recipe.Settings(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in state["settings"].items() if k in fields})
    net = recipe.network(s, len(state["categories"]), tuple(state["modalities"]),
                       state["strategy"], pretrained=False)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model this course builds for it "
                              f"({str(err).splitlines()[0]})") from err
    record = {k: v for k, v in state.items() if k != "model"}
    record["settings"] = s
    return net.to(device).eval(), record


def read_picture(path: str | Path):
    """A PNG, JPEG or SVG file as an RGB PIL image on white, or InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"picture {path} does not exist")
    try:
        if path.suffix.lower() == ".svg":
            return on_white(rasterise_svg(path, 512))
        with Image.open(path) as image:
            image.load()
            return on_white(image)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"cannot read {path} as a picture (PNG, JPEG or SVG): {err}") from err


def prepare_inputs(record: dict, image: str | Path | None = None, caption: str | None = None,
                   audio: str | Path | None = None) -> dict:
    """One-sample batch for a model saved with ``record``: the inputs of its modalities,
    preprocessed as in training. A missing picture or caption the model needs raises
    InputError; a missing clip is marked absent (the model was trained with some)."""
    s, modalities = record["settings"], record["modalities"]
    batch: dict = {}
    if "image" in modalities:
        if image is None:
            raise InputError("this model reads a picture: give the path of a PNG, JPEG or "
                             "SVG file")
        picture = letterbox(read_picture(image), crop_margin(s.size))
        pixels = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None]
        batch["image"] = crop_flip_normalize(pixels, s.size, train=False)
    if "text" in modalities:
        if not caption or not caption.strip():
            raise InputError("this model reads an English caption too: give it with "
                             "--caption \"A koala.\"")
        batch["tokens"], batch["tokens_lengths"] = tokenize_captions([caption])
    if "audio" in modalities:
        frames = clip_frames(audio, s) if audio is not None else None
        if frames is None and len(modalities) == 1:
            raise InputError(f"this model reads only a spoken caption: give a recording in "
                             f"{record['audio_language']!r} with --audio FILE")
        present = frames is not None
        frames = frames if present else torch.zeros(1, s.n_mels)
        batch["audio"], batch["audio_lengths"] = frames[None], torch.tensor([len(frames)])
        if len(modalities) > 1:
            batch["audio_present"] = torch.tensor([present])
    return batch


def clip_frames(path: str | Path, s) -> torch.Tensor:
    """A recorded clip as the audio tower's frames (T, n_mels), as in training (see
    :func:`mmcourse.data.spoken_captions.clip_log_mel`), frames pooled and cut."""
    if not Path(path).is_file():
        raise InputError(f"recording {path} does not exist")
    try:
        features = clip_log_mel(path, s.n_mels)
    except (AudioReadError, OSError) as err:
        raise InputError(f"cannot read {path} as audio (WAV, OGG or FLAC): {err}") from err
    return recipe.pool_frames(features, s.frame_pool)[:s.max_frames]


@torch.no_grad()
def predict_files(net: nn.Module, record: dict, image=None, caption=None, audio=None,
                  top: int = 3) -> list[tuple[str, float]]:
    """The ``top`` categories and their probabilities for one user input."""
    batch = to_device(prepare_inputs(record, image, caption, audio), model_device(net))
    probabilities = net.eval()(batch).float().softmax(-1)[0].cpu()
    values, index = probabilities.topk(min(top, len(probabilities)))
    return [(record["categories"][i], float(v)) for v, i in zip(values, index)]
