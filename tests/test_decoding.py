"""Tests of mmcourse.tasks.decoding: greedy and beam search against an exhaustive listing."""
import itertools
import math

import pytest
import torch

from mmcourse.tasks.decoding import beam_search, greedy_decode, length_normalized, select_state

BOS, EOS = 0, 1


class TableModel:
    """A small autoregressive model whose next-token distribution depends on the whole
    prefix (through a hash of it): every sequence's probability can be listed."""

    def __init__(self, vocab: int, seed: int):
        self.vocab = vocab
        self.seed = seed

    def log_probs(self, prefix: tuple) -> torch.Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, prefix)) % (2 ** 31))
        logits = 2.5 * torch.randn(self.vocab, generator=g, dtype=torch.float64)
        logits[BOS] = -math.inf  # <bos> is never generated
        return torch.log_softmax(logits, -1)

    def step(self, tokens, state):
        """state: a (K, L) tensor of the prefixes so far (with -1 for none yet) and a
        tuple holding a (K,) counter, to check that nested states are reordered."""
        prefixes, (counter,) = state
        rows = [tuple(int(x) for x in p if x >= 0) + (int(t),) for p, t in zip(prefixes, tokens)]
        out = torch.stack([self.log_probs(r[1:]) for r in rows])
        width = max(len(r) for r in rows)
        new = torch.full((len(rows), width), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            new[i, :len(r)] = torch.tensor(r)
        return out, (new, (counter + 1,))

    def initial(self, batch=1):
        return (torch.full((batch, 0), -1, dtype=torch.long), (torch.zeros(batch),))

    def all_sequences(self, max_len: int):
        """Every (tokens, score) that a search can return, with max_len tokens at most."""
        words = [w for w in range(self.vocab) if w not in (BOS, EOS)]
        out = []
        for n in range(max_len + 1):
            for seq in itertools.product(words, repeat=n):
                score = sum(float(self.log_probs(seq[:i])[w]) for i, w in enumerate(seq))
                if n < max_len:
                    out.append((list(seq), score + float(self.log_probs(seq)[EOS])))
                else:
                    out.append((list(seq), score))
        return out


@pytest.mark.parametrize("seed", range(4))
def test_beam_search_exhaustive_is_exact(seed):
    model, max_len = TableModel(vocab=5, seed=seed), 4
    listed = sorted(model.all_sequences(max_len), key=lambda x: -x[1])
    beams = beam_search(model.step, model.initial(), BOS, EOS, beam_size=3 ** max_len,
                        max_len=max_len)
    assert beams[0][0] == listed[0][0]
    assert beams[0][1] == pytest.approx(listed[0][1], abs=1e-9)
    # the whole ranking agrees with the listing (top 10)
    for (seq, score), (want_seq, want_score) in zip(beams[:10], listed[:10]):
        assert score == pytest.approx(want_score, abs=1e-9)
    assert [s for s, _ in beams[:10]] == [s for s, _ in listed[:10]]


@pytest.mark.parametrize("seed", range(4))
def test_beam_search_scores_are_true_log_probabilities(seed):
    model, max_len = TableModel(vocab=6, seed=seed), 5
    truth = {tuple(s): v for s, v in model.all_sequences(max_len)}
    beams = beam_search(model.step, model.initial(), BOS, EOS, beam_size=3, max_len=max_len)
    assert 1 <= len(beams) <= 3
    assert [b[1] for b in beams] == sorted((b[1] for b in beams), reverse=True)
    for seq, score in beams:
        assert score == pytest.approx(truth[tuple(seq)], abs=1e-9)
    # a wider beam never finds a worse best sequence, and beam 1 is greedy
    wide = beam_search(model.step, model.initial(), BOS, EOS, beam_size=10, max_len=max_len)
    greedy = greedy_decode(model.step, model.initial(), BOS, EOS, max_len)[0]
    one = beam_search(model.step, model.initial(), BOS, EOS, beam_size=1, max_len=max_len)[0]
    assert wide[0][1] >= beams[0][1] - 1e-12 >= greedy[1] - 1e-12
    assert one[0] == greedy[0] and one[1] == pytest.approx(greedy[1])


def test_greedy_decode_batch_matches_single_runs():
    models = TableModel(vocab=6, seed=7)
    batch = greedy_decode(models.step, models.initial(batch=3), BOS, EOS, max_len=6)
    single = greedy_decode(models.step, models.initial(batch=1), BOS, EOS, max_len=6)[0]
    assert len(batch) == 3 and all(b == batch[0] for b in batch)
    assert batch[0][0] == single[0] and batch[0][1] == pytest.approx(single[1])
    assert len(single[0]) <= 6 and EOS not in single[0] and BOS not in single[0]


def test_length_penalty_favours_longer_sequences():
    assert length_normalized(-6.0, 5, 0.0) == -6.0
    assert length_normalized(-6.0, 7, 1.0) > length_normalized(-6.0, 1, 1.0)
    model, max_len = TableModel(vocab=5, seed=3), 4
    plain = beam_search(model.step, model.initial(), BOS, EOS, 81, max_len)
    long = beam_search(model.step, model.initial(), BOS, EOS, 81, max_len, length_penalty=2.0)
    listed = model.all_sequences(max_len)

    def rank(seq, score):
        return length_normalized(score, len(seq) + (len(seq) < max_len), 2.0)

    assert long[0][0] == max(listed, key=lambda x: rank(*x))[0]
    assert len(long[0][0]) >= len(plain[0][0])


def test_select_state_nested_and_errors():
    state = (torch.arange(3), [torch.arange(6).view(3, 2), None])
    picked = select_state(state, torch.tensor([2, 2, 0]))
    assert picked[0].tolist() == [2, 2, 0]
    assert picked[1][0].tolist() == [[4, 5], [4, 5], [0, 1]] and picked[1][1] is None
    with pytest.raises(TypeError, match="decoder state"):
        select_state({"h": torch.zeros(1)}, torch.tensor([0]))
    model = TableModel(5, 0)
    with pytest.raises(ValueError, match="one input"):
        beam_search(model.step, model.initial(batch=2), BOS, EOS, 2, 3)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model.step, model.initial(), BOS, EOS, 0, 3)
