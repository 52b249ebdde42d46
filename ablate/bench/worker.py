"""Bench one arm in this process: ``python -m ablate.bench.worker '<arm as JSON>'``.

Prints one JSON line, the result row; a failure is a row whose ``error`` says why.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch

from ablate.bench import measure
from ablate.bench.arms import BenchArm
from ablate.bench.schema import empty_row
from ablate.data import Split
from ablate.data.augment import DeviceLoader
from ablate.gradflow import gradient_stats_at_init
from ablate.models import count_params
from ablate.plugins import get_plugins
from ablate.registry import AblateError
from ablate.train.graph import GraphedStep, fallback_message, unsupported
from ablate.train.setup import (
    Precision,
    configure_cpu,
    configure_cuda,
    environment,
    make_optimizer,
    maybe_compile,
    pick_device,
    pick_precision,
    uses_cudagraphs,
)
from ablate.train.step import train_step


def random_batch(arm: BenchArm, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images on ``device``, normalised by the trainer's loader; random labels."""
    gen = torch.Generator(device=device).manual_seed(arm.seed)
    shape = (arm.batch_size, arm.in_channels, arm.image_size, arm.image_size)
    x = torch.randint(0, 256, shape, generator=gen, device=device, dtype=torch.uint8)
    y = torch.randint(0, arm.num_classes, (arm.batch_size,), generator=gen, device=device)
    half = torch.full((arm.in_channels,), 0.5)
    loader = DeviceLoader(Split(x, y), arm.batch_size, half, half / 2, channels_last=arm.channels_last)
    return next(iter(loader.batches()))


def bench_arm(arm: BenchArm, row: dict[str, Any]) -> None:
    """Fill ``row`` with every measurement of ``arm``, in order; raises on failure (``row`` keeps the rest)."""
    device = pick_device(arm.device)
    threads = configure_cpu(arm.threads) if device.type == "cpu" else None
    if device.type == "cuda":
        configure_cuda()
    precision = pick_precision(arm.amp, device)
    row["amp"] = precision.name
    if arm.graph == "step" and arm.compile is not None:
        raise AblateError("graph 'step' captures the whole training step; it cannot be combined with compile")
    reason = unsupported(device, precision, arm.train["optimizer"]) if arm.graph == "step" else None
    if reason is not None:  # benched eager, as the trainer would train it; the row says so
        print(f"ablate bench: {fallback_message(reason)}", file=sys.stderr)
    row["graph"] = arm.graph if reason is None else "none"
    row["environment"] = {**environment(device, get_plugins().versions(), threads), "amp": precision.name,
                          "channels_last": arm.channels_last, "compile": arm.compile,
                          "graph": row["graph"] if reason is None else f"none ({reason})"}
    torch.manual_seed(arm.seed)
    model = arm.build()
    row["params"] = count_params(model)
    row.update(measure.flops_per_image(model, (arm.in_channels, arm.image_size, arm.image_size), arm.num_classes))
    model = model.to(device, memory_format=torch.channels_last if arm.channels_last else torch.preserve_format)  # type: ignore[call-overload]
    x, y = random_batch(arm, device)
    row.update(gradient_flow(model, x, y, precision))
    row.update(trainability(model, x, row["gradflow_verdict"], precision))
    optimizer = make_optimizer(model, arm.train, device)
    measure.reset_peak_memory(device)
    graphed = GraphedStep(model, optimizer, precision, device) if row["graph"] == "step" else None
    row.update(_time_training(arm, maybe_compile(model, arm.compile), optimizer, x, y, precision, device, graphed))
    row.update(measure.peak_memory(device))
    if device.type == "cuda":
        row["mfu"] = measure.mfu(row["flops_train_step"], row["train_images_per_s"],
                                 row["environment"]["device_name"], precision.name)


def gradient_flow(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: Precision) -> dict[str, Any]:
    """Verdict and first/last mean |g| at initialisation (one forward/backward; the model is left as it was)."""
    judged = gradient_stats_at_init(model, x, y, precision).summary()
    return {"grad_first": judged["first"], "grad_last": judged["last"], "grad_ratio": judged["ratio"],
            "gradflow_verdict": judged["verdict"]}


def trainability(model: torch.nn.Module, x: torch.Tensor, gradflow_verdict: str, precision: Precision) -> dict[str, Any]:
    """The cheap diagnostics of the batch (one forward pass, no Jacobian): where the signal dies, the effective
    rank of the penultimate features and the trainability verdict; None for a model whose blocks are unknown."""
    from ablate.diagnose.jacobian import effective_rank
    from ablate.diagnose.signal import forward_with_hooks
    from ablate.diagnose.verdict import judge_trainability

    try:
        profile, features = forward_with_hooks(model, x, precision)
    except AblateError:
        return {"signal_died_at": None, "effective_rank": None, "trainability": None}
    rank = effective_rank(features)
    verdict = judge_trainability(profile, {"verdict": gradflow_verdict}, rank)
    return {"signal_died_at": verdict.died_at, "effective_rank": rank, "trainability": verdict.verdict}


def _time_training(arm: BenchArm, model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor, precision: Precision, device: torch.device,
                   graphed: GraphedStep | None = None) -> dict[str, Any]:
    """Training-step then inference timings; with --compile the first call of each is timed apart, and with
    --graph step the first training call (warm-up and capture); inference always runs the model eagerly."""
    mark_step = uses_cudagraphs(arm.compile, device)

    def step() -> None:
        if graphed is not None:
            graphed(x, y)
        else:
            train_step(model, optimizer, x, y, precision, mark_step=mark_step)

    @torch.no_grad()
    def infer() -> None:
        with precision.autocast(device):
            model(x)

    out: dict[str, Any] = {"compile_seconds": None}
    for prefix, fn, training in (("train", step, True), ("infer", infer, False)):
        model.train(training)
        if arm.compile is not None or (graphed is not None and training):
            out["compile_seconds"] = (out["compile_seconds"] or 0.0) + measure.first_call_seconds(fn, device)
        measure.time_calls(fn, arm.warmup, device)
        out.update(measure.timing_stats(measure.time_calls(fn, arm.steps, device), arm.batch_size, prefix))
    return out


def error_message(exc: BaseException, arm: BenchArm) -> str:
    """One actionable line."""
    if isinstance(exc, torch.OutOfMemoryError):
        return f"out of memory at batch size {arm.batch_size}; lower --batch-size"
    text = str(exc).strip().splitlines()
    if isinstance(exc, AblateError):
        return text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run(arm: BenchArm) -> dict[str, Any]:
    """The result row of one arm, with the error (if any) instead of raising."""
    start = time.perf_counter()
    row = empty_row(arm)
    try:
        bench_arm(arm, row)
    except Exception as exc:  # any failure is reported as a row, not a crash of the bench
        row["error"] = error_message(exc, arm)
    row.update(worker_pid=os.getpid(), worker_seconds=time.perf_counter() - start)
    return row


def main(argv: list[str]) -> None:
    arm = BenchArm(**json.loads(argv[0]))
    row = run(arm)
    sys.stdout.write(json.dumps(row, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
