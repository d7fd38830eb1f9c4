"""Fusion methods and the encoders + fusion + head model, on small tensors."""
from __future__ import annotations

import pytest
import torch

from mmcourse.nn.fusion import (
    FUSIONS,
    ConvFusion,
    GatedSum,
    LowRankFusion,
    SequenceFusion,
    TensorFusion,
    WeightedSum,
    make_fusion,
)
from mmcourse.nn.models import MultimodalModel, build_model, drop_modality

DIMS = {"image": 6, "text": 5, "audio": 4}


def embeddings(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, d, generator=g) for m, d in DIMS.items()}


def build(name):
    torch.manual_seed(0)
    return make_fusion(name, DIMS, num_classes=3, dim=8) if name not in ("concat", "late") \
        else make_fusion(name, DIMS, num_classes=3)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_shapes(name):
    fusion = build(name)
    out = fusion(embeddings())
    assert out.shape == (4, fusion.out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(FUSIONS))
def test_missing_modality_is_ignored(name):
    """With a modality marked missing, its embedding's values cannot change the output."""
    fusion = build(name).eval()
    emb = embeddings()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    changed = {m: v.clone() for m, v in emb.items()}
    changed["text"][1] += 100.0
    changed["image"][2] -= 50.0
    changed["audio"][3] *= -7.0
    a, b = fusion(emb, mask), fusion(changed, mask)
    assert torch.allclose(a[1:], b[1:], atol=1e-5)
    full = fusion(changed)  # all present: the changes do matter
    assert not torch.allclose(full[1:], a[1:], atol=1e-3)


def test_mask_as_mapping_and_errors():
    fusion = build("learned")
    emb = embeddings()
    as_dict = fusion(emb, {"text": torch.tensor([True, False, True, True])})
    as_tensor = fusion(emb, torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 1, 1]]).bool())
    assert torch.allclose(as_dict, as_tensor)
    with pytest.raises(ValueError, match="at least one present modality"):
        fusion(emb, torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(KeyError, match="lack"):
        fusion({"image": emb["image"]})
    with pytest.raises(KeyError, match="unknown fusion"):
        make_fusion("average", DIMS)
    with pytest.raises(ValueError, match="num_classes"):
        make_fusion("late", DIMS)


def test_fixed_weighted_sum_is_the_formula():
    alpha, beta, gamma = 0.5, 0.3, 0.2
    fusion = WeightedSum(DIMS, dim=8, weights={"image": alpha, "text": beta, "audio": gamma})
    emb = embeddings()
    z = {m: fusion.project[m](emb[m]) for m in DIMS}
    expected = alpha * z["image"] + beta * z["text"] + gamma * z["audio"]
    assert torch.allclose(fusion(emb), expected, atol=1e-6)
    assert sum(fusion.weights().values()) == pytest.approx(1.0)
    assert not any(p.requires_grad for n, p in fusion.named_parameters() if "logits" in n)
    # text missing: α and γ renormalised
    mask = torch.tensor([[1, 0, 1]] * 4, dtype=torch.bool)
    renorm = (alpha * z["image"] + gamma * z["audio"]) / (alpha + gamma)
    assert torch.allclose(fusion(emb, mask), renorm, atol=1e-6)


@pytest.mark.parametrize("cls", [WeightedSum, GatedSum])
def test_weights_sum_to_one(cls):
    fusion = cls(DIMS, dim=8)
    emb = embeddings()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.bool)
    w = fusion.sample_weights(emb, mask)
    assert torch.allclose(w.sum(dim=1), torch.ones(4))
    assert (w[~mask] == 0).all()
    assert torch.allclose(w[2], torch.tensor([0.0, 0.0, 1.0]))


def test_learned_weights_start_equal_and_train():
    fusion = WeightedSum(DIMS, dim=8)
    assert fusion.weights() == pytest.approx({m: 1 / 3 for m in DIMS})
    opt = torch.optim.SGD(fusion.parameters(), lr=1.0)
    emb = embeddings()
    target = fusion.project["audio"](emb["audio"]).detach()
    for _ in range(50):
        opt.zero_grad()
        ((fusion(emb) - target) ** 2).mean().backward()
        opt.step()
    w = fusion.weights()
    assert w["audio"] > max(w["image"], w["text"])


def test_conv_with_kernel_one_is_a_weighted_sum():
    fusion = ConvFusion(DIMS, dim=8, channels=1, kernel_size=1)
    emb = embeddings()
    z = fusion.stacked(emb)  # (N, M, dim)
    weights = fusion.conv.weight[0, :, 0]  # (M,)
    expected = torch.relu((weights[None, :, None] * z).sum(1) + fusion.conv.bias)
    assert torch.allclose(fusion(emb), expected, atol=1e-6)


def test_tensor_fusion_keeps_unimodal_terms():
    fusion = TensorFusion({"a": 3, "b": 2}, dim=2)
    emb = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    out = fusion(emb).view(5, 3, 3)
    za, zb = fusion.project["a"](emb["a"]), fusion.project["b"](emb["b"])
    assert fusion.out_dim == 9
    assert torch.allclose(out[:, :2, 2], za, atol=1e-6)  # z_a ⊗ 1
    assert torch.allclose(out[:, 2, :2], zb, atol=1e-6)  # 1 ⊗ z_b
    assert torch.allclose(out[:, :2, :2], za[:, :, None] * zb[:, None, :], atol=1e-6)
    assert torch.allclose(out[:, 2, 2], torch.ones(5))


def test_low_rank_equals_full_tensor_product():
    torch.manual_seed(0)
    fusion = LowRankFusion({"a": 3, "b": 2}, dim=4, rank=2)
    emb = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    za = torch.cat([emb["a"], torch.ones(5, 1)], 1)
    zb = torch.cat([emb["b"], torch.ones(5, 1)], 1)
    tensor = torch.einsum("na,nb->nab", za, zb)  # (N, 4, 3)
    weight = torch.einsum("rao,rbo->abo", fusion.factors["a"], fusion.factors["b"])
    expected = torch.einsum("nab,abo->no", tensor, weight)
    assert torch.allclose(fusion(emb), expected, atol=1e-5)


def small_config(fusion="gated", **fusion_options):
    return {"encoders": {"image": {"type": "small_cnn", "in_channels": 1, "widths": (4,),
                                   "embed_dim": 8},
                         "text": {"type": "text_rnn", "vocab_size": 12, "embed_dim": 4,
                                  "hidden_size": 5},
                         "audio": {"type": "audio_crnn", "n_features": 13,
                                   "conv_channels": (4,), "hidden_size": 6}},
            "fusion": {"type": fusion, **fusion_options},
            "head": {"num_classes": 10}}


def small_batch(n=3):
    g = torch.Generator().manual_seed(1)
    return {"image": torch.rand(n, 1, 8, 8, generator=g),
            "tokens": torch.randint(2, 12, (n, 6), generator=g),
            "tokens_lengths": torch.tensor([6, 4, 2][:n]),
            "audio": torch.randn(n, 9, 13, generator=g),
            "audio_lengths": torch.tensor([9, 5, 7][:n]),
            "label": torch.tensor([1, 2, 3][:n])}


@pytest.mark.parametrize("name", list(FUSIONS))
def test_gradient_reaches_every_encoder(name):
    options = {} if name in ("concat", "late") else {"dim": 4}
    torch.manual_seed(0)
    model = build_model(small_config(name, **options))
    logits = model(small_batch())
    assert logits.shape == (3, 10)
    torch.nn.functional.cross_entropy(logits, small_batch()["label"]).backward()
    for modality, encoder in model.encoders.items():
        grads = [p.grad for p in encoder.parameters() if p.requires_grad]
        assert all(g is not None for g in grads), modality
        assert sum(float(g.abs().sum()) for g in grads) > 0, modality


def test_model_with_a_missing_modality():
    torch.manual_seed(0)
    model = build_model(small_config("learned", dim=4)).eval()
    batch = drop_modality(small_batch(), "audio")
    assert not batch["audio_present"].any()
    noisy = dict(batch, audio=batch["audio"] * 100)
    assert torch.allclose(model(batch), model(noisy), atol=1e-5)
    assert not torch.allclose(model(small_batch()), model(batch), atol=1e-4)


def test_model_checks_its_parts():
    with pytest.raises(ValueError, match="same modalities"):
        MultimodalModel({"image": torch.nn.Linear(2, 2)}, make_fusion("concat", {"text": 2}),
                        None)
    with pytest.raises(KeyError, match="unknown encoder type"):
        build_model({"encoders": {"image": {"type": "vit"}}, "head": {"num_classes": 2}})


def test_build_encoder_by_name():
    from mmcourse.nn.encoders import Precomputed
    from mmcourse.nn.models import build_encoder

    encoder = build_encoder({"type": "text_rnn", "vocab_size": 7, "hidden_size": 3})
    assert encoder.out_dim == 6
    assert Precomputed(5).out_dim == 5


def test_dropped_modality_mask_stays_on_the_batch_device():
    batch = {k: v.to("meta") for k, v in small_batch().items()}
    dropped = drop_modality(batch, "audio", p=0.5, generator=torch.Generator().manual_seed(0))
    assert dropped["audio_present"].device.type == "meta"
    assert dropped["audio_present"].dtype == torch.bool


def test_lstm_fusion_is_an_lstm_over_the_present_modalities():
    """F (N, hidden) = h_n[-1] of the LSTM run over each sample's present projected
    modalities (k, dim), in the fixed order image, text, audio."""
    torch.manual_seed(0)
    fusion = SequenceFusion(DIMS, dim=8, hidden=5, num_layers=2).eval()
    assert fusion.out_dim == 5 and fusion.modalities == ["image", "text", "audio"]
    emb = embeddings()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    out = fusion(emb, mask)
    assert out.shape == (4, 5)
    for i in range(4):
        steps = [fusion.project[m](emb[m][i]) for j, m in enumerate(fusion.modalities)
                 if mask[i, j]]
        _, (h_n, _) = fusion.lstm(torch.stack(steps).unsqueeze(0))  # (1, k, dim)
        assert torch.allclose(out[i], h_n[-1, 0], atol=1e-6), i


def test_lstm_fusion_reads_the_modalities_in_order():
    """(N, hidden): swapping two modalities' embeddings changes the fused vector."""
    torch.manual_seed(0)
    fusion = SequenceFusion({"a": 4, "b": 4}, dim=4, hidden=3)
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    assert not torch.allclose(fusion({"a": x, "b": y}), fusion({"a": y, "b": x}), atol=1e-4)


@pytest.mark.parametrize("junk", [float("nan"), float("inf"), 1e30])
def test_lstm_fusion_missing_modality_values_never_matter(junk):
    """(N, hidden): a missing modality set to NaN, inf or 1e30 gives the same output and
    finite gradients for every parameter."""
    torch.manual_seed(0)
    fusion = make_fusion("lstm", DIMS, dim=8, hidden=6, num_layers=2)
    emb = embeddings()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    junked = {m: v.clone() for m, v in emb.items()}
    junked["text"][1] = junk
    junked["image"][2] = junk
    junked["audio"][3] = junk
    a, b = fusion(emb, mask), fusion(junked, mask)
    assert torch.isfinite(b).all()
    assert torch.allclose(a, b, atol=1e-6)
    b.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters())


def test_lstm_fusion_moves_no_float_tensor_to_the_host():
    """Only the lengths (N,) int64 may leave the input's device (pack_padded_sequence
    needs them on the CPU): no float tensor is copied, converted or read back."""
    from torch.overrides import TorchFunctionMode

    moves = {torch.Tensor.cpu, torch.Tensor.to, torch.Tensor.numpy, torch.Tensor.tolist,
             torch.Tensor.item, torch.Tensor.__float__, torch.Tensor.__bool__}

    class Record(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in moves and isinstance(args[0], torch.Tensor):
                self.calls.append((func.__name__, args[0].dtype, tuple(args[0].shape)))
            return func(*args, **(kwargs or {}))

    fusion = make_fusion("lstm", DIMS, dim=8)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    with Record() as record:
        fusion(embeddings(), mask)
    assert ("cpu", torch.int64, (4,)) in record.calls
    assert not [c for c in record.calls if c[1].is_floating_point], record.calls
