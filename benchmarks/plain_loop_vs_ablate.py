"""The same training step, hand-written and through ablate's bench step: is ablate's step overhead-free?

    python benchmarks/plain_loop_vs_ablate.py [--arch vgg38] [--batch-size 100] [--warmup 2] [--steps 8]
                                              [--rounds 2] [--device cpu]

One process, one device, one thread setting, one batch: a plain loop (``model(x)``,
``F.cross_entropy``, ``zero_grad``, ``backward``, Adam ``step``) and ablate's
``train_step`` timed by ``ablate.bench.measure`` on an identical model, alternated for
``--rounds`` rounds so that load on the machine hits both alike. Prints the median
step times and the ratio ablate/plain of throughputs (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.nn import functional as F

from ablate.bench.measure import time_calls
from ablate.models import build_model
from ablate.train.setup import (
    configure_cpu,
    configure_cuda,
    make_optimizer,
    pick_device,
    pick_precision,
)
from ablate.train.step import train_step

TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}


def models(arch: str, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two identical freshly initialised models."""
    pair = []
    for _ in range(2):
        torch.manual_seed(0)
        pair.append(build_model(arch).to(device))
    return pair[0], pair[1]


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg38")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = pick_device(args.device)
    threads = configure_cpu(0) if device.type == "cpu" else None
    if device.type == "cuda":
        configure_cuda()
    plain_model, ablate_model = models(args.arch, device)
    fused = True if device.type == "cuda" else None
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=TRAIN["lr"], fused=fused)
    ablate_opt = make_optimizer(ablate_model, TRAIN, device)
    precision = pick_precision("off", device)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch_size,), device=device)
    runs = {"plain": lambda: plain_step(plain_model, plain_opt, x, y),
            "ablate": lambda: train_step(ablate_model, ablate_opt, x, y, precision)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            time_calls(fn, args.warmup, device)
            times[name] += time_calls(fn, args.steps, device)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.arch}, batch {args.batch_size}, {device} ({threads or '-'} threads), fp32, "
          f"{args.rounds} rounds x {args.steps} timed steps")
    for name, median in medians.items():
        print(f"  {name:>6}: {1000 * median:8.1f} ms/step  {args.batch_size / median:8.1f} img/s")
    print(f"  ratio ablate/plain (throughput): {medians['plain'] / medians['ablate']:.3f}")


if __name__ == "__main__":
    main()
