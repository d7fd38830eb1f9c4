"""Chapter 09: caption pairs, folds, baselines, the character translator and its recipe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmcourse import experiments
from mmcourse.experiments import translation as recipe
from mmcourse.preprocessing.text import BOS, EOS, UNK, SequenceTokenizer
from mmcourse.runtime import config
from mmcourse.tasks import translation as tr


def test_clean_caption_gives_one_spelling():
    decomposed = "Un cafe\u0301 \u2014 l\u2019\u0153uf\u202f!"
    assert tr.clean_caption(decomposed) == "Un café - l'oeuf !"
    assert tr.clean_caption("  \u00abBonjour\u00bb\n") == '"Bonjour"'
    assert len(tr.clean_caption("e\u0301")) == 1


def test_caption_pairs_keep_stamps_with_both_languages():
    from mmcourse.data import load_stamps

    stamps = load_stamps()
    kept, en, fr = tr.caption_pairs(stamps)
    assert len(kept) == len(en) == len(fr) == sum("fr" in s.captions for s in stamps) > 900
    koala = [f for e, f in zip(en, fr) if e == "A koala."]
    assert koala == ["Un koala."]
    kept, _, _ = tr.caption_pairs(stamps, target="xx")
    assert kept == []


@pytest.mark.parametrize("n,k", [(10, 5), (953, 5), (7, 3)])
def test_stamp_folds_test_every_stamp_once(n, k):
    folds = tr.stamp_folds(n, k, seed=3)
    assert len(folds) == k
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(n))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == n
        assert abs(len(test) - n / k) < 1
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, tr.stamp_folds(n, k, 3)))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, tr.stamp_folds(n, k, 4)))


@pytest.mark.parametrize("method", ["tfidf", "minilm"])
def test_retrieval_returns_the_target_of_the_nearest_source(method):
    src = ["A red apple.", "A big dog.", "The letter B."]
    tgt = ["Une pomme rouge.", "Un gros chien.", "La lettre B."]
    got = tr.retrieval_baseline(src, tgt, ["A green apple.", "The letter C.", "A big dog."],
                                method)
    assert got == ["Une pomme rouge.", "La lettre B.", "Un gros chien."]
    assert tr.copy_baseline(src) == src
    with pytest.raises(ValueError, match="tfidf"):
        tr.retrieval_baseline(src, tgt, src, method="bm25")


TOY_PAIRS = (["the house", "the flower", "a house", "a big house", "the big flower"],
             ["la maison", "la fleur", "une maison", "une grande maison", "la grande fleur"])


def test_model_one_learns_which_word_translates_which():
    lexicon = tr.WordLexicon(iterations=20).fit(*TOY_PAIRS)
    assert {e: lexicon.translate_word(e) for e in ("the", "a", "house", "flower", "big")} == \
        {"the": "la", "a": "une", "house": "maison", "flower": "fleur", "big": "grande"}
    assert lexicon.prob("maison", "house") > 0.8 > lexicon.prob("la", "house")
    # t(. | e) is a distribution over the French words for every English word
    for e in ("the", "house", tr.NULL_WORD):
        assert sum(p for (f, e2), p in lexicon.t.items() if e2 == e) == pytest.approx(1)
    assert lexicon.align(["the", "big", "house", "."], ["La", "grande", "maison", "."]) == \
        [0, 1, 2, -1]
    # unknown words, names and numbers are copied; punctuation is never translated
    assert [lexicon.translate_word(w) for w in ("koala", "Tamworth", "50", "!")] == \
        ["koala", "Tamworth", "50", "!"]
    with pytest.raises(ValueError, match="targets"):
        tr.WordLexicon().fit(["the house"], [])


def test_repair_replaces_the_aligned_words_and_copies_unknown_ones():
    lexicon = tr.WordLexicon(iterations=20).fit(*TOY_PAIRS)
    assert tr.repair_translation("The flower.", "The house.", "La maison.", lexicon) == \
        "La fleur."
    assert tr.repair_translation("A big koala!", "A big house!", "Une grande maison !",
                                 lexicon) == "Une grande koala!"
    # a run of words for one word: the first aligned French word takes them all
    assert tr.repair_translation("The big flower.", "The house.", "La maison.", lexicon) == \
        "La grande fleur."
    # only deleted or only inserted words are left alone; same words: unchanged
    assert tr.repair_translation("The house.", "The big house.", "La grande maison.",
                                 lexicon) == "La grande maison."
    assert tr.repair_translation("the HOUSE", "The house.", "La  maison .", lexicon) == \
        "La maison."
    assert tr.repair_translation("The house.", "the house.", "La  maison !", lexicon) == \
        "La  maison !"
    # punctuation aligns with no English word, so a changed mark is not carried over
    assert tr.repair_translation("The house.", "The house!", "La maison !", lexicon) == \
        "La maison!"


def test_extended_ids_point_unknown_words_at_their_first_position():
    vocab = SequenceTokenizer().fit(["un chat ."]).vocab
    ids = tr.extended_ids(["a", "koala", "chat", "koala", "."], vocab)
    v = len(vocab)
    assert ids == [v + 0, v + 1, vocab.id("chat"), v + 1, vocab.id(".")]


def _pairs(image_dim=6):
    source = ["A koala.", "A black cat.", "The letter R.", "A cat."]
    target = ["Un koala.", "Un chat noir.", "La lettre R.", "Un chat."]
    src_tok = SequenceTokenizer().fit(source[1:])
    tgt_tok = SequenceTokenizer().fit(target[1:])
    image = np.random.default_rng(0).normal(size=(4, image_dim)).astype(np.float32)
    return tr.PairBatches(source, target, image, [0, 1, 2, 3], src_tok, tgt_tok, 4,
                          neighbours=np.array([3, 3, 1, 1]))


def test_pair_batches_copy_what_the_vocabulary_lacks():
    pairs = _pairs()
    batch = pairs.batch([0, 1])
    v = len(pairs.tgt_tok)
    # "koala" is in neither vocabulary: the source reads <unk>, the target copies it
    assert batch["src"][0, 1] == UNK and batch["sources"][0, 1] == v + 1
    assert batch["tgt_out"][0, :3].tolist() == [pairs.tgt_tok.vocab.id("un"), v + 1,
                                                pairs.tgt_tok.vocab.id(".")]
    assert batch["tgt_in"][0, :3].tolist() == [BOS, pairs.tgt_tok.vocab.id("un"), UNK]
    assert batch["tgt_out"][0, 3] == EOS and batch["image"].shape == (2, 6)
    assert pairs.decode(0, batch["tgt_out"][0, :3].tolist()) == "Un koala."
    assert batch["src_len"].tolist() == [3, 4]
    # the retrieved captions: "un chat ." for both
    assert batch["nbr_len"].tolist() == [3, 3]
    assert pairs.tgt_tok.decode(batch["nbr"][0]) == "un chat."


def test_pair_batches_group_by_length_when_shuffled():
    pairs = _pairs()
    pairs.batch_size, pairs.shuffle = 2, True
    torch.manual_seed(0)
    rows = pairs.batches()
    assert sorted(np.concatenate(rows).tolist()) == [0, 1, 2, 3] and len(pairs) == 2


def _tiny_translator(image_dim=6, neighbour=True, seed=0):
    torch.manual_seed(seed)
    return tr.Translator(12, 10, image_dim=image_dim, neighbour=neighbour, embed_dim=8,
                         hidden_size=16).eval()


def _batch(b=3, s=6, t=5, image=True):
    g = torch.Generator().manual_seed(1)
    batch = {"src": torch.randint(4, 12, (b, s), generator=g),
             "src_len": torch.tensor([s, 4, 2][:b]),
             "tgt_in": torch.randint(4, 10 + s, (b, t), generator=g),
             "nbr": torch.randint(4, 10, (b, 3), generator=g),
             "nbr_len": torch.tensor([3, 1, 2][:b])}
    batch["sources"] = torch.where(torch.rand(b, s, generator=g) < 0.5,
                                   torch.randint(4, 10, (b, s), generator=g),
                                   10 + torch.arange(s).expand(b, s))
    if image:
        batch["image"] = torch.randn(b, 6, generator=g)
    return batch


def test_copy_decoder_gives_a_distribution_over_the_extended_vocabulary():
    net, batch = _tiny_translator(), _batch()
    log_probs = net(batch)
    assert log_probs.shape == (3, 5, 10 + 6 + 3 + 1)  # V + S + N + the picture row
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 5), atol=1e-5)
    # an extended id that no source row holds can never be produced
    absent = torch.ones(3, 20, dtype=torch.bool)
    absent[:, :10] = False
    for b in range(3):
        absent[b, batch["sources"][b, :int(batch["src_len"][b])]] = False
    assert (log_probs.exp()[absent[:, None, :].expand(-1, 5, -1)] < 1e-6).all()
    # a copied word read back as input is embedded as <unk>
    unk_in = dict(batch, tgt_in=batch["tgt_in"].clamp(max=9).masked_fill(
        batch["tgt_in"] >= 10, UNK))
    assert torch.allclose(net(unk_in), log_probs)


def test_decoder_steps_reproduce_teacher_forcing():
    net, batch = _tiny_translator(), _batch()
    log_probs = net(batch)
    memory, mask, sources = net.encode(batch)
    assert memory.shape[1] == 6 + 3 + 1 and mask[:, -1].all() and (sources[:, -1] == 0).all()
    assert torch.equal(sources[1, 6:9], torch.tensor([int(batch["nbr"][1, 0]), 0, 0]))
    step, state = net.decoder.stepper(memory, mask, sources), net.decoder.init_state(memory, mask)
    for t in range(5):
        out, state = step(batch["tgt_in"][:, t], state)
        assert torch.allclose(out, log_probs[:, t], atol=1e-5)


def test_padding_of_the_source_does_not_change_the_translation():
    net, batch = _tiny_translator(), _batch(b=1, s=4)
    padded = dict(batch, src=torch.cat([batch["src"], torch.zeros(1, 3, dtype=torch.long)], 1),
                  sources=torch.cat([batch["sources"], torch.zeros(1, 3, dtype=torch.long)], 1),
                  src_len=torch.tensor([4]))
    batch["src_len"] = torch.tensor([4])
    assert torch.allclose(net(batch)[..., :14], net(padded)[..., :14], atol=1e-6)
    assert torch.allclose(net(batch).exp()[..., 14:].sum(), torch.zeros(()), atol=1e-6)


def test_the_picture_reaches_the_output_only_when_read():
    batch = _batch()
    other = dict(batch, image=torch.randn(3, 6))
    net = _tiny_translator()
    assert not torch.allclose(net(batch), net(other))
    with pytest.raises(ValueError, match="picture"):
        net({k: v for k, v in batch.items() if k != "image"})
    text = _tiny_translator(image_dim=0)
    assert not text.reads_image and torch.equal(text(batch), text(other))
    with pytest.raises(ValueError, match="retrieved"):
        net({k: v for k, v in batch.items() if k != "nbr"})
    plain = _tiny_translator(image_dim=0, neighbour=False)
    assert torch.equal(plain(batch), plain(dict(batch, nbr=batch["nbr"].flip(0))))


def test_generate_never_says_unk_and_beam_one_is_greedy():
    net, batch = _tiny_translator(), _batch()
    greedy = net.generate(batch, max_len=6)
    assert len(greedy) == 3 and all(UNK not in seq and len(seq) <= 6 for seq in greedy)
    beam = net.generate(batch, max_len=6, beam_size=3)
    assert all(UNK not in seq for seq in beam)


def test_translate_reads_the_replacement_pictures():
    pairs = _pairs()
    torch.manual_seed(0)
    net = tr.Translator(len(pairs.src_tok), len(pairs.tgt_tok), 6, True, embed_dim=8,
                        hidden_size=16)
    out = tr.translate(net, pairs, max_len=5)
    assert len(out) == 4 and all(isinstance(t, str) for t in out)
    assert tr.translate(net, pairs, max_len=5, image=pairs.image) == out


def test_shuffled_images_give_every_test_stamp_another_picture():
    image = np.arange(20, dtype=np.float32).reshape(10, 2)
    test = np.array([1, 4, 5, 8])
    out = recipe.shuffled_images(image, test, seed=1)
    assert (out[test] != image[test]).any(axis=1).all()
    assert sorted(out[test, 0]) == sorted(image[test, 0])
    others = np.setdiff1d(np.arange(10), test)
    assert np.array_equal(out[others], image[others])


TINY = dict(stamp_limit=60, folds=3, run_folds=1, image_size=64, epochs=2, hidden_size=16,
            embed_dim=8, batch_size=16, max_len=12)


@pytest.fixture()
def fresh_checkpoints(tmp_path, monkeypatch):
    real = config.cache_dir

    def cache_dir(*parts):
        if parts and parts[0] == "checkpoints":
            path = tmp_path.joinpath(*parts)
            path.mkdir(parents=True, exist_ok=True)
            return path
        return real(*parts)

    monkeypatch.setattr(config, "cache_dir", cache_dir)


def test_recipe_runs_end_to_end_on_tiny_settings(fresh_checkpoints):
    s = recipe.settings(**TINY, retrieval="tfidf")
    outcome = experiments.run("multimodal-translation", s=s)
    assert outcome.name == "multimodal-translation"
    for system in recipe.SYSTEMS:
        for metric in ("BLEU", "chrF"):
            assert 0 <= outcome.metrics[f"{system} {metric}"] <= 100
            assert outcome.metrics[f"{system} ± {metric}"] == 0  # one fold
    record = outcome.details["record"]
    assert len(record["stamps"]) == 20 and set(recipe.SYSTEMS) <= set(record["stamps"][0])
    assert all(len(h) == 2 for h in record["folds"][0]["histories"].values())
    assert outcome.metrics["retrieval chrF"] > outcome.metrics["copy chrF"]


def test_translate_feeds_the_model_device(feeds_model_device):
    pairs = _pairs(image_dim=1280)
    net = recipe.translator(recipe.settings(**TINY), len(pairs.src_tok), len(pairs.tgt_tok))
    feeds_model_device(tr.translate, net, pairs)


def test_exact_matches_ignore_case_and_punctuation():
    data = recipe.TranslationData([None] * 4, ["The letter S.", "The letter s", "A cat.", "A dog."],
                                  ["La lettre S.", "La lettre s.", "Un chat.", "Un chien."],
                                  np.zeros((4, 2)), np.zeros((4, 2)), [])
    got = recipe.exact_matches(data, [0, 2], np.array([1, 0, 3, 2]))
    assert got.tolist() == [True, False]


def test_exact_matches_keep_the_retrieved_translation_in_model_rows(fresh_checkpoints):
    s = recipe.settings(**TINY, retrieval="tfidf", seq2seq=False)
    data = recipe.translation_data(s)
    data.source[data.folds[0][1][0]] = data.source[data.folds[0][0][0]]  # a duplicate
    fold = data.fold(0, s)
    nets = {"text": recipe.translator(s, len(fold["src_tok"]), len(fold["tgt_tok"]), "text")}
    result = recipe.evaluate_fold(nets, fold, data, s)
    assert result["exact"][0] and result["hyps"]["text"][0] == result["hyps"]["retrieval"][0]
    keep = [not e for e in result["exact"]]
    assert [h for h, k in zip(result["hyps"]["text"], keep) if k] == \
        [h for h, k in zip(result["hyps"]["text (model only)"], keep) if k]
