"""Fine-tuning pieces: LoRA against peft, parameter groups, strategies, the schedule."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from mmcourse.nn import finetune
from mmcourse.nn.encoders import ImageEncoder, MiniLMEncoder, efficientnet_lite0, tokenize_captions
from mmcourse.nn.finetune import (LoRAConv2d, LoRALinear, add_lora, merge_lora,
                               parameter_groups, trainable_count)
from mmcourse.training.train import warmup_cosine

CAPTIONS = ["A koala.", "A red double-decker bus.", "Snow on a pine tree.", "Two dice."]


def _peft(module: nn.Module, targets, rank=8, alpha=16.0) -> nn.Module:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets),
                             lora_dropout=0.0)
    return peft.inject_adapter_in_model(config, module)


def _copy_adapters(peft_model: nn.Module, ours: nn.Module, generator) -> int:
    """Give peft's adapters random B (peft starts B at 0, which would test nothing) and
    copy A and B into our wrapped layers of the same names; return how many."""
    copied = 0
    for name, module in ours.named_modules():
        if isinstance(module, (LoRALinear, LoRAConv2d)):
            theirs = peft_model.get_submodule(name)
            with torch.no_grad():
                b = theirs.lora_B["default"].weight
                b.copy_(torch.randn(b.shape, generator=generator) * 0.05)
                module.lora_A.copy_(theirs.lora_A["default"].weight.reshape(module.lora_A.shape))
                module.lora_B.copy_(b.reshape(module.lora_B.shape))
            copied += 1
    return copied


def test_lora_on_minilm_matches_peft_on_the_same_weights():
    encoder = MiniLMEncoder(pretrained=True).eval()
    ours = copy.deepcopy(encoder)
    names = add_lora(ours, ["query", "value"])
    assert len(names) == 12  # 6 layers × (query, value)
    theirs = copy.deepcopy(encoder)
    theirs.transformer = _peft(theirs.transformer, ["query", "value"])
    g = torch.Generator().manual_seed(0)
    ours_transformer = ours.transformer
    assert _copy_adapters(theirs.transformer, ours_transformer, g) == 12
    ids, lengths = tokenize_captions(CAPTIONS)
    with torch.no_grad():
        a, b, base = ours(ids, lengths), theirs(ids, lengths), encoder(ids, lengths)
    assert (a - base).abs().max() > 1e-3  # the adapters change the function
    assert (a - b).abs().max() < 1e-5


def test_lora_on_efficientnet_head_conv_matches_peft():
    net = efficientnet_lite0(pretrained=False).eval()
    ours = copy.deepcopy(net)
    assert add_lora(ours, ["conv_head"]) == ["conv_head"]
    theirs = _peft(copy.deepcopy(net), ["conv_head"])
    assert _copy_adapters(theirs, ours, torch.Generator().manual_seed(1)) == 1
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b, base = ours(x), theirs(x), net(x)
    assert (a - base).abs().max() > 1e-4
    assert (a - b).abs().max() < 1e-5


def test_lora_linear_starts_as_the_base_trains_only_a_and_b_and_merges():
    torch.manual_seed(0)
    base = nn.Linear(6, 5).double()
    layer = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    assert torch.equal(layer(x), base(x))
    with torch.no_grad():
        layer.lora_B.normal_()
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    assert trainable_count(layer) == 2 * (6 + 5)
    layer(x).sum().backward()
    assert base.weight.grad is None and layer.lora_A.grad is not None
    merged = layer.merged()
    assert torch.allclose(merged(x), layer(x), atol=1e-12)
    expected = base.weight + 2.0 * layer.lora_B @ layer.lora_A
    assert torch.allclose(merged.weight, expected)
    model = nn.Sequential(layer)
    assert merge_lora(model) == 1 and isinstance(model[0], nn.Linear)


def test_add_lora_names_what_it_cannot_find():
    with pytest.raises(ValueError, match="no Linear or Conv2d"):
        add_lora(nn.Sequential(nn.Linear(2, 2)), ["query"])


def _toy():
    torch.manual_seed(0)
    return nn.ModuleDict({
        "encoders": nn.ModuleDict({"image": nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)),
                                   "text": nn.Linear(3, 4)}),
        "head": nn.Linear(8, 2)})


def test_parameter_groups_take_the_longest_prefix_and_spare_norms_and_biases():
    model = _toy()
    model["encoders"]["text"].requires_grad_(False)
    groups = parameter_groups(model, {"encoders": 1e-4, "encoders.image": 1e-3, "": 1e-2},
                              weight_decay=0.05)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    image = model["encoders"]["image"]
    assert lr_of[id(image[0].weight)] == (1e-3, 0.05)
    assert lr_of[id(image[0].bias)] == (1e-3, 0.0)
    assert lr_of[id(image[1].weight)] == (1e-3, 0.0)  # a norm weight is 1-D
    assert lr_of[id(model["head"].weight)] == (1e-2, 0.05)
    assert id(model["encoders"]["text"].weight) not in lr_of  # frozen: left out
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    torch.optim.AdamW(groups)  # a valid optimiser
    with pytest.raises(ValueError, match="head.weight"):
        parameter_groups(model, {"encoders": 1e-3})


def test_warmup_then_cosine():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=14)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def _three_tower_model(strategy):
    from mmcourse.experiments import finetune as recipe

    s = recipe.settings(size=64)
    return recipe.network(s, 10, recipe.MODALITIES, strategy, pretrained=False)


def test_strategies_train_more_and_more_and_record_themselves():
    counts = {}
    for strategy in finetune.STRATEGIES:
        model = _three_tower_model(strategy)
        assert model.strategy == strategy
        counts[strategy] = trainable_count(model)
    audio_and_head = trainable_count(_three_tower_model("probe"))
    assert audio_and_head < counts["lora"] < counts["partial"] < counts["full"]
    full = _three_tower_model("full")
    assert counts["full"] == sum(p.numel() for p in full.parameters())
    # LoRA adds rank·(in + out) per adapted layer: 12 MiniLM projections (384 → 384) and
    # EfficientNet's head convolution (320 → 1280)
    assert counts["lora"] - audio_and_head == 12 * 8 * (384 + 384) + 8 * (320 + 1280)


def test_frozen_stages_stay_in_eval_mode_when_the_model_trains():
    model = _three_tower_model("partial").train()
    image, text = model.encoders["image"], model.encoders["text"]
    frozen_norms = [m for s in image.frozen_stages() for m in s.modules()
                    if isinstance(m, nn.BatchNorm2d)]
    assert frozen_norms and not any(m.training for m in frozen_norms)
    assert all(m.training for m in image.stages()[-1].modules())
    frozen_text = text.stages()[:-2]
    assert all(not p.requires_grad for s in frozen_text for p in s.parameters())
    assert not any(m.training for s in frozen_text for m in s.modules())
    assert all(p.requires_grad for s in text.stages()[-2:] for p in s.parameters())


def test_frozen_minilm_reproduces_the_sentence_encoder():
    from mmcourse.nn.encoders import sentence_encoder

    ids, lengths = tokenize_captions(CAPTIONS)
    with torch.no_grad():
        ours = MiniLMEncoder(pretrained=True).eval()(ids, lengths)
    reference = torch.as_tensor(sentence_encoder().encode(CAPTIONS, convert_to_numpy=True))
    assert (ours - reference).abs().max() < 1e-5


def test_image_encoder_stage_count_bounds():
    with pytest.raises(ValueError, match="trainable_blocks"):
        ImageEncoder(pretrained=False).set_trainable_stages(10)
