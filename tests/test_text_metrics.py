"""Tests of the text-generation helpers: SequenceTokenizer and the BLEU/chrF wrappers."""
import pytest
import sacrebleu
import torch

from mmcourse.training.metrics import bleu, chrf
from mmcourse.preprocessing import (BOS, EOS, PAD, UNK, SequenceTokenizer, Vocabulary,
                                    detokenize, sentence_tokens)


@pytest.mark.parametrize("text, tokens, back", [
    ("The letter A.", ["the", "letter", "a", "."], "the letter a."),
    ("L'avion (rouge) vole, vite !", ["l'", "avion", "(", "rouge", ")", "vole", ",", "vite",
                                     "!"], "l'avion (rouge) vole, vite!"),
    ("The sign for 'cat'.", ["the", "sign", "for", "'", "cat", "'", "."],
     "the sign for 'cat'."),
    ("Ｆｕｌｌ－ｗｉｄｔｈ", ["full", "-", "width"], "full-width"),
    ("A coin of 20 cents (0.20 €).", ["a", "coin", "of", "20", "cents", "(", "0.20", "€", ")",
                                      "."], "a coin of 20 cents (0.20 €)."),
    ("你好，世界。", ["你好", ",", "世界", "。"], "你好, 世界 。"),
])
def test_sentence_tokens_and_detokenize(text, tokens, back):
    assert sentence_tokens(text) == tokens
    assert detokenize(tokens) == back
    assert sentence_tokens(back) == tokens  # a round trip keeps the tokens


def test_sentence_tokens_char_level_and_case():
    assert sentence_tokens("Ab  c.", level="char") == ["a", "b", " ", "c", "."]
    assert detokenize(["a", "b", " ", "c"], level="char") == "ab c"
    assert sentence_tokens("The A", lowercase=False) == ["The", "A"]
    with pytest.raises(ValueError):
        sentence_tokens("x", level="byte")


def test_vocabulary_reserved_ids():
    vocab = Vocabulary([["b", "a", "a", "<bos>"]], reserved=("<bos>", "<eos>"))
    assert vocab.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"]
    assert vocab.id("a") == 4 and vocab.id("zzz") == UNK
    with pytest.raises(ValueError):
        Vocabulary([["a"]], max_size=3, reserved=("<bos>", "<eos>"))


def test_sequence_tokenizer_round_trip(stamps):
    english = [s.captions["en"] for s in stamps if "en" in s.captions]
    french = [s.captions["fr"] for s in stamps if "fr" in s.captions]
    for texts in (english, french):
        tok = SequenceTokenizer().fit(texts)
        assert tok.vocab.tokens[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
        assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
        for text in texts[:50]:
            ids = tok.encode(text, bos=True, eos=True)
            assert ids[0] == BOS and ids[-1] == EOS and ids.dtype == torch.long
            assert UNK not in ids.tolist()
            assert tok.decode(ids) == tok.normalize(text)
            assert sentence_tokens(tok.decode(ids)) == tok.split(text)
        again = SequenceTokenizer.from_dict(tok.to_dict())
        assert torch.equal(again.encode(texts[0]), tok.encode(texts[0]))
    assert tok.decode([BOS, tok.vocab.id("le"), EOS, tok.vocab.id("la")]) == "le"
    with pytest.raises(RuntimeError, match="fit"):
        SequenceTokenizer().encode("x")


def test_teacher_forcing_batch():
    tok = SequenceTokenizer().fit(["The letter A.", "The letter B."])
    inputs, targets = tok.teacher_forcing(["The letter A.", "B"])
    a, b = tok.encode("The letter A.").tolist(), tok.encode("B").tolist()
    assert inputs.tolist() == [[BOS, *a], [BOS, *b, PAD, PAD, PAD]]
    assert targets.tolist() == [[*a, EOS], [*b, EOS, PAD, PAD, PAD]]
    short_in, short_tg = tok.teacher_forcing(["The letter A."], max_len=2)
    assert short_in.tolist() == [[BOS, *a[:2]]] and short_tg.tolist() == [[*a[:2], EOS]]


def test_bleu_and_chrf_match_sacrebleu():
    hyps = ["The letter A.", "a red apple on a table", "the sign for cat"]
    refs = ["the letter a.", "A red apple.", "The sign for 'cat' in American Sign Language."]
    assert bleu(hyps, refs) == pytest.approx(
        sacrebleu.corpus_bleu([h.lower() for h in hyps], [[r.lower() for r in refs]]).score)
    assert bleu(hyps, refs, lowercase=False) == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert chrf(hyps, refs) == pytest.approx(
        sacrebleu.corpus_chrf([h.lower() for h in hyps], [[r.lower() for r in refs]]).score)
    assert bleu(refs, refs) == pytest.approx(100.0) and chrf(refs, refs) == pytest.approx(100.0)
    assert 0 < bleu(hyps, refs) < 100 and 0 < chrf(hyps, refs) < 100
    with pytest.raises(ValueError, match="one reference"):
        bleu(hyps, refs[:2])
