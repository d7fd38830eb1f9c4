"""Tests of mmcourse.nn.seq2seq: attention against a direct formula, the decoder's shapes,
teacher forcing against step-by-step decoding, and its step function in the searches."""
import pytest
import torch

from mmcourse.nn.seq2seq import AdditiveAttention, AttentionDecoder, concat_memory, sequence_loss
from mmcourse.tasks.decoding import beam_search, greedy_decode

BOS, EOS = 2, 3


def test_additive_attention_matches_formula_and_mask():
    torch.manual_seed(0)
    att = AdditiveAttention(5, 4, 6).double()
    q, k = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    context, weights = att(q, k, mask)
    Wq, Wk, bk, v = att.query.weight, att.key.weight, att.key.bias, att.score.weight[0]
    for b in range(2):
        e = torch.stack([v @ torch.tanh(Wq @ q[b] + Wk @ k[b, m] + bk) for m in range(3)])
        e[~mask[b]] = -torch.inf
        w = torch.softmax(e, 0)
        torch.testing.assert_close(weights[b], w)
        torch.testing.assert_close(context[b], w @ k[b])
    assert weights[1, 1] == 0 and torch.allclose(weights.sum(-1), torch.ones(2, dtype=torch.float64))
    # gradients flow to every parameter and to the keys, checked numerically
    assert torch.autograd.gradcheck(lambda qq, kk: att(qq, kk, mask)[0],
                                    (q.requires_grad_(), k.requires_grad_()))


def test_concat_memory():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 1, 4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    memory, joined = concat_memory([(a, mask), (b, None)])
    assert memory.shape == (2, 4, 4) and torch.equal(memory[:, 3], b[:, 0])
    assert joined.tolist() == [[True, True, False, True], [True, False, False, True]]
    with pytest.raises(ValueError):
        concat_memory([(torch.randn(2, 4), None)])


@pytest.fixture
def decoder_and_memory():
    torch.manual_seed(1)
    dec = AttentionDecoder(vocab_size=11, memory_dim=8, embed_dim=6, hidden_dim=10,
                           attention_dim=7, dropout=0.0).eval()
    memory = torch.randn(3, 5, 8)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    return dec, memory, mask


def test_teacher_forcing_equals_stepping(decoder_and_memory):
    dec, memory, mask = decoder_and_memory
    inputs = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, 0, 0], [BOS, 9, 9, 10]])
    logits, attention = dec(memory, mask, inputs)
    assert logits.shape == (3, 4, 11) and attention.shape == (3, 4, 5)
    assert torch.all(attention[1, :, 3:] == 0)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4))
    state = dec.init_state(memory, mask)
    for t in range(4):
        log_probs, state, weights = dec.step(inputs[:, t], state, memory, mask)
        torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1))
        torch.testing.assert_close(weights, attention[:, t])
    # masked rows do not matter: changing them leaves the output unchanged
    changed = memory.clone()
    changed[1, 3:] = 100.0
    torch.testing.assert_close(dec(changed, mask, inputs)[0][1], logits[1])


def test_sequence_loss_ignores_padding(decoder_and_memory):
    dec, memory, mask = decoder_and_memory
    inputs = torch.tensor([[BOS, 4, 5], [BOS, 7, 0], [BOS, 9, 9]])
    targets = torch.tensor([[4, 5, EOS], [7, EOS, 0], [9, 9, EOS]])
    logits, _ = dec(memory, mask, inputs)
    loss = sequence_loss(logits, targets)
    logp = torch.log_softmax(logits, -1)
    real = targets != 0
    manual = -logp.gather(-1, targets[..., None]).squeeze(-1)[real].mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert all(p.grad is not None for p in dec.parameters() if p.requires_grad)


def test_stepper_drives_both_searches(decoder_and_memory):
    dec, memory, mask = decoder_and_memory
    with torch.no_grad():
        greedy = greedy_decode(dec.stepper(memory, mask), dec.init_state(memory, mask),
                               BOS, EOS, max_len=6)
        assert len(greedy) == 3
        for b in range(3):
            mem, msk = memory[b:b + 1], mask[b:b + 1]
            beams = beam_search(dec.stepper(mem, msk), dec.init_state(mem, msk), BOS, EOS,
                                beam_size=4, max_len=6)
            one = beam_search(dec.stepper(mem, msk), dec.init_state(mem, msk), BOS, EOS,
                              beam_size=1, max_len=6)[0]
            assert one[0] == greedy[b][0] and one[1] == pytest.approx(greedy[b][1], abs=1e-5)
            assert beams[0][1] >= greedy[b][1] - 1e-5
            # a returned score is the sequence's log-probability under teacher forcing
            seq, score = beams[0]
            inputs = torch.tensor([[BOS, *seq]])
            logp = torch.log_softmax(dec(mem, msk, inputs)[0], -1)[0]
            target = [*seq, EOS] if len(seq) < 6 else seq
            want = sum(float(logp[t, tok]) for t, tok in enumerate(target))
            assert score == pytest.approx(want, abs=1e-4)


def test_copy_decoder_mixes_generation_and_copying():
    torch.manual_seed(2)
    dec = AttentionDecoder(vocab_size=12, memory_dim=8, embed_dim=6, hidden_dim=10,
                           attention_dim=7, dropout=0.0, copy=True).eval()
    memory = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    # rows 2-4 are words 9, 10, 9 (row 4 is masked out for the second input)
    sources = torch.tensor([[0, 0, 9, 10, 9], [0, 0, 9, 10, 9]])
    inputs = torch.tensor([[BOS, 4, 5], [BOS, 6, 7]])
    logp, attention = dec(memory, mask, inputs, sources)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 3))
    # with the gate shut the distribution is the copy attention over the word rows only
    with torch.no_grad():
        dec.gate.bias.fill_(-1e4)
        copied = dec(memory, mask, inputs, sources)[0].exp()
    assert torch.all(copied[..., [9, 10]].sum(-1) > 0.999)
    assert torch.all(copied[1, :, 9] > 0) and torch.all(copied[1, :, 10] > 0)
    # no word rows: the copy part is off and the decoder only generates
    with torch.no_grad():
        none = dec(memory, mask, inputs, torch.zeros_like(sources))[0]
    torch.testing.assert_close(none.exp().sum(-1), torch.ones(2, 3))
    assert torch.all(none.exp()[..., [9, 10]].sum(-1) < 0.999)
    # the step function agrees with teacher forcing and drives a beam search
    state = dec.init_state(memory[:1], mask[:1])
    step = dec.stepper(memory[:1], mask[:1], sources[:1])
    log_probs, _ = step(inputs[:1, 0], state)
    torch.testing.assert_close(log_probs, copied[:1, 0].log().clamp_min(-27.7), atol=1e-4,
                               rtol=1e-4)
    beams = beam_search(step, state, BOS, EOS, beam_size=3, max_len=4)
    assert beams and all(set(seq) <= {9, 10} for seq, _ in beams)
    with pytest.raises(ValueError, match="sources"):
        dec(memory, mask, inputs)
