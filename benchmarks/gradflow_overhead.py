"""Overhead of gradient-flow recording on the training step (not a test).

    python benchmarks/gradflow_overhead.py [--models vgg08,vgg38] [--batch-size 100] [--rounds 15]
                                           [--device cpu] [--every 1]

Times ``ablate.train.step.train_step`` on one fixed batch, with and without the
``GradFlowRecorder`` hooked into ``on_after_backward`` (exactly as the trainer does),
interleaving the two variants round by round so that other load on the machine
hits both alike, and prints the best (minimum) step time of each, which other load
blurs least, and the overhead in %; then times the recording hook alone.
On CUDA, each timed block ends with a synchronisation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from ablate.gradflow import GradFlowRecorder
from ablate.models import build_model
from ablate.train.setup import (
    configure_cpu,
    make_optimizer,
    pick_device,
    pick_precision,
)
from ablate.train.step import train_step

TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_name: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=100).to(device)
    optimizer = make_optimizer(model, TRAIN, device)
    precision = pick_precision(args.amp, device)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch_size,), device=device)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = GradFlowRecorder(every=args.every)
        state = SimpleNamespace(model=model, run_dir=Path(tmp), epoch=0, step=0, metrics={})
        recorder.on_run_start(state)
        recorder.on_epoch_start(state)

        def hook() -> None:
            recorder.on_after_backward(state)
            state.step += 1

        def block(after_backward) -> float:
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer, x, y, precision, after_backward)
            sync(device)
            return (time.perf_counter() - start) / args.steps

        for _ in range(args.warmup):
            block(None)
            block(hook)
        plain, recorded = [], []
        for i in range(args.rounds):
            order = (None, hook) if i % 2 == 0 else (hook, None)
            for variant in order:
                (plain if variant is None else recorded).append(block(variant))
        hook_times = []
        for _ in range(args.rounds):  # the hook alone, on the last step's gradients
            sync(device)
            start = time.perf_counter()
            for _ in range(10):
                hook()
            sync(device)
            hook_times.append((time.perf_counter() - start) / 10)
        state.epoch = 1
        recorder.on_epoch_end(state)  # the once-per-epoch read back, not part of the step
    return min(plain), min(recorded), min(hook_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg08,vgg38")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15, help="timed blocks per variant")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed block")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    device = pick_device(args.device)
    threads = configure_cpu(args.threads) if device.type == "cpu" else None
    print(f"device {device}{f' ({threads} threads)' if threads else ''}, batch {args.batch_size}, "
          f"every {args.every}, {args.rounds} rounds x {args.steps} steps per variant")
    print(f"{'model':<8} {'plain ms/step':>14} {'recorded ms/step':>17} {'overhead':>9} {'hook alone':>11}")
    for name in args.models.split(","):
        plain, recorded, hook = measure(name.strip(), args, device)
        print(f"{name:<8} {1e3 * plain:>14.1f} {1e3 * recorded:>17.1f} {100 * (recorded / plain - 1):>8.2f}% "
              f"{1e3 * hook:>8.2f} ms ({100 * hook / plain:.2f}%)")


if __name__ == "__main__":
    main()
