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

# %% [raw]
# # ASSIGNMENT CONFIG
# name: 00_setup_and_data
# init_cell: false
# check_all_cell: true
# export_cell: false
# run_tests: false
# generate: true

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/exercises/00_setup_and_data.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=exercises/00_setup_and_data.ipynb)
#
# # Exercise 00 · Data and preprocessing
#
# Companion to `notebooks/00_setup_and_data.ipynb`. Write the code where you see `...`,
# then run the `grader.check(...)` cell below it: it runs the public tests. Your
# instructor grades with more, hidden tests, so make your code correct, not just the
# examples. Do not delete or reorder cells.

# %%
# On Colab: install the course and its data first (elsewhere this cell does nothing).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "mmcourse[dev] @ git+https://github.com/mmcourse/mmcourse"], check=True)
    subprocess.run([sys.executable, "-m", "mmcourse", "install-data"], check=True)

# %%
# grader.check("…") runs a question's public tests and says in one line what failed.
from mmcourse.grading.feedback import Notebook
grader = Notebook("00_setup_and_data.ipynb")

# %%
import numpy as np
import torch

from mmcourse import data, preprocessing as prep

stamps = data.load_stamps()

# %% [raw]
# # BEGIN QUESTION
# name: q1_normalize
# points: 2

# %% [markdown]
# **Q1 · Cleaning text.** Write `normalize_caption(text)`: apply Unicode NFKC
# normalisation (`unicodedata.normalize`), case-fold (`str.casefold`), turn every
# character that is not a letter, digit or combining mark (Unicode categories `L*`,
# `N*`, `M*`) into a space, collapse runs of whitespace to one space and strip the ends.
# For example `"A ZEBRA-striped Ｔｅｓｌａ!"` becomes `"a zebra striped tesla"`.

# %% [raw]
# # BEGIN SOLUTION

# %%
import unicodedata


def normalize_caption(text):
    # BEGIN SOLUTION
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = [ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text]
    return " ".join("".join(kept).split())
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert normalize_caption("A ZEBRA-striped Ｔｅｓｌａ!") == "a zebra striped tesla"
assert normalize_caption("  Un   zèbre. ") == "un zèbre"

# %%
# HIDDEN
from mmcourse.grading.hidden import assert_same, forbidding, hidden_seed

for stamp in stamps[::7]:
    for lang in ("en", "fr", "ru", "zh_CN", "el"):
        if lang in stamp.captions:
            assert normalize_caption(stamp.captions[lang]) == prep.normalize_text(stamp.captions[lang])

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2_pad
# points: 2

# %% [markdown]
# **Q2 · Padding a batch.** Write `pad_batch(seqs, padding_value=0)` for a list of
# tensors of shapes `(T_i, *D)`. Return `(padded, lengths, mask)`: `padded` of shape
# `(B, T_max, *D)` holding each sequence followed by `padding_value`; `lengths` an int64
# tensor `(B,)`; `mask` a bool tensor `(B, T_max)`, True at real steps.

# %% [raw]
# # BEGIN SOLUTION

# %%
def pad_batch(seqs, padding_value=0):
    # BEGIN SOLUTION
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    t_max = int(lengths.max())
    padded = seqs[0].new_full((len(seqs), t_max, *seqs[0].shape[1:]), padding_value)
    for i, s in enumerate(seqs):
        padded[i, :len(s)] = s
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    return padded, lengths, mask
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_p, _l, _m = pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])])
assert _p.tolist() == [[5, 6, 7], [8, 0, 0]]
assert _l.tolist() == [3, 1] and _l.dtype == torch.long
assert _m.tolist() == [[True, True, True], [True, False, False]]

# %%
# HIDDEN
_g = torch.Generator().manual_seed(hidden_seed(3))
_seqs = [torch.randn(int(n), 13, generator=_g) for n in torch.randint(1, 40, (6,), generator=_g)]
assert_same(pad_batch(_seqs, -1.0), prep.pad_sequences(_seqs, -1.0), rtol=0, atol=0)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3_standardize
# points: 1

# %% [markdown]
# **Q3 · Per-utterance normalisation.** Write `standardize_rows(features, eps=1e-5)` for
# a spectrogram `(F, T)`: subtract each row's mean over time and divide by its
# (population) standard deviation plus `eps`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def standardize_rows(features, eps=1e-5):
    # BEGIN SOLUTION
    mean = features.mean(dim=-1, keepdim=True)
    std = features.std(dim=-1, unbiased=False, keepdim=True)
    return (features - mean) / (std + eps)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
_x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
_y = standardize_rows(_x)
assert _y.shape == (2, 3) and _y.dtype == torch.float32
assert torch.allclose(_y[0].mean(), torch.tensor(0.0), atol=1e-6)
assert torch.allclose(_y[1], torch.zeros(3))

# %%
# HIDDEN
_zebra = next(s for s in stamps if s.name.endswith("/zebra"))
_mel = prep.log_mel(prep.load_audio(_zebra.spoken_path("fr")))
assert_same(standardize_rows(_mel), prep.normalize_per_utterance(_mel), atol=1e-5)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q4_interpret
# points: 2

# %% [markdown]
# **Q4 · Reading the AV-digits baselines.** Compute each modality's logistic-regression
# accuracy on AV-digits with `data.modality_baselines(av)` (it returns a dict). Set
# `best_modality` to the name of the most accurate *single* modality (`"image"`,
# `"audio"` or `"text"`) and `fusion_gain` to how many **percentage points** using all
# three adds over that best single modality.

# %% [raw]
# # BEGIN SOLUTION

# %%
av = data.load_av_digits(seed=0)
scores = data.modality_baselines(av)
best_modality = max(("image", "audio", "text"), key=scores.get)  # SOLUTION
fusion_gain = 100 * (scores["all three"] - scores[best_modality])  # SOLUTION

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert best_modality in ("image", "audio", "text")
assert 0 < fusion_gain < 100

# %%
# HIDDEN
_s = data.modality_baselines(data.load_av_digits(seed=0))
_best = max(("image", "audio", "text"), key=_s.get)
assert best_modality == _best
assert abs(fusion_gain - 100 * (_s["all three"] - _s[_best])) < 0.5

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION
