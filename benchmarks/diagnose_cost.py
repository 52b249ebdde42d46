"""Cost of the trainability diagnostics on the CPU (not a test).

    python benchmarks/diagnose_cost.py [--rounds 5] [--threads 0]

1. Seconds to diagnose one VGG38 arm at initialisation, as ``ablate diagnose`` does after the
   model and batch are built (forward statistics, gradient flow, Jacobian norm, effective
   rank, verdict; batch 100), for plain VGG38 and VGG38 BN: median and best of ``--rounds``.
   Goal: under 5 s.
2. Per-epoch cost of recording the forward statistics (``[gradflow] signal = true``): one
   ``SignalRecorder`` measurement against one training step of batch 100 (both timed in
   interleaved rounds, best of each, as benchmarks/gradflow_overhead.py does), reported as a
   fraction of an epoch of the quickstart (20 steps) and of the study's CIFAR-100 epoch (475
   steps). Goal: under 1%.
Runs in about a minute on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from ablate.diagnose.arm import diagnose_model, random_batch
from ablate.diagnose.record import SignalRecorder
from ablate.models import build_model
from ablate.train.setup import configure_cpu, make_optimizer, pick_precision
from ablate.train.step import train_step

TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}
EPOCH_STEPS = {"quickstart (2,000 images, batch 100)": 20, "CIFAR-100 (47,500 images, batch 100)": 475}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def diagnose_seconds(norm: str, rounds: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (all threads) of each diagnosis: on a loaded machine the CPU time says more."""
    wall, cpu = [], []
    for seed in range(rounds):
        torch.manual_seed(seed)
        model = build_model("vgg38", norm=norm, num_classes=10)
        x, y = random_batch(100, 10, (3, 32, 32), seed)
        start, start_cpu = time.perf_counter(), cpu_seconds()
        diagnose_model(model, x, y, seed=seed)
        wall.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return wall, cpu


def recording_overhead(norm: str, rounds: int) -> tuple[float, float]:
    """Best seconds of one training step and of one signal measurement."""
    torch.manual_seed(0)
    model = build_model("vgg38", norm=norm, num_classes=10)
    optimizer = make_optimizer(model, TRAIN, torch.device("cpu"))
    precision = pick_precision("off", torch.device("cpu"))
    x, y = random_batch(100, 10, (3, 32, 32), 0)
    step_times, record_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        recorder = SignalRecorder((x, y))
        state = SimpleNamespace(model=model, run_dir=Path(tmp), epoch=0)
        recorder.on_run_start(state)
        train_step(model, optimizer, x, y, precision)  # warm-up
        for _ in range(rounds):
            start = time.perf_counter()
            train_step(model, optimizer, x, y, precision)
            step_times.append(time.perf_counter() - start)
            state.epoch += 1
            start = time.perf_counter()
            recorder.on_epoch_end(state)
            record_times.append(time.perf_counter() - start)
    return min(step_times), min(record_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: every core (as ablate does)")
    args = parser.parse_args()
    threads = configure_cpu(args.threads)
    print(f"torch {torch.__version__}, CPU, {threads} threads, {args.rounds} rounds")
    print("\n1. diagnosing one VGG38 arm at initialisation (batch 100; goal < 5 s)")
    for norm in ("none", "bn"):
        wall, cpu = diagnose_seconds(norm, args.rounds)
        print(f"   VGG38 norm={norm:4s}  wall median {statistics.median(wall):.2f} s, best {min(wall):.2f} s; "
              f"CPU time median {statistics.median(cpu):.2f} s")
    print("\n2. recording forward statistics once per epoch (goal < 1% of the epoch)")
    for norm in ("none", "bn"):
        step, record = recording_overhead(norm, args.rounds)
        shares = ", ".join(f"{100 * record / (steps * step):.2f}% of a {name} epoch" for name, steps in EPOCH_STEPS.items())
        print(f"   VGG38 norm={norm:4s}  step {1000 * step:.0f} ms, record {1000 * record:.0f} ms: {shares}")


if __name__ == "__main__":
    main()
