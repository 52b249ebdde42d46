"""One training epoch: ablate's trainer against a plain coursework-style PyTorch loop, on the CPU.

    python benchmarks/trainer_vs_plain_loop.py [--arch vgg08,vgg38] [--train-size 2000] [--batch-size 100]

Both train the same freshly initialised model (seed 0) with Adam 1e-3 on the same
images (the ``synthetic`` dataset's uint8 training split), with random crop (pad 4)
and horizontal flip, for one epoch, in one process with the same threads.

* plain: a ``Dataset`` of PIL images, torchvision ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``; a ``DataLoader`` (shuffle,
  batch 100, no workers); ``loss.item()`` and the accuracy read back every step.
* ablate: ``ablate.train.trainer.train`` (data as uint8 tensors on the device, batched
  augmentation, no host sync in the step), gradient-flow recording off; its epoch's
  ``epoch_seconds`` (training only, validation excluded) is the figure.

Prints each loop's epoch time and the speed-up plain/ablate per architecture.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ablate.data.augment import channel_stats
from ablate.data.synthetic import synthetic
from ablate.models import build_model
from ablate.recipe import resolve
from ablate.train.setup import configure_cpu
from ablate.train.trainer import train


class PILImages(Dataset):
    """uint8 ``(N, C, H, W)`` images as PIL images, transformed on access (the coursework way)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: transforms.Compose) -> None:
        self.images = [transforms.functional.to_pil_image(img) for img in x]
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def plain_epoch(arch: str, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Seconds for one training epoch of the plain loop."""
    mean, std = channel_stats(x)
    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())])
    loader = DataLoader(PILImages(x, y, transform), batch_size=batch_size, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    model = build_model(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    total_loss = correct = 0.0
    for images, labels in loader:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        correct += (logits.argmax(1) == labels).sum().item()
    return time.perf_counter() - start


def ablate_epoch(arch: str, train_size: int, batch_size: int) -> float:
    """Seconds of the trainer's one training epoch (its ``epoch_seconds``)."""
    config = resolve({"model": {"arch": arch}, "data": {"dataset": "synthetic", "train_size": train_size,
                                                        "val_size": 200, "test_size": 200},
                      "train": {"epochs": 1, "batch_size": batch_size, "device": "cpu"},
                      "gradflow": {"every": 0}}, "trainer_vs_plain_loop", {})[0].config
    with tempfile.TemporaryDirectory() as run_dir:
        summary = train(config, Path(run_dir))
        return summary["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg08,vgg38")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    threads = configure_cpu(0)
    train_split = synthetic(train_size=args.train_size, val_size=200, test_size=200).train
    print(f"one epoch of {args.train_size} synthetic images, batch {args.batch_size}, cpu, {threads} threads")
    for arch in args.arch.split(","):
        plain = plain_epoch(arch, train_split.x, train_split.y, args.batch_size)
        ours = ablate_epoch(arch, args.train_size, args.batch_size)
        print(f"  {arch}: plain {plain:7.1f} s ({args.train_size / plain:6.0f} img/s), ablate {ours:7.1f} s "
              f"({args.train_size / ours:6.0f} img/s), speed-up plain/ablate {plain / ours:.2f}x")


if __name__ == "__main__":
    main()
