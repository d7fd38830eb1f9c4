"""Chapter 08: CTC from the equations against PyTorch, decoders, error rates, transcripts,
and the two recipes end to end on tiny settings."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.tasks import ctc
from mmcourse.tasks.transcripts import CharTokenizer, normalize_transcript
from mmcourse.training.metrics import cer, edit_distance, error_rate, wer


def random_case(seed: int, t_max: int = 14, n: int = 6, c: int = 5, s_max: int = 6):
    """Logits (T, N, C) float64 and targets with repeated labels and varying lengths."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(t_max, n, c, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(1, c, (n, s_max), generator=g)
    targets[0, 1:4] = targets[0, 1]                      # a run of one repeated label
    target_lengths = torch.randint(0, s_max + 1, (n,), generator=g)
    target_lengths[0] = s_max
    input_lengths = torch.randint(2 * s_max + 1, t_max + 1, (n,), generator=g)
    input_lengths[1] = t_max
    return logits, targets, input_lengths, target_lengths


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_equals_pytorch_values_and_gradients(seed, reduction):
    logits, targets, input_lengths, target_lengths = random_case(seed)
    ours = ctc.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths,
                        reduction=reduction)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    theirs = F.ctc_loss(logits.log_softmax(-1), targets, input_lengths, target_lengths,
                        reduction=reduction)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-5)


def test_blank_index_and_impossible_alignments_match_pytorch():
    logits, targets, input_lengths, target_lengths = random_case(7, c=4)
    targets = torch.where(targets == 3, torch.zeros_like(targets), targets)  # labels 0..2
    input_lengths[2], target_lengths[2] = 3, 4          # 4 labels cannot fit in 3 frames
    lp = logits.log_softmax(-1)
    ours = ctc.ctc_loss(lp, targets, input_lengths, target_lengths, blank=3, reduction="none")
    theirs = F.ctc_loss(lp, targets, input_lengths, target_lengths, blank=3, reduction="none")
    assert math.isinf(float(ours[2].detach())) and math.isinf(float(theirs[2].detach()))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    ours = ctc.ctc_loss(lp, targets, input_lengths, target_lengths, blank=3,
                        zero_infinity=True)
    theirs = F.ctc_loss(lp, targets, input_lengths, target_lengths, blank=3,
                        zero_infinity=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def brute_force(log_probs: torch.Tensor) -> dict:
    """p(labelling) for every labelling, summed over all C^T paths of (T, C)."""
    t_len, c = log_probs.shape
    probs = {}
    for path in itertools.product(range(c), repeat=t_len):
        key = tuple(ctc.collapse(path))
        p = math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        probs[key] = probs.get(key, 0.0) + p
    return probs


def test_forward_recursion_sums_every_path():
    g = torch.Generator().manual_seed(1)
    lp = torch.randn(5, 1, 3, dtype=torch.float64, generator=g).log_softmax(-1)
    probs = brute_force(lp[:, 0])
    for labels in [(1,), (1, 1), (2, 1, 2), (1, 2)]:
        log_p, alpha = ctc.ctc_forward(lp, torch.tensor([labels]), torch.tensor([5]),
                                       torch.tensor([len(labels)]))
        assert alpha.shape == (5, 1, 2 * len(labels) + 1)
        assert math.isclose(math.exp(float(log_p)), probs[labels], rel_tol=1e-9)
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)


def test_collapse_and_greedy_decode():
    assert ctc.collapse([1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]
    assert ctc.collapse([0, 0, 0]) == []
    assert ctc.collapse([3, 3, 1, 3], blank=3) == [1]
    path = torch.tensor([[1, 1, 0, 1, 2, 2, 0], [2, 0, 2, 2, 1, 0, 0]])
    log_probs = F.one_hot(path, 3).double().log()
    assert ctc.greedy_decode(log_probs, torch.tensor([7, 4])) == [[1, 1, 2], [2, 2]]


def test_prefix_beam_search_is_exact_with_a_wide_beam():
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(5, 3, dtype=torch.float64, generator=g).log_softmax(-1)
    probs = brute_force(lp)
    results = ctc.prefix_beam_search(lp, beam=1000, prune=-math.inf)
    assert len(results) == len(probs)
    for labels, score in results:
        assert math.isclose(math.exp(score), probs[tuple(labels)], rel_tol=1e-9)
    assert tuple(results[0][0]) == max(probs, key=probs.get)


def test_beam_search_can_beat_the_best_path():
    # the best path is "blank blank" (0.36) but "a" has 0.64 over its three paths
    frames = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc.greedy_decode(frames[None]) == [[]]
    assert ctc.beam_decode(frames[None], beam=4) == [[1]]


def test_char_lm_is_a_distribution_and_steers_the_beam():
    lm = ctc.CharNgramLM(3).fit(["una rana", "un mirlo", "una casa"])
    for history in ["", "un", "zzq", "una r"]:
        assert math.isclose(sum(lm.prob(c, history) for c in lm.alphabet), 1.0, rel_tol=1e-9)
    assert lm.score("una") > lm.score("nua")
    symbols = ["_", "a", "u"]
    # acoustics slightly prefer "ua"-like "a" first; the LM knows words start with "u"
    frames = torch.tensor([[0.1, 0.46, 0.44], [0.9, 0.05, 0.05]], dtype=torch.float64).log()
    assert ctc.beam_decode(frames[None], beam=4) == [[1]]
    scorer = ctc.lm_scorer(lm, symbols)
    assert ctc.beam_decode(frames[None], beam=4, lm=scorer, lm_weight=1.0) == [[2]]


@pytest.mark.parametrize("ref, hyp", [("kitten", "sitting"), ("", "abc"), ("abc", ""),
                                      ("una rana", "un arana"), ("flaw", "lawn")])
def test_edit_distance_matches_torchaudio(ref, hyp):
    from torchaudio.functional import edit_distance as reference

    assert edit_distance(ref, hyp) == reference(ref, hyp)
    assert edit_distance(ref.split(), hyp.split()) == reference(ref.split(), hyp.split())


def test_random_edit_distances_match_torchaudio():
    from torchaudio.functional import edit_distance as reference

    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        a = torch.randint(0, 4, (int(torch.randint(0, 9, (), generator=g)),), generator=g)
        b = torch.randint(0, 4, (int(torch.randint(0, 9, (), generator=g)),), generator=g)
        assert edit_distance(a.tolist(), b.tolist()) == reference(a.tolist(), b.tolist())


def test_error_rates():
    assert cer(["una rana"], ["una rana"]) == 0.0
    assert math.isclose(cer(["abcd", "ef"], ["abxd", ""]), 3 / 6)
    assert math.isclose(wer(["un gato negro"], ["un pato negro grande"]), 2 / 3)
    assert error_rate([[1, 2]], [[1, 2, 3, 4, 5]]) == 1.5
    with pytest.raises(ValueError):
        cer(["a"], [])


def test_transcripts_normalise_per_language():
    assert normalize_transcript("Tux, ¡la mascota de Linux!", "es") == "tux la mascota de linux"
    assert normalize_transcript("Un pingüino (año 2000) — Ärger", "es") == "un pingüino año arger"
    assert normalize_transcript("Ёжик в тумане.", "ru") == "ёжик в тумане"
    assert normalize_transcript("Şcoală", "ro") == "școală"
    with pytest.raises(KeyError, match="no alphabet"):
        normalize_transcript("x", "xx")


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer.fit(["Una rana.", "Un mirlo"], "es")
    assert tok.symbols[0] == "_" and " " in tok.symbols
    assert tok.decode(tok.encode("UNA rana!")) == "una rana"
    assert tok.encode("una zrana") == tok.encode("una rana") and tok.unknown == 1
    assert 0 not in tok.encode("una rana")
