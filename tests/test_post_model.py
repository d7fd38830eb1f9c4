"""The blog post's model sketch (mmcourse.nn.post_model): what breaks, found by running it,
and the repair built from the course's encoders and the ``lstm`` fusion."""
from __future__ import annotations

import socket

import pytest
import torch

from mmcourse.nn.encoders import AudioCRNNEncoder, ImageEncoder, SmallCNN, TextRNNEncoder
from mmcourse.nn.fusion import SequenceFusion
from mmcourse.nn.models import MultimodalModel
from mmcourse.nn.post_model import (
    PostMultiModalNet,
    PostProblem,
    audio_as_image,
    post_inputs,
    post_model_problems,
    pretrained_flag_problem,
    repaired_post_model,
    text_as_image,
)

KEYS = ["pretrained", "text_as_image", "audio_as_image", "no_fusion", "feature_size",
        "batch_as_sequence", "lstm_tuple"]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: nothing may be downloaded."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def problems():
    return {p.key: p for p in post_model_problems(batch_size=2, image_size=64)}


def test_pretrained_flag_problem_names_the_replacement_without_downloading(no_network):
    """torchvision's two warnings for resnet50(pretrained=True), caught before the build."""
    text = pretrained_flag_problem()
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("UserWarning: The parameter 'pretrained' is deprecated")
    assert "weights=ResNet50_Weights.IMAGENET1K_V1" in lines[1]
    assert "ResNet50_Weights.DEFAULT" in lines[1]
    from torchvision.models import ResNet50_Weights
    assert ResNet50_Weights.DEFAULT is ResNet50_Weights.IMAGENET1K_V2


def test_problems_are_the_post_lines_in_order(problems):
    """Seven records, in the order of the post's lines, each with a step and shapes."""
    records = post_model_problems(batch_size=2, image_size=32)
    assert [p.key for p in records] == KEYS
    assert all(isinstance(p, PostProblem) and p.step and p.message and p.shapes
               for p in records)
    assert [p.error for p in records] == ["UserWarning", "RuntimeError", "RuntimeError",
                                          None, "RuntimeError", None, "TypeError"]
    assert str(records[4]).startswith("x = self.rnn(x)  →  RuntimeError: ")


def test_problems_leave_the_global_random_state_alone():
    """Seeding the sketch inside a forked RNG: the caller's next draw is unchanged."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    post_model_problems(batch_size=2, image_size=32)
    assert torch.equal(torch.rand(3), expected)


def test_feature_size_is_the_error_torch_raises(problems):
    """(N, 3 × 1000) concatenated logits into an LSTM of input_size 2048: RuntimeError."""
    p = problems["feature_size"]
    assert p.step == "x = self.rnn(x)"
    assert p.error == "RuntimeError"
    assert "Expected 2048, got 3000" in p.message
    assert p.shapes == {"input": (2, 3000), "input_size": (2048,)}
    # the post's forward, called as a whole, stops with the same error
    torch.manual_seed(0)
    net = PostMultiModalNet().eval()
    x = post_inputs(batch_size=2, image_size=32)
    fakes = [x["image"], text_as_image(x["tokens"], 32), audio_as_image(x["audio"], 32)]
    with torch.no_grad(), pytest.raises(RuntimeError, match="Expected 2048, got 3000"):
        net(fakes)


def test_a_2d_input_is_read_as_one_sequence_over_the_batch(problems):
    """(N, 2048) runs without error as one sequence of N steps → (N, 512), leaking
    sample 0 into sample 1."""
    p = problems["batch_as_sequence"]
    assert p.error is None
    assert p.shapes["input"] == (2, 2048) and p.shapes["output"] == (2, 512)
    assert p.shapes["expected"] == (2, 3, 2048)
    leak = float(p.message.rsplit("by up to ", 1)[1])
    assert leak > 0
    # the same fact, checked directly: the batch axis is the time axis
    lstm = torch.nn.LSTM(4, 3, batch_first=True)
    x = torch.randn(2, 4)
    moved = x.clone()
    moved[0] += 1
    assert not torch.allclose(lstm(x)[0][1], lstm(moved)[0][1])


def test_lstm_tuple_into_linear_is_the_type_error(problems):
    """nn.LSTM's (output (N, 3, 512), (h_n, c_n) (2, N, 512)) into nn.Linear: TypeError."""
    p = problems["lstm_tuple"]
    assert (p.step, p.error) == ("x = self.fc(x)", "TypeError")
    assert "must be Tensor, not tuple" in p.message
    assert p.shapes["lstm input"] == (2, 3, 2048)
    assert p.shapes["output"] == (2, 3, 512)
    assert p.shapes["h_n"] == p.shapes["c_n"] == (2, 2, 512)
    assert p.shapes["fc(h_n[-1])"] == (2, 10)


def test_pretrained_record(problems):
    """pretrained=True: torchvision's warning text, the download it implies, weights=None."""
    p = problems["pretrained"]
    assert p.error == "UserWarning"
    assert p.message.startswith("The parameter 'pretrained' is deprecated")
    assert "IMAGENET1K_V2" in p.note and "download" in p.note
    assert p.shapes == {"cnn.fc.weight": (1000, 2048)}


def test_text_and_audio_must_be_faked_as_pictures(problems):
    """Real text (N, L) and audio (N, T, F) make conv2d raise; faked as (N, 3, H, W)
    pictures they give 1000 ImageNet logits each."""
    text, audio = problems["text_as_image"], problems["audio_as_image"]
    assert text.error == audio.error == "RuntimeError"
    assert "conv2d" in text.message and "[2, 12]" in text.message
    assert "3 channels" in audio.message
    assert text.shapes == {"tokens": (2, 12), "faked image": (2, 3, 64, 64), "x2": (2, 1000)}
    assert audio.shapes == {"audio": (2, 40, 13), "faked image": (2, 3, 64, 64),
                            "x3": (2, 1000)}
    tokens = torch.tensor([[5, 7, 0]])
    picture = text_as_image(tokens, 6)
    assert picture.shape == (1, 3, 6, 6)
    assert torch.equal(picture[0, 0], picture[0, 2])  # channels are copies
    assert torch.equal(picture[0, 0, 0], picture[0, 0, 5])  # every row is the same
    assert set(picture.unique().tolist()) == {0.0, 5.0, 7.0}  # brightness = the id
    assert audio_as_image(torch.randn(2, 9, 13), 6).shape == (2, 3, 6, 6)


def test_no_fusion_is_a_concatenation_of_imagenet_logits(problems):
    """x1, x2, x3 (N, 1000) concatenated → (N, 3000) with 0 cross-modal parameters."""
    p = problems["no_fusion"]
    assert p.error is None
    assert p.shapes == {"x1": (2, 1000), "x2": (2, 1000), "x3": (2, 1000),
                        "torch.cat": (2, 3000)}
    assert "0 parameters across modalities" in p.message
    assert "tench" in p.note


def test_problem_arguments_are_checked():
    with pytest.raises(ValueError, match="batch_size"):
        post_model_problems(batch_size=1)
    with pytest.raises(ValueError, match="image_size"):
        post_model_problems(image_size=16)


def repaired_batch(n=3, channels=3, size=16, vocab_size=50):
    """image (N, C, H, W), tokens (N, L) with lengths, audio (N, T, 13) with lengths."""
    x = post_inputs(batch_size=n, image_size=size, seq_len=7, frames=11, vocab_size=vocab_size)
    x["image"] = x["image"][:, :channels]
    x["label"] = torch.arange(n) % 10
    return x


@pytest.mark.parametrize("image_encoder", ["small_cnn", "efficientnet"])
def test_repaired_model_runs_and_trains_every_encoder(image_encoder):
    """Batch dict → logits (N, 10); cross-entropy gradients reach all three encoders."""
    torch.manual_seed(0)
    model = repaired_post_model(10, image_encoder=image_encoder, vocab_size=50, dim=16,
                                hidden=24)
    assert isinstance(model, MultimodalModel)
    assert isinstance(model.fusion, SequenceFusion)
    assert model.fusion.modalities == ["image", "text", "audio"]
    assert model.fusion.lstm.num_layers == 2 and model.fusion.out_dim == 24
    assert isinstance(model.encoders["image"],
                      SmallCNN if image_encoder == "small_cnn" else ImageEncoder)
    assert isinstance(model.encoders["text"], TextRNNEncoder)
    assert isinstance(model.encoders["audio"], AudioCRNNEncoder)
    batch = repaired_batch(size=32 if image_encoder == "efficientnet" else 16)
    logits = model(batch)
    assert logits.shape == (3, 10)
    torch.nn.functional.cross_entropy(logits, batch["label"]).backward()
    for modality, encoder in model.encoders.items():
        grads = [p.grad for p in encoder.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), modality
        assert sum(float(g.abs().sum()) for g in grads) > 0, modality


def test_repaired_model_ignores_a_missing_modality():
    """(N, 10) logits: a sample marked without audio does not depend on its audio."""
    torch.manual_seed(0)
    model = repaired_post_model(10, image_channels=1, vocab_size=50).eval()
    batch = repaired_batch(channels=1)
    batch["audio_present"] = torch.tensor([True, False, True])
    noisy = dict(batch, audio=batch["audio"].clone())
    noisy["audio"][1] = 1e6
    a, b = model(batch), model(noisy)
    assert torch.allclose(a[1], b[1], atol=1e-5)
    assert torch.allclose(a[[0, 2]], b[[0, 2]], atol=1e-5)


def test_repaired_model_checks_its_arguments():
    with pytest.raises(ValueError, match="no pretrained weights"):
        repaired_post_model(image_encoder="small_cnn", pretrained=True)
    with pytest.raises(ValueError, match="RGB"):
        repaired_post_model(image_encoder="efficientnet", image_channels=1)
    with pytest.raises(ValueError, match="image_encoder"):
        repaired_post_model(image_encoder="resnet50")
