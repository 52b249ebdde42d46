"""Measurements of one arm: FLOPs, step timing, peak memory."""

from __future__ import annotations

import copy
import resource
import statistics
import sys
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode


def flops_per_image(model: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                    batch: int = 2) -> dict[str, int]:
    """Forward and training-step (forward + backward) FLOPs per image, counted on a CPU copy in fp32."""
    model = copy.deepcopy(model).cpu().float().train()
    x = torch.randn(batch, *input_shape)
    y = torch.randint(0, num_classes, (batch,))
    with FlopCounterMode(display=False) as forward:
        loss = F.cross_entropy(model(x), y)
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    fwd, bwd = forward.get_total_flops(), backward.get_total_flops()
    return {"flops_forward": fwd // batch, "flops_train_step": (fwd + bwd) // batch}


PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "off": 378.0}),
    ("H100", {"bf16": 989.4, "fp16": 989.4, "off": 494.7}),
    ("H200", {"bf16": 989.4, "fp16": 989.4, "off": 494.7}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "off": 156.0}),
)
"""Dense tensor-core peaks (TFLOP/s, NVIDIA's data sheets) by a part of ``torch.cuda.get_device_name()``, first
match wins; amp ``off`` counts TF32, which ``configure_cuda`` allows for matmuls and convolutions."""


def peak_flops(device_name: str, amp: str) -> float | None:
    """FLOP/s of the device's dense peak at precision ``amp`` (bf16, fp16, off); None when not in the table."""
    for part, peaks in PEAK_TFLOPS:
        if part in device_name and amp in peaks:
            return peaks[amp] * 1e12
    return None


def mfu(flops_per_image: int | None, images_per_s: float | None, device_name: str, amp: str) -> float | None:
    """Model FLOP utilisation: the FLOPs the step does (``flops_per_image``) per second over the device's peak."""
    peak = peak_flops(device_name, amp)
    if peak is None or flops_per_image is None or images_per_s is None:
        return None
    return flops_per_image * images_per_s / peak


def time_calls(fn: Callable[[], object], n: int, device: torch.device) -> list[float]:
    """Seconds taken by each of ``n`` calls; CUDA events on the GPU, so no host sync between calls."""
    if device.type != "cuda":
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for begin, end in events:
        begin.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [begin.elapsed_time(end) / 1000 for begin, end in events]


def first_call_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call, synchronised: the compile warm-up."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timing_stats(times: list[float], batch_size: int, prefix: str) -> dict[str, float]:
    """Median and interquartile range of step times (ms), and images/s at the median."""
    median = statistics.median(times)
    if len(times) >= 2:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    else:
        q1 = q3 = median
    return {f"{prefix}_images_per_s": batch_size / median, f"{prefix}_step_ms_median": 1000 * median,
            f"{prefix}_step_ms_iqr": 1000 * (q3 - q1)}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, int | str]:
    """Peak allocated CUDA memory, or the process's peak resident set size on the CPU."""
    if device.type == "cuda":
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
                "peak_memory_kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_bytes": int(rss if sys.platform == "darwin" else rss * 1024),
            "peak_memory_kind": "cpu_max_rss"}
