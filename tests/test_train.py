"""The shared training loop on real data (scikit-learn's handwritten digits)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mmcourse.data import load_handwritten_digits, stratified_split
from mmcourse.training.train import evaluate, fit, load_weights


@pytest.fixture(scope="module")
def loaders():
    digits = load_handwritten_digits()
    train_idx, val_idx = stratified_split(digits.labels, (0.8, 0.2), seed=0)
    x = torch.from_numpy(digits.images).flatten(1)
    y = torch.from_numpy(digits.labels)
    train = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256)
    return train, val


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))


def test_fit_learns(loaders):
    train, val = loaders
    model = make_model()
    before = evaluate(model, val)["accuracy"]
    result = fit(model, train, val, epochs=5, lr=1e-2, progress=False)
    assert before < 0.3
    assert result.history["val_accuracy"][-1] > 0.9
    assert len(result.history["train_loss"]) == 5
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    assert result.samples_per_second > 0 and "5 epochs" in result.report()
    assert f"best val_accuracy {max(result.history['val_accuracy']):.4f}" in result.report()
    alone = fit(make_model(), train, None, epochs=1, lr=1e-2, progress=False)
    assert "best train_accuracy" in alone.report(), "the report names what was monitored"


class Interrupt(Exception):
    pass


def test_resume_reproduces_uninterrupted_run(loaders, tmp_path):
    train, val = loaders
    full = fit(make_model(), train, val, epochs=4, lr=1e-2, progress=False,
               checkpoint=tmp_path / "full.pt")
    batches_per_epoch = len(train)
    calls = {"n": 0}

    def crash_in_epoch_three(model, batch):
        if model.training:
            calls["n"] += 1
            if calls["n"] > 2 * batches_per_epoch + 3:
                raise Interrupt
        *inputs, target = batch
        return model(*inputs), target

    path = tmp_path / "interrupted.pt"
    with pytest.raises(Interrupt):
        fit(make_model(), train, val, epochs=4, lr=1e-2, progress=False, checkpoint=path,
            forward=crash_in_epoch_three)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    other_init = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))
    resumed = fit(other_init, train, val, epochs=4, lr=1e-2, progress=False, checkpoint=path)
    assert resumed.resumed_from == 2
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert resumed.history[key] == pytest.approx(full.history[key], rel=1e-6), key
    final = load_weights(make_model(), tmp_path / "full.pt", best=False)
    for a, b in zip(final.state_dict().values(), load_weights(
            make_model(), path, best=False).state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_finished_checkpoint_loads_instead_of_training(loaders, tmp_path):
    train, val = loaders
    path = tmp_path / "done.pt"
    first = fit(make_model(), train, val, epochs=2, lr=1e-2, progress=False, checkpoint=path)
    again = fit(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10)),
                train, val, epochs=2, lr=1e-2, progress=False, checkpoint=path)
    assert again.history == first.history and again.seconds == 0.0
    assert first.report().endswith("samples/s")
    assert again.report().endswith("nothing left to train")


def test_early_stopping_restores_best(loaders):
    train, val = loaders
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    result = fit(model, train, val, epochs=10, optimizer=opt, scheduler=None,
                 patience=2, progress=False)
    assert result.stopped_early
    assert len(result.history["train_loss"]) == 3 and result.best_epoch == 1


def test_dict_batches_and_validation(loaders):
    train, _ = loaders

    class DictModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_model()

        def forward(self, batch):
            return self.net(batch["pixels"])

    dict_loader = [{"pixels": x, "label": y} for x, y in train]
    result = fit(DictModel(), dict_loader, epochs=2, lr=1e-2, progress=False)
    assert result.history["val_accuracy"] == [] and result.best_score > 0.5
    with pytest.raises(ValueError, match="scheduler"):
        fit(make_model(), train, epochs=1, scheduler="linear", progress=False)


def test_auxiliary_loss_is_added(loaders):
    train, val = loaders

    def with_penalty(model, batch):
        *inputs, target = batch
        logits = model(*inputs)
        return (logits, 5.0 + 0.0 * logits.sum()), target

    result = fit(make_model(), train, val, epochs=1, lr=1e-2, forward=with_penalty,
                 progress=False)
    plain = fit(make_model(), train, val, epochs=1, lr=1e-2, progress=False)
    assert result.history["train_loss"][0] == pytest.approx(
        plain.history["train_loss"][0] + 5.0, rel=1e-4)
    assert result.history["val_accuracy"] == pytest.approx(plain.history["val_accuracy"])


def test_checkpoint_of_other_settings_is_kept_aside_not_resumed(loaders, tmp_path):
    train, val = loaders
    path = tmp_path / "run.pt"
    first = fit(make_model(), train, val, epochs=2, lr=1e-2, progress=False, checkpoint=path)
    with pytest.warns(UserWarning, match=r"other settings \(groups\)") as caught:
        changed = fit(make_model(), train, val, epochs=2, lr=1e-3, progress=False,
                      checkpoint=path)
    assert "previous.pt" in str(caught[0].message)
    assert changed.resumed_from == 0 and changed.seconds > 0
    assert changed.history["train_loss"] != first.history["train_loss"]
    kept = torch.load(tmp_path / "run.previous.pt", weights_only=True)
    assert kept["history"] == first.history
    # A different architecture is not loaded into the model either (no shape error).
    wider = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Dropout(0.1), nn.Linear(48, 10))
    with pytest.warns(UserWarning, match="parameters"):
        fit(wider, train, val, epochs=2, lr=1e-3, progress=False, checkpoint=path)


class _TwoViews(nn.Module):
    """A model with an ``embed`` method over dict batches of flattened digits."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(32, 4), nn.Linear(32, 3)

    def embed(self, batch):
        return {"left": self.left(batch["x"][:, :32]), "right": self.right(batch["x"][:, 32:])}


def test_embed_and_predict_return_cpu_results_in_loader_order(loaders):
    from mmcourse.training.train import embed, predict

    _, val = loaders
    x, y = val.dataset.tensors
    dict_loader = [{"x": x[i:i + 100], "label": y[i:i + 100]} for i in range(0, len(y), 100)]
    torch.manual_seed(0)
    model = _TwoViews()
    z, labels = embed(model, dict_loader)
    assert set(z) == {"left", "right"} and z["left"].shape == (len(y), 4)
    assert torch.equal(labels, y) and z["left"].device.type == "cpu"
    torch.testing.assert_close(z["right"], model.right(x[:, 32:]).detach())
    net = make_model().eval()
    outputs, targets = predict(net, val)
    torch.testing.assert_close(outputs, net(x).detach())
    assert torch.equal(targets, y)


def test_embed_and_predict_feed_the_model_on_its_device(loaders, feeds_model_device):
    from mmcourse.training.train import embed, predict

    _, val = loaders
    feeds_model_device(predict, make_model(), val)
    x, y = val.dataset.tensors
    feeds_model_device(embed, _TwoViews(), [{"x": x[:10], "label": y[:10]}])
