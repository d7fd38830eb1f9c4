"""Cross-modal objectives and retrieval metrics on small tensors with known answers."""
from __future__ import annotations

import math

import pytest
import torch

from mmcourse.nn.crossmodal import (ContrastiveLoss, ContrastiveModel, GradientReversal,
                                 ModalityDiscriminator, contrastive_forward, info_nce,
                                 symmetric_cross_entropy)
from mmcourse.training.metrics import accuracy, confusion_matrix, macro_f1, recall_at_k


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0])
def test_info_nce_identical_orthonormal(tau):
    n = 8
    e = torch.eye(n, dtype=torch.float64)
    expected = math.log(1 + (n - 1) * math.exp(-1 / tau))
    assert float(info_nce(e, e, tau)) == pytest.approx(expected, rel=1e-5)


def test_info_nce_random_is_log_n():
    g = torch.Generator().manual_seed(0)
    n, d = 16, 8192
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(info_nce(a, b, 1.0)) == pytest.approx(math.log(n), abs=0.02)


def test_info_nce_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert float(info_nce(a, b)) == pytest.approx(float(info_nce(b, a)), rel=1e-6)
    assert float(info_nce(3 * a, b)) == pytest.approx(float(info_nce(a, b)), rel=1e-6)
    assert float(info_nce(a, a)) < float(info_nce(a, b))


def test_learned_temperature_gets_gradient_and_is_clamped():
    loss_fn = ContrastiveLoss(initial_temperature=0.07)
    assert float(loss_fn.temperature.detach()) == pytest.approx(0.07, rel=1e-5)
    a = torch.randn(4, 3, requires_grad=True)
    loss_fn(a, a.detach() + 0.1 * torch.randn(4, 3)).backward()
    assert loss_fn.log_inverse_temperature.grad is not None and a.grad is not None
    with torch.no_grad():
        loss_fn.log_inverse_temperature.fill_(20.0)
    assert float(loss_fn.temperature.detach()) == pytest.approx(0.01, rel=1e-5)


def test_gradient_reversal():
    x = torch.randn(5, 3, requires_grad=True)
    y = GradientReversal(strength=0.5)(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -0.5))


def test_discriminator_learns_while_features_fight_back():
    torch.manual_seed(0)
    disc = ModalityDiscriminator(dim=4, num_modalities=2, hidden=16)
    a = torch.randn(64, 4) + 2.0
    b = torch.randn(64, 4) - 2.0
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        loss, acc = disc.loss([a, b])
        loss.backward()
        opt.step()
    assert acc > 0.95  # separable modalities are told apart
    a.requires_grad_(True)
    loss, _ = disc.loss([a, b])
    loss.backward()
    # the reversed gradient points a towards b (descending it raises the discriminator loss)
    step = -a.grad.mean(0)
    assert float((step * (b.mean(0) - a.mean(0).detach())).sum()) > 0


def test_recall_at_k():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 8, generator=g)
    assert recall_at_k(x, x, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    shuffled = x[torch.roll(torch.arange(20), 1)]
    assert recall_at_k(x, shuffled, ks=(1,))[1] == 0.0
    r = recall_at_k(torch.randn(2000, 64, generator=g), torch.randn(2000, 64, generator=g),
                    ks=(100,))
    assert r[100] == pytest.approx(100 / 2000, abs=0.02)  # chance is k / N


def test_classification_metrics():
    logits = torch.tensor([[2.0, 0.1], [0.3, 0.9], [1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, targets) == 0.75
    cm = confusion_matrix(logits, targets, 2)
    assert cm.tolist() == [[1, 0], [1, 2]]
    # class 0: P=1/2, R=1 → F1 2/3; class 1: P=1, R=2/3 → F1 0.8
    assert macro_f1(logits.argmax(1), targets, 2) == pytest.approx((2 / 3 + 0.8) / 2)


def test_contrastive_model_trains_with_fit_pieces():
    torch.manual_seed(0)

    class Linear(torch.nn.Linear):
        @property
        def out_dim(self):
            return self.out_features

    model = ContrastiveModel({"image": Linear(6, 8), "audio": Linear(4, 8)}, dim=5,
                             inputs={"image": ("x",), "audio": ("y",)})
    x = torch.randn(32, 6)
    batch = {"x": x, "y": x[:, :4] + 0.05 * torch.randn(32, 4)}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        logits, targets = contrastive_forward(model, batch)
        loss = symmetric_cross_entropy(logits, targets)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logits.shape == (32, 32)
    assert float(loss.detach()) < 0.5 * first
    z = model.embed(batch)
    assert recall_at_k(z["image"], z["audio"], ks=(1,))[1] > 0.5
    with pytest.raises(ValueError, match="two modalities"):
        ContrastiveModel({"image": Linear(6, 8)})


def test_sentence_encoder_offline():
    from mmcourse.nn.encoders import sentence_encoder

    model = sentence_encoder()
    e = model.encode(["A koala.", "A koala bear.", "A fire engine."], convert_to_tensor=True)
    assert e.shape == (3, 384)
    sims = torch.nn.functional.cosine_similarity(e[0:1], e[1:])
    assert sims[0] > sims[1]  # the encoder knows koalas are closer to koala bears


def test_accuracy_agrees_on_tensors_and_arrays():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(50, 4, generator=g), torch.randint(4, (50,), generator=g)
    assert accuracy(logits, targets) == pytest.approx(accuracy(logits.numpy(), targets.numpy()))
    assert accuracy(logits.argmax(1), targets) == accuracy(logits, targets)
