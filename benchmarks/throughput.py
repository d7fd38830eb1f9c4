"""Training-step throughput of chapter 06's model, three ways, in one run.

  (a) the course's loop: pictures decoded once and held as uint8 tensors on the device,
      cropped, flipped and normalised there (mmcourse.training.batches), channels-last pictures
      and bfloat16 autocast on a CUDA GPU, and with --compile the model through
      torch.compile (its compilation is not timed);
  (b) a naive loop: every step decodes the PNGs with PIL and letterboxes, crops and
      flips them with torchvision, tokenises the captions and decodes the spoken clips,
      through a DataLoader without workers; float32, NCHW;
  (c) the ceiling: the same model on one synthetic batch already on the device, with
      (a)'s precision, layout and compilation.

All three train the same three-tower model (EfficientNet-Lite0, MiniLM, audio CRNN, full
fine-tuning) with the same optimiser and batch size. Prints samples/s of each and the
ratios a/b and a/c, and writes them as JSON with --json.

    python benchmarks/throughput.py [--size 96] [--batch-size 32] [--steps 8] [--compile]
                                    [--json F]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmcourse.experiments import finetune as recipe
from mmcourse.nn.encoders import tokenize_captions
from mmcourse.preprocessing import crop_margin
from mmcourse.runtime.device import autocast_dtype, try_gpu
from mmcourse.training.train import to_device


class NaiveStamps(Dataset):
    """Every item read from the files: picture → PIL → letterbox → random crop and flip →
    normalised tensor; caption; spoken clip → log-mel frames."""

    def __init__(self, stamps, labels, s, language):
        self.stamps, self.labels, self.s, self.language = stamps, labels, s, language

    def __len__(self):
        return len(self.stamps)

    def __getitem__(self, i):
        from torchvision.transforms import v2

        from mmcourse.data import load_image
        from mmcourse.inference import clip_frames
        from mmcourse.preprocessing import letterbox

        stamp, s = self.stamps[i], self.s
        picture = letterbox(load_image(stamp), crop_margin(s.size))
        image = v2.Compose([v2.PILToTensor(), v2.RandomCrop(s.size), v2.RandomHorizontalFlip(),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.5] * 3, [0.5] * 3)])(picture)
        present = self.language in stamp.spoken
        frames = (clip_frames(stamp.spoken[self.language], s) if present
                  else torch.zeros(1, s.n_mels))
        return image, stamp.caption, frames, present, self.labels[i]


def naive_collate(items):
    """A list of NaiveStamps items → the model's batch dict (tokenised here, every step)."""
    images, captions, frames, present, labels = zip(*items)
    tokens, lengths = tokenize_captions(captions)
    longest = max(len(f) for f in frames)
    audio = torch.zeros(len(frames), longest, frames[0].shape[1])
    for i, f in enumerate(frames):
        audio[i, :len(f)] = f
    return {"image": torch.stack(images), "tokens": tokens, "tokens_lengths": lengths,
            "audio": audio, "audio_lengths": torch.tensor([len(f) for f in frames]),
            "audio_present": torch.tensor(present), "label": torch.tensor(labels)}


def measure(batches, net, optimizer, device, amp: bool, steps: int, warmup: int = 2) -> float:
    """Samples per second of ``steps`` training steps after ``warmup`` unmeasured ones;
    each batch is moved to ``device`` (a no-op for tensors already there)."""
    dtype = autocast_dtype(device) if amp else None
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    it = iter(batches)
    samples, start = 0, None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        batch = to_device(next(it), device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(net(batch).float(), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            samples += len(batch["label"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return samples / (time.perf_counter() - start)


def fresh_model(s, k, device, channels_last: bool, compile: bool = False):
    """The full three-tower model (through ``torch.compile`` with ``compile``) and its
    AdamW, on ``device``."""
    net = recipe.network(s, k, recipe.MODALITIES, "full").to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    return (torch.compile(net) if compile else net), optimizer


def forever(make):
    """Batches from ``make()``, started again whenever it runs out."""
    while True:
        yield from make()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="picture size (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per loop")
    parser.add_argument("--compile", action="store_true",
                        help="run (a) and (c) through torch.compile")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    device = try_gpu()
    s = recipe.for_device(recipe.settings(batch_size=args.batch_size,
                                          **({"size": args.size} if args.size else {})), device)
    data = recipe.stamp_data(s, device)
    k = len(data.categories)
    train_index = data.folds[0][0]
    amp = device.type == "cuda"
    results = {"machine": recipe.machine(), "device": str(device), "size": s.size,
               "batch_size": s.batch_size, "steps": args.steps, "torch": torch.__version__,
               "compile": args.compile}
    # a compiled model compiles again on its first steps with a new batch shape: warm up
    # over a whole pass of the training set
    warmup = 2 + (len(data.batches(train_index, s, True)) if args.compile else 0)

    torch.manual_seed(0)
    net, opt = fresh_model(s, k, device, recipe.channels_last(s, device), args.compile)
    course = data.batches(train_index, s, True)
    results["a_course"] = measure(forever(lambda: iter(course)), net, opt, device, amp,
                                  args.steps, warmup)

    net, opt = fresh_model(s, k, device, False)
    labels = data.data.tensors["label"].cpu().numpy()
    naive = DataLoader(NaiveStamps([data.stamps[i] for i in train_index], labels[train_index],
                                   s, data.language),
                       batch_size=s.batch_size, shuffle=True, num_workers=0,
                       collate_fn=naive_collate, pin_memory=device.type == "cuda")
    results["b_naive"] = measure(forever(lambda: iter(naive)), net, opt, device, False,
                                 args.steps)

    net, opt = fresh_model(s, k, device, recipe.channels_last(s, device), args.compile)
    synthetic = next(iter(course))
    results["c_ceiling"] = measure(forever(lambda: iter([synthetic])), net, opt, device, amp,
                                   args.steps, warmup=3 if args.compile else 2)

    results["a_over_b"] = results["a_course"] / results["b_naive"]
    results["a_over_c"] = results["a_course"] / results["c_ceiling"]
    print(f"{results['machine']} ({device}), {s.size} px, batch {s.batch_size}, "
          f"{args.steps} steps each{', compiled' if args.compile else ''}")
    for key in ("a_course", "b_naive", "c_ceiling"):
        print(f"  {key:<10} {results[key]:9.1f} samples/s")
    print(f"  a/b = {results['a_over_b']:.2f}   a/c = {results['a_over_c']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
