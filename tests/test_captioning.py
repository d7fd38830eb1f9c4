"""Tests of mmcourse.tasks.captioning and the image-captioning recipe."""
import math

import numpy as np
import pytest
import torch

from mmcourse.experiments import captioning as recipe
from mmcourse.preprocessing import BOS, SequenceTokenizer
from mmcourse.tasks import captioning as cap
from mmcourse.tasks.decoding import beam_search

CAPTIONS = ["The letter A.", "The letter B.", "A red apple.", "A koala.",
            "The sign for cat in American Sign Language.", "A blue truck.", "A koala.",
            "The letter C."]


@pytest.fixture(scope="module")
def toy():
    """A CaptionData of 8 stamps with random features (grid 2×2 of 16-d cells)."""
    g = np.random.default_rng(0)
    n = len(CAPTIONS)
    grid = g.normal(size=(n, 4, 16)).astype(np.float16)
    imagenet = g.dirichlet(np.ones(1000), size=n).astype(np.float32)
    return cap.CaptionData([None] * n, list(CAPTIONS), grid, grid.astype(np.float32).mean(1),
                           imagenet, side=2, size=64)


def test_nearest_matches_brute_force_and_never_picks_itself(toy):
    queries, pool = np.array([0, 3, 5]), np.array([0, 1, 2, 3, 4])
    idx, sims = cap.nearest(toy.pooled, queries, pool, k=2)
    unit = toy.pooled / np.linalg.norm(toy.pooled, axis=1, keepdims=True)
    for q, row, srow in zip(queries, idx, sims):
        others = [p for p in pool if p != q]
        want = sorted(others, key=lambda p: -unit[q] @ unit[p])[:2]
        assert list(row) == want and q not in row
        np.testing.assert_allclose(srow, [unit[q] @ unit[p] for p in want], rtol=1e-5)
        assert srow[0] >= srow[1]


def test_imagenet_names_and_template(toy):
    names = cap.imagenet_names()
    assert len(names) == 1000 and names[105] == "koala" and names[340] == "zebra"
    probs = np.zeros((2, 1000), dtype=np.float32)
    probs[0, 105], probs[1, 8] = 1.0, 1.0  # koala; hen
    assert cap.template_captions(probs) == ["A koala.", "A hen."]
    probs[1, 8], probs[1, 50] = 0.0, 1.0
    assert names[50] == "american alligator"
    assert cap.template_captions(probs)[1] == "An american alligator."
    p, top = cap.top_labels(toy.imagenet, 3)
    assert p.shape == (8, 3) and np.all(np.diff(p, axis=1) <= 0) and len(top[0]) == 3


def test_caption_parts_and_part_scores():
    tok = SequenceTokenizer().fit(CAPTIONS)
    template = cap.template_words(CAPTIONS, tok, min_share=0.3)
    assert template == {"the", "letter", "a"}
    parts = cap.caption_parts("A red apple.", template, tok)
    assert parts == {"template": ["a"], "object": "apple", "attributes": ["red"]}
    assert cap.caption_parts("The letter.", template, tok)["object"] is None
    scores = cap.part_scores(["a green apple.", "the letter b."], ["A red apple.", "The letter C."],
                             template, tok)
    # template: a, the, letter all found (3/3); object: apple yes, c no; attribute red no
    assert scores == {"template words": 100.0, "object word": 50.0, "attributes": 0.0}


def test_cider_consensus_weights_rare_words():
    tok = SequenceTokenizer().fit(CAPTIONS)
    refs = ["A koala.", "A red apple.", "A blue truck."]
    assert cap.cider(refs, refs, tok) == pytest.approx(100.0)
    assert cap.cider(["the zzz", "the yyy", "the xxx"], refs, tok) == 0.0
    # the rare word ("koala") is worth more than the shared ones ("a", ".")
    assert cap.cider(["koala", "apple", "truck"], refs, tok) > cap.cider(["a .", "a .", "a ."],
                                                                         refs, tok)


def test_word_rows_hold_tokens_ranks_positions_and_previous():
    tok = SequenceTokenizer().fit(CAPTIONS)
    rows = cap.word_rows(tok, [["a koala", "the letter a"], ["zebra"]], [[0.9, 0.5], [0.2]],
                         max_tokens=2)
    ids = tok.encode("a koala").tolist() + tok.encode("the letter").tolist()
    assert rows["ids"][0].tolist() == ids
    assert rows["rank"][0].tolist() == [0, 0, 1, 1] and rows["position"][0].tolist() == [0, 1, 0, 1]
    assert rows["previous"][0].tolist() == [BOS, ids[0], BOS, ids[2]]
    assert rows["score"][0].tolist() == pytest.approx([0.9, 0.9, 0.5, 0.5])
    assert rows["ids"][1].tolist() == [1, 0, 0, 0]  # unknown word, then padding


def test_gated_captions_keep_close_matches_only(toy):
    train, test = np.array([0, 1, 2, 3, 4, 5]), np.array([6, 7])
    pooled = toy.pooled.copy()
    pooled[6] = pooled[3] + 1e-3  # stamp 6 is a near copy of training stamp 3
    pooled[7] = -pooled.mean(0)   # stamp 7 resembles nothing in particular
    data = cap.CaptionData(toy.stamps, toy.captions, toy.grid, pooled, toy.imagenet, 2, 64)
    out, kept = cap.gated_captions(data, train, test, ["gen six", "gen seven"], quantile=0.5)
    assert kept.tolist() == [True, False] and out == ["A koala.", "gen seven"]


def _toy_inputs(toy, tok):
    return cap.caption_inputs(toy, np.arange(8), np.arange(8), tok, concepts=2, neighbours=2,
                              max_tokens=6)


@pytest.mark.parametrize("variant", list(recipe.VARIANTS))
def test_captioner_shapes_and_memory_layout(toy, variant):
    tok = SequenceTokenizer().fit(CAPTIONS + cap.imagenet_names())
    inputs = _toy_inputs(toy, tok)
    concepts, neighbours = recipe.VARIANTS[variant]
    torch.manual_seed(0)
    net = cap.Captioner(len(tok), 4, dim=32, embed_dim=16, hidden_dim=32, attention_dim=16,
                        dropout=0.0, concepts=concepts, neighbours=neighbours, grid_dim=16,
                        feature_dim=16).eval()
    batch = inputs.batch([0, 1, 2])
    memory, mask, sources = net.memory(batch)
    words = (batch["concept_ids"].shape[1] if concepts else 0) + (
        batch["neighbour_ids"].shape[1] if neighbours else 0)
    assert memory.shape == (3, 4 + 1 + words, 32) and mask.shape == sources.shape == (3, 5 + words)
    assert torch.all(sources[:, :5] == 0) and torch.all(mask[:, :5])
    dec_in, targets = tok.teacher_forcing(inputs.captions[:3])
    scores, attention = net(batch, dec_in)
    assert scores.shape == (3, dec_in.shape[1], len(tok))
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, dec_in.shape[1]))
    # beam search's score of its best caption is that caption's teacher-forced log-probability
    with torch.no_grad():
        net.decoder.proj.bias[tok.eos] += 4.0  # so that the best caption ends early
        if net.copy:
            net.decoder.gate.bias += 10.0  # and is written, not copied
        step, state = net.stepper(inputs.batch([0]))
        seq, score = beam_search(step, state, tok.bos, tok.eos, beam_size=3, max_len=8)[0]
        assert len(seq) < 8
        dec_in, targets = tok.teacher_forcing([tok.decode(seq)])
        assert targets[0].tolist() == [*seq, tok.eos]
        logp = torch.log_softmax(net(inputs.batch([0]), dec_in)[0].float(), -1)[0]
        assert abs(float(logp.gather(-1, targets[0][:, None]).sum()) - score) < 1e-4
    captions = cap.generate(net, inputs, tok, beam_size=1, max_len=5)
    assert len(captions) == 8 and all(isinstance(c, str) for c in captions)
    assert cap.generate(net, inputs, tok, beam_size=2, max_len=5)[0] is not None


def test_attention_maps_cover_the_grid(toy):
    tok = SequenceTokenizer().fit(CAPTIONS)
    inputs = _toy_inputs(toy, tok)
    net = cap.Captioner(len(tok), 4, dim=32, embed_dim=16, hidden_dim=32, attention_dim=16,
                        grid_dim=16, feature_dim=16).eval()
    tokens, maps, shares = cap.attention_maps(net, inputs, 2, "A red apple.", tok)
    assert tokens == ["a", "red", "apple", ".", "<eos>"]
    assert maps.shape == (5, 2, 2) and shares.shape == (5, 3)
    torch.testing.assert_close(shares.sum(-1), torch.ones(5))
    torch.testing.assert_close(maps.flatten(1).sum(-1), shares[:, 0])


def test_inference_helpers_feed_the_model_device(toy, feeds_model_device):
    tok = SequenceTokenizer().fit(CAPTIONS)
    inputs = _toy_inputs(toy, tok)

    def fresh():
        return cap.Captioner(len(tok), 4, dim=32, embed_dim=16, hidden_dim=32,
                             attention_dim=16, grid_dim=16, feature_dim=16)

    feeds_model_device(cap.generate, fresh(), inputs, tok)
    feeds_model_device(cap.generate, fresh(), inputs, tok, beam_size=2)
    feeds_model_device(cap.attention_maps, fresh(), inputs, 0, "A koala.", tok)


TINY = dict(size=96, limit=60, test_folds=(1,), epochs=2, dim=32, embed_dim=16, hidden_dim=32,
            attention_dim=16, grid_dim=16, concepts=2, neighbours=2, beam_size=2, max_len=8,
            variants=("image", "full"))


def test_recipe_runs_end_to_end_on_tiny_settings():
    s = recipe.settings(**TINY)
    outcome = recipe.run(s)
    assert outcome.name == "image-captioning"
    table = outcome.details["table"]
    assert set(table) == {"constant", "template", "retrieval", "image", "full", "gated"}
    for row in table.values():
        assert 0 <= row["BLEU"][0] <= 100 and 0 <= row["chrF"][0] <= 100
    assert outcome.metrics["retrieval BLEU"] == table["retrieval"]["BLEU"][0]
    data = cap.caption_data(s.size, s.limit)
    assert data.grid.shape == (60, 9, 1280) and data.grid.dtype == np.float16
    np.testing.assert_allclose(data.imagenet.sum(1), 1.0, rtol=1e-3)
    assert data.picture(0).shape == (96, 96, 3)
    assert math.isclose(len(data.captions), 60)
