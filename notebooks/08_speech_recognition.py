# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/notebooks/08_speech_recognition.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=notebooks/08_speech_recognition.ipynb)
#
# # 08 · Speech recognition (语音识别) with CTC
#
# The post lists **speech recognition (语音识别)** among the applications of multimodal
# models: audio in, text out. Chapter 03 classified whole clips (which digit, which
# language); here the model must *spell* what it hears, one character after another,
# without anyone telling it where each character starts and ends. The loss that makes
# that possible is **connectionist temporal classification (CTC)**, and it is the first
# thing every modern speech-recognition course teaches.
#
# | section | what | data |
# |---|---|---|
# | 1 | CTC from the equations: blank, collapsing, the forward (α) recursion, checked against PyTorch | random tensors |
# | 2 | the task: one language of the recorded stamp captions, as characters | spoken captions (Spanish) |
# | 3 | a CRNN (chapter 03's encoder) with a CTC output layer | the same |
# | 4 | decoding: greedy, prefix beam search, a character language model | the same |
# | 5 | error rates (CER, WER) against a nearest-neighbour baseline, over seeds | held-out stamps |
# | 6 | connected digits: joined recordings transcribed with CTC | spoken digits (FSDD) |
# | 7 | honest limits | |
#
# The post's terms in English and Chinese: [glossary](../docs/glossary.md).

# %% [markdown]
# ## Setup
#
# **Locally**: `make lab` in the repository creates `.venv`, installs the package and
# the data, and opens this notebook in JupyterLab. **On Colab** the next cell installs
# the data packages and this course's package; elsewhere it does nothing.

# %%
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "mmcourse[dev] @ git+https://github.com/mmcourse/mmcourse"], check=True)
    subprocess.run([sys.executable, "-m", "mmcourse", "install-data"], check=True)

# %% [markdown]
# Every chapter starts by printing its settings. **Fast mode** (`MMCOURSE_FAST=1`, on
# automatically under CI) trains the recogniser for 12 epochs instead of 30 and with one
# seed instead of three, and the connected digits from fewer recordings for fewer epochs; the
# outputs you see in the committed notebook come from the full run (`MMCOURSE_FAST=0`).
# The chapter's two runs are the **recipes** `speech-ctc` and `connected-digits-ctc` in
# `mmcourse.experiments`; every number below comes from their `settings()`, and
# `python -m mmcourse bench speech-ctc connected-digits-ctc` reproduces the headline
# numbers.

# %% tags=["nbval-ignore-output"]
import dataclasses
import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torchaudio.functional import edit_distance as torchaudio_edit_distance

from mmcourse import session
from mmcourse.experiments import connected_digits, speech_ctc
from mmcourse.runtime import config
from mmcourse.tasks import ctc
from mmcourse.training.metrics import cer, edit_distance, wer

generator, dev = session.start()
sp, dg = speech_ctc.settings(), connected_digits.settings()
print(sp)
print(dg)

# %% [markdown]
# ## 1 · CTC from the equations
#
# A recogniser reads $T$ frames of audio and, at every frame $t$, outputs a probability
# distribution $y_t(k)$ over the symbols $k$: the characters, plus one extra symbol, the
# **blank** (written `_`). A **path** $\pi = (\pi_1, \dots, \pi_T)$ picks one symbol per
# frame. The **collapsing map** $\mathcal B$ turns a path into a labelling: first merge
# runs of the same symbol, then delete the blanks.
#
# $$\mathcal B(\texttt{hh\_oo\_\_la}) = \texttt{hola}, \qquad
#   \mathcal B(\texttt{aa\_a}) = \texttt{aa}, \qquad \mathcal B(\texttt{aaa}) = \texttt{a}.$$
#
# The blank does two jobs: it lets the model say "nothing new here" (most frames of
# speech are between characters), and it separates a doubled letter — *carro* needs a
# blank between its two r's, or they merge into one. CTC's likelihood of a labelling
# $\ell$ sums over **every** path that collapses to it, so nobody has to say which frame
# holds which character:
#
# $$p(\ell \mid x) = \sum_{\pi:\ \mathcal B(\pi) = \ell}\ \prod_{t=1}^{T} y_t(\pi_t),
#   \qquad \mathcal L_\text{CTC} = -\log p(\ell \mid x).$$

# %%
print(ctc.collapse([1, 1, 0, 1, 2, 2, 0]), "← [1, 1, 0, 1, 2, 2, 0]: the blank keeps the two 1s apart")
print(ctc.collapse([1, 1, 1, 2, 2]), "← [1, 1, 1, 2, 2]: runs merge")

# %% [markdown]
# There are $C^T$ paths, far too many to enumerate. The **forward (α) recursion** sums
# them in $O(T \cdot S)$. Write the labelling with a blank before, between and after its
# $S$ labels: $\ell' = (\_, \ell_1, \_, \ell_2, \dots, \ell_S, \_)$, of length $2S+1$.
# Let $\alpha_t(s)$ be the total probability of all path prefixes of $t+1$ frames that
# collapse to the first part of $\ell'$ and end at position $s$. A path can stay on its
# symbol, move one step, or skip a blank — but only onto a label that differs from the
# one two places back (between two equal labels the blank is compulsory):
#
# $$\alpha_0(0) = y_0(\_),\quad \alpha_0(1) = y_0(\ell_1),\quad \alpha_0(s) = 0\ (s \ge 2),$$
#
# $$\alpha_t(s) = \Big(\alpha_{t-1}(s) + \alpha_{t-1}(s-1)
#    + [\ell'_s \ne \_ \ \text{and}\ \ell'_s \ne \ell'_{s-2}]\ \alpha_{t-1}(s-2)\Big)\, y_t(\ell'_s),$$
#
# $$p(\ell \mid x) = \alpha_{T-1}(2S) + \alpha_{T-1}(2S-1).$$
#
# Products of many probabilities underflow, so `mmcourse.tasks.ctc.ctc_forward` runs the
# recursion on logarithms (sums become `logsumexp`), for a whole batch at once, with
# each sample's own number of frames and labels. First, on a case small enough to
# enumerate every path: 5 frames, 3 symbols, $3^5 = 243$ paths.

# %% tags=["nbval-ignore-output"]
g = torch.Generator().manual_seed(config.seed())
small = torch.randn(5, 1, 3, dtype=torch.float64, generator=g).log_softmax(-1)
by_labelling = {}
for path in itertools.product(range(3), repeat=5):
    key = tuple(ctc.collapse(path))
    by_labelling[key] = by_labelling.get(key, 0.0) + math.exp(sum(float(small[t, 0, k])
                                                                   for t, k in enumerate(path)))
for labels in [(1,), (1, 1), (2, 1, 2)]:
    log_p, alpha = ctc.ctc_forward(small, torch.tensor([labels]), torch.tensor([5]),
                                   torch.tensor([len(labels)]))
    print(f"labelling {labels}: α recursion {math.exp(float(log_p)):.6f}, "
          f"sum over paths {by_labelling[labels]:.6f}")
    assert math.isclose(math.exp(float(log_p)), by_labelling[labels], rel_tol=1e-9)
print(f"{len(by_labelling)} labellings, their probabilities sum to {sum(by_labelling.values()):.6f}")

# %% [markdown]
# The recursion equals the brute-force sum. The lattice of $\log \alpha_t(s)$ shows the
# paths at work: they start top left, can only move down (or skip a blank), and must end
# in one of the last two rows.

# %%
labels = (1, 1, 2)
frames8 = torch.randn(8, 1, 3, dtype=torch.float64, generator=g).log_softmax(-1)
log_p, alpha = ctc.ctc_forward(frames8, torch.tensor([labels]), torch.tensor([8]),
                               torch.tensor([3]))
lattice = alpha[:, 0].T.clamp(min=-30).numpy()
fig, ax = plt.subplots(figsize=(5.5, 3), dpi=100)
im = ax.imshow(lattice, cmap="viridis", aspect="auto")
ax.set_yticks(range(7), ["_", "a", "_", "a", "_", "b", "_"])
ax.set_xlabel("frame t")
ax.set_ylabel("position s in ℓ′ (ℓ = a a b)")
ax.set_title("log α_t(s), clipped at −30 (dark: unreachable)")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# The course's loss, `mmcourse.tasks.ctc.ctc_loss`, takes the same arguments as PyTorch's
# `torch.nn.functional.ctc_loss` — log-probabilities (T, N, C), padded targets, input
# and target lengths, the blank index, a reduction. On random batches with repeated
# labels, empty targets and different lengths, in float64, it gives the same losses and
# the same gradients (with respect to the logits) to 1e-5:

# %% tags=["nbval-ignore-output"]
worst_value, worst_grad = 0.0, 0.0
for seed in range(5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(1, 5, (6, 6), generator=g)
    targets[0, :4] = 3                                           # a run of repeats
    target_lengths = torch.randint(0, 7, (6,), generator=g)
    input_lengths = torch.randint(13, 17, (6,), generator=g)
    losses = []
    for fn in (ctc.ctc_loss, F.ctc_loss):
        loss = fn(logits.log_softmax(-1), targets, input_lengths, target_lengths, reduction="mean")
        losses.append((loss, torch.autograd.grad(loss, logits)[0]))
    (ours, g_ours), (theirs, g_theirs) = losses
    worst_value = max(worst_value, float((ours - theirs).abs()))
    worst_grad = max(worst_grad, float((g_ours - g_theirs).abs().max()))
print(f"largest difference: loss {worst_value:.1e}, gradient {worst_grad:.1e}")
assert worst_value < 1e-5 and worst_grad < 1e-5

# %% [markdown]
# The unit tests (`tests/test_ctc.py`) repeat this for every reduction, for another
# blank index and for impossible alignments (more labels than frames can carry: loss
# $\infty$, or 0 with `zero_infinity`). Training below uses PyTorch's optimised
# implementation, now that we know it computes the same thing.

# %% [markdown]
# ## 2 · The task: spoken stamp captions, in Spanish
#
# Every stamp has its caption recorded in several languages (chapter 03). Among the
# stamps the course loads (mirrored and flipped variants left out), the languages with
# most clips are French (925), Russian (918), Romanian (918), Catalan (915), Bulgarian
# (915) and Spanish (888, every one of them loaded in the next cell); English has only
# 65. We pick **Spanish**: it has
# almost as many clips as the largest, a Latin alphabet with few extra letters
# (á é í ó ú ü ñ), and a spelling that follows its sounds closely — a character
# recogniser trained on one hour or less of speech has a chance. French, the largest,
# writes many letters it does not pronounce (*oiseaux*), so the same audio would need
# far more data to spell.
#
# Captions are normalised to what can be heard: lower case, the letters of the
# language's alphabet and the space; punctuation and digits become spaces
# (`mmcourse.tasks.transcripts.normalize_transcript`). The character inventory comes from the
# training captions only (`CharTokenizer`, id 0 is the blank). Stamps are split 70/15/15
# by stamp, as in chapter 03, so no test clip is heard in training. The first run
# decodes and caches the clips' log-mel frames (64 bands every 10 ms).

# %% tags=["nbval-ignore-output"]
loaders = speech_ctc.loaders(sp)
task = loaders["task"]
tok = task.tokenizer
print(f"{len(task)} clips: " + ", ".join(f"{p} {len(i)}" for p, i in task.split.items()))
print(f"{len(tok)} symbols: {''.join(tok.symbols)!r}")

# %%
train_texts = loaders["reference"].dataset.texts
test_texts = loaders["test"].dataset.texts
for i in task.split["train"][:6]:
    print(f"{task.stamp_names[i]:<40} {task.texts[i]!r}")

# %% [markdown]
# CTC needs at least as many output frames as labels, plus one for every doubled letter.
# The recogniser averages every 3 input frames into one step (30 ms). Captions run from
# a word or two to whole sentences; almost every clip leaves the recogniser more than
# enough steps — but not all of them:

# %%
def frames_needed(text):
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


steps = np.array([math.ceil(len(f) / sp.time_stride) for f in task.features])
needed = np.array([frames_needed(t) for t in task.texts])
ratio = steps / needed
lengths = np.array([len(t) for t in task.texts])
print(f"characters per caption: median {np.median(lengths):.0f}, "
      f"90th percentile {np.percentile(lengths, 90):.0f}, max {lengths.max()}")
print(f"output steps per needed step: median {np.median(ratio):.1f}, min {ratio.min():.2f}")
too_short = np.flatnonzero(ratio < 1)
for i in too_short:
    print(f"  too short: {len(task.features[i]) / 100:.2f} s for {task.texts[i]!r}")
part_of = {int(i): p for p, idx in task.split.items() for i in idx}
assert 0 < len(too_short) <= 5 and all(part_of[int(i)] == "train" for i in too_short)
assert np.median(ratio) > 2

# %% [markdown]
# The exceptions are recordings that stop long before their caption does (a clip of
# well under a second for a whole sentence). No path of so few steps spells the caption,
# so its CTC loss is infinite; training sets such losses to zero (`zero_infinity`), and
# the few clips concerned are all in the training part, so the test set is not touched.

# %% [markdown]
# ## 3 · A CRNN with a CTC output layer
#
# The model is chapter 03's `AudioCRNNEncoder` — a batch norm of the input bands, 2-D
# convolutions over (frequency, time) that pool frequency only, then a bidirectional
# GRU — but instead of averaging the GRU's outputs over time into one vector, every
# frame's output goes through a linear layer to $C$ logits and a log-softmax
# (`mmcourse.tasks.asr.CTCRecognizer`). The loss is CTC, divided by each caption's length;
# training uses the course's one loop `fit` with AdamW and a one-cycle schedule, and
# keeps the epoch with the lowest validation loss. **SpecAugment** (masking random
# bands and frames, chapter 03) is a setting of the recipe (`specaugment=True`); it is
# off here, as in chapter 03's language task, where it did not help.

# %% tags=["nbval-ignore-output"]
recogniser = speech_ctc.model(sp, num_symbols=len(tok))
result = speech_ctc.train(recogniser, loaders, sp, progress=False)
print(result.report())
fig, ax = plt.subplots(figsize=(5.5, 3), dpi=100)
epochs = range(1, len(result.history["train_loss"]) + 1)
ax.plot(epochs, result.history["train_loss"], label="train")
ax.plot(epochs, result.history["val_loss"], label="validation")
ax.set_xlabel("epoch")
ax.set_ylabel("CTC loss per character")
ax.set_title(f"speech-ctc, seed {sp.seed}")
ax.legend()
plt.show()

# %% [markdown]
# What did it learn? The per-frame probabilities of one test clip show CTC's typical
# **spiky** output: each character fires as a sharp peak of one or two frames somewhere
# inside the stretch of audio where it is spoken, and the blank fills the frames in
# between — on the test clips it is the most probable symbol of about half the frames.

# %% tags=["nbval-ignore-output"]
from mmcourse.tasks.asr import log_probs_of

test_log_probs = log_probs_of(recogniser, loaders["test"])
k = int(np.argmax([len(t) for t in test_texts[:20]]))
probs = test_log_probs[k].exp().numpy()
fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
ax.plot(probs[:, 0], color="0.7", lw=1, label="blank")
for c in np.unique(probs[:, 1:].argmax(1)) + 1:
    if probs[:, c].max() > 0.3:
        ax.plot(probs[:, c], lw=1.2, label=repr(tok.symbols[c]))
ax.set_xlabel("output step (30 ms)")
ax.set_ylabel("probability")
ax.set_title(f"test clip: {test_texts[k]!r}")
ax.legend(ncol=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22))
plt.show()
blank_share = np.mean([float((lp.argmax(1) == 0).float().mean()) for lp in test_log_probs])
print(f"the blank is the most probable symbol of {blank_share:.0%} of the test frames")
assert 0.3 < blank_share < 0.75

# %% [markdown]
# ## 4 · Decoding: greedy, beam search and a language model
#
# **Greedy** (best-path) decoding takes the most probable symbol of each frame and
# collapses the path. It finds the best *path*, not the best *labelling*: a labelling
# reached by many paths can be more probable than the single best path. **Prefix beam
# search** keeps the `beam` most probable labellings so far, each with two numbers —
# the probability of its paths that end in a blank, $p_b$, and of those that end in its
# last character, $p_{nb}$ — because the next character merges with the second kind
# but not with the first. A tiny case where the two decoders disagree:

# %%
two_frames = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
print("greedy:", ctc.greedy_decode(two_frames[None]),
      "(best path '_ _' has p = 0.36)")
print("beam:  ", ctc.beam_decode(two_frames[None], beam=4),
      "('a' via 'a_', '_a', 'aa' has p = 0.64)")
assert ctc.greedy_decode(two_frames[None]) == [[]] and ctc.beam_decode(two_frames[None]) == [[1]]

# %% [markdown]
# A **character language model** knows which spellings are likely. `CharNgramLM` counts
# character n-grams of the training captions (order 4 here) with Witten–Bell
# interpolation, so an unseen history backs off to shorter ones and every conditional
# distribution sums to 1. In the beam search each new character adds
# $\lambda \log P_\text{LM}(c \mid \text{prefix}) + \beta$ to the prefix's score
# (**shallow fusion**): $\lambda$ weighs the LM, $\beta$ is a bonus per character that
# offsets the LM's preference for short outputs.

# %%
lm = speech_ctc.language_model(loaders, sp.lm_order)
for text in ["un gato", "un gtao", "una casa", "una csaa"]:
    print(f"log P_LM({text!r}) = {lm.score(text):7.2f}")
assert lm.score("un gato") > lm.score("un gtao") and lm.score("una casa") > lm.score("una csaa")

# %% [markdown]
# The error rates count the edits — substitutions, deletions, insertions — needed to
# turn the recogniser's output into the reference (the **edit distance**, by dynamic
# programming), summed over the test set and divided by the reference length:
# characters for the **character error rate (CER)**, space-separated words for the
# **word error rate (WER)**. Both can exceed 100 % when the output inserts a lot. The
# course's `edit_distance` agrees with torchaudio's:

# %%
pairs = [("una rana", "un arana"), ("un gato negro", "un pato"), ("", "abc")]
for ref, hyp in pairs:
    assert edit_distance(ref, hyp) == torchaudio_edit_distance(ref, hyp)
    assert edit_distance(ref.split(), hyp.split()) == torchaudio_edit_distance(ref.split(),
                                                                              hyp.split())
print("characters:", [edit_distance(r, h) for r, h in pairs],
      " words:", [edit_distance(r.split(), h.split()) for r, h in pairs])

# %% [markdown]
# ## 5 · Error rates against a nearest-neighbour baseline
#
# Is the recogniser doing more than recognising *which training clip* a test clip
# resembles? The **nearest-neighbour baseline** copies the transcript of the training
# clip closest to the test clip in the recogniser's own encoder space (the per-frame
# outputs averaged over time, cosine similarity). Short captions share a lot — most
# start with *un* or *una* (printed below) — so copying a neighbour already gets many
# characters right.
# A second, untrained baseline does the same with pooled log-mel statistics.
# `speech_ctc.run` trains the recogniser with each of its seeds, decodes the test
# stamps with every decoder and scores the baseline; the table holds the mean and the
# standard deviation over seeds (the model just trained is seed 0's run, loaded from
# its checkpoint).

# %%
article = np.mean([t.startswith(("un ", "una ")) for t in task.texts])
print(f"{article:.0%} of the captions start with 'un' or 'una'")
assert article > 0.5

# %% tags=["nbval-ignore-output"]
outcome = speech_ctc.run(sp)
per_seed = pd.DataFrame(outcome.details["per seed"])
table = pd.DataFrame({name: {m: outcome.metrics[f"{name} {m}"] for m in ("CER", "WER")}
                      for name in ("greedy", "beam", "beam + LM", "nearest neighbour",
                                   "pooled log-mel neighbour")}).T
for m in ("CER", "WER"):
    table[f"{m} std"] = [per_seed[f"{name} {m}"].std(ddof=0) if f"{name} {m}" in per_seed
                         else 0.0 for name in table.index]
print(f"% over {sp.seeds} seed(s) (mean, std), {outcome.details['test clips']} test clips; "
      "the pooled log-mel neighbour needs no training, so no seed")
(100 * table[["CER", "CER std", "WER", "WER std"]]).round(1)

# %% [markdown]
# The first test clips, as each decoder and the baseline transcribe them (the first
# seed's recogniser):

# %% tags=["nbval-ignore-output"]
pd.DataFrame(outcome.details["transcripts"]).head(12)

# %% [markdown]
# What the table says (in the full run: three seeds, 30 epochs each; fast mode trains one
# recogniser for 12 epochs, so its numbers are higher):
#
# * **The recogniser beats the nearest neighbour on characters**, for every seed and by
#   a wide margin: in the full run a greedy CER of 29.7 % against 65.3 % for copying the
#   closest training clip's caption (45.3 % against 60.3 % in fast mode). The recogniser
#   spells what it hears, letter by letter, often wrongly but close (see the transcripts
#   above); the neighbour can only return a caption it has seen, right or wrong as a
#   whole.
# * **Beam search alone helps a little** (29.7 % → 28.7 % CER in the full run, 45.3 % →
#   41.8 % in fast mode): it changes a letter here and there, rarely a whole word.
# * **The character language model helps more** (28.7 % → 25.3 % CER, 64.4 % → 56.5 %
#   WER in the full run): it repairs spellings the training captions make likely.
# * **WER is far above CER** for every decoder: one wrong letter spoils a whole word.
# * **By words, the neighbour is a harder baseline**: it copies whole, correctly spelled
#   words (*un*, *una*, *de*), so its WER (75.3 % in the full run) is not much above its
#   CER. The fully trained recogniser still has the lower WER (56.5 % with the LM), but
#   the greedy transcripts of fast mode's briefly trained one are worse than the
#   neighbour's by words.
# * **The encoder's space is what makes the neighbour work**: the same baseline in the
#   space of pooled log-mel statistics, which needs no training, is far worse (76.6 % CER).

# %%
m = outcome.metrics
assert all(r["greedy CER"] < r["nearest neighbour CER"] for r in outcome.details["per seed"])
assert m["greedy CER"] < m["nearest neighbour CER"] - 0.05
assert m["beam CER"] < m["greedy CER"] and m["greedy CER"] - m["beam CER"] < 0.06
assert abs(m["greedy WER"] - m["beam WER"]) < 0.03
assert m["beam + LM CER"] < m["beam CER"] and m["beam + LM WER"] < m["beam WER"]
assert all(m[f"{d} WER"] > m[f"{d} CER"] + 0.2 for d in ("greedy", "beam", "beam + LM"))
assert m["nearest neighbour WER"] - m["nearest neighbour CER"] < 0.2
if config.fast():
    assert m["greedy WER"] > m["nearest neighbour WER"]
else:
    assert m["beam + LM WER"] < m["nearest neighbour WER"]
assert m["nearest neighbour CER"] < m["pooled log-mel neighbour CER"] - 0.1

# %% [markdown]
# ## 6 · Connected digits: joined recordings, transcribed with CTC
#
# The spoken digits of chapter 03 (FSDD: 3,000 recordings of 6 speakers, 13 MFCCs per
# frame) are isolated words. Here 2–7 recordings are **joined end to end** into one
# utterance, and a CRNN with a CTC output layer over the 10 digits spells the digit
# string. These are **joined real recordings, not natural connected speech**: real
# talkers blur one digit into the next, and here every piece keeps its own recording's
# loudness and the little silence left at its ends. Recordings are split as in chapter 03 (72/8/20 %, by
# recording), and every utterance is built from one part only, so no test recording is
# heard in training. The score is the **digit error rate**: digit edits over spoken
# digits.

# %% tags=["nbval-ignore-output"]
digits_outcome = connected_digits.run(dg)
print(f"{digits_outcome.details['recordings']} recordings, "
      f"{dg.eval_utterances} test utterances of {dg.min_digits}–{dg.max_digits} digits")
pd.Series(digits_outcome.metrics).round(4)

# %% [markdown]
# In the full run (all 3,000 recordings, 2,000 fresh utterances per epoch, 12 epochs) the
# recogniser gets 1.8 % of the test digits wrong and transcribes 92 % of the test
# utterances without a single error. Fast mode (1,200 recordings, 800 utterances per
# epoch, 8 epochs) stops far earlier, and where it stops depends on the seed: under
# seeds 0, 1 and 2 it got 5 to 15 % of the digits wrong and half to four fifths of the
# utterances right — a model stopped early is not yet a stable measurement.

# %%
der = digits_outcome.metrics["test digit error rate"]
accuracy = digits_outcome.metrics["test utterance accuracy"]
if config.fast():
    assert der < 0.25 and accuracy > 0.35
else:
    assert der <= 0.05 and accuracy > 0.85

# %% [markdown]
# ## 7 · Honest limits
#
# * **Few voices.** The Spanish captions were recorded for Tux Paint by a few volunteers
#   at most (the files do not say who). The recogniser has learned those voices and
#   their recording conditions; nothing here says how it would do on anyone else's.
# * **Short clips, little data.** About 600 training captions of a few words each,
#   under 20 minutes of speech (measured below). Real recognisers train on thousands of
#   hours.
# * **Words never heard in training.** Captions name animals, objects and places; many
#   test words never occur in any training caption. The recogniser must spell those
#   from sound alone, and the language model, built from the training captions, cannot
#   know them either:

# %%
train_minutes = sum(len(task.features[i]) for i in task.split["train"]) / 100 / 60
print(f"{len(train_texts)} training captions, {train_minutes:.1f} minutes of speech")
vocabulary = {w for t in train_texts for w in t.split()}
test_words = [w for t in test_texts for w in t.split()]
unseen = np.mean([w not in vocabulary for w in test_words])
print(f"{len(test_words)} test words, {unseen:.0%} of them never occur in training")
assert train_minutes < 20 and 500 < len(train_texts) < 700
assert unseen > 0.2

# %% [markdown]
# ## What to remember
#
# * **CTC learns to spell from unaligned pairs** of audio and text. The blank and the
#   collapsing map define which frame-by-frame paths spell a transcript; the α recursion
#   sums them all in $O(T \cdot S)$; the course's loss equals PyTorch's, values and
#   gradients.
# * **On under 20 minutes of recorded Spanish captions**, a CRNN of under 0.4 M
#   parameters spells stamps it has never heard with roughly one character in four wrong
#   (beam search with the language model, in the full run) — far better than copying the
#   nearest training caption, and far from usable: most words still hold an error.
# * **Greedy decoding finds the best path, not the best labelling**; beam search, which
#   sums over paths, gains only a little over it here. A character language model of the
#   training captions, added to the beam search, gains more.
# * **Joined digits are an easy case** for the same machinery: ten symbols, every one of
#   them heard hundreds of times in training, and none blurred into the next as in real
#   connected speech.

# %%
assert outcome.metrics["parameters"] < 400_000
assert outcome.metrics["beam + LM WER"] > 0.5
if not config.fast():
    assert 0.2 < outcome.metrics["beam + LM CER"] < 0.3
