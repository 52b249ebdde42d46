"""Device, precision, threads, optimiser and schedule from a resolved config."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from dataclasses import dataclass
from typing import Any, Mapping, cast

import torch
from torch import nn

from ablate import __version__
from ablate.registry import AblateError


@dataclass
class Precision:
    """Autocast dtype (None for full precision) and an optional fp16 grad scaler."""

    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AblateError(f"train.device = {name!r} but no CUDA GPU is visible; use --device cpu or auto")
    return device


def configure_cpu(threads: int) -> int:
    """Use ``threads``, else OMP_NUM_THREADS, else every core we may run on, and flush denormals: a vanishing VGG38's
    activations underflow into denormals, which are very slow on CPUs."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or available
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    retain_freed_memory()
    return threads


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def retain_freed_memory() -> bool:
    """Keep freed activation memory in the process for the next step (glibc only; False elsewhere).

    By default glibc hands big freed blocks back to the OS (``munmap``, heap trimming), so every training step
    page-faults its activations in again: on a 2-core CPU that cost VGG38 5-8 % of its step time
    (benchmarks/README.md). Blocks up to 32 MiB now come from the heap and its top is trimmed only past 1 GiB."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def configure_cuda(deterministic: bool = False) -> None:
    """TF32 matmuls, and either cuDNN's autotuner (fast; a resumed run is then equal in distribution, not
    bit-identical) or deterministic algorithms (ops without one warn instead of failing)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable results
        torch.use_deterministic_algorithms(True, warn_only=True)


def precision_name(amp: str, device: torch.device) -> str:
    """What ``amp`` resolves to on ``device``: off, bf16 or fp16 (``auto``: bf16 on CUDA if supported, else off)."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    return amp


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on x86 (without them oneDNN emulates bf16, slower than fp32); oneDNN's check elsewhere."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_precision(amp: str, device: torch.device) -> Precision:
    amp = precision_name(amp, device)
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise AblateError(f"train.amp = 'bf16' needs a CPU with native bf16 (AVX512-BF16 or AMX); this one "
                          f"({platform.processor() or platform.machine()}) would emulate it, slower than fp32: "
                          f"use --amp off")
    if amp == "off":
        return Precision(None, None)
    if amp == "fp16":
        return Precision(torch.float16, torch.amp.GradScaler(device.type))
    return Precision(torch.bfloat16, None)


def make_optimizer(model: nn.Module, train: Mapping[str, Any], device: torch.device) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), train["lr"], train["weight_decay"]
    fused: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fused)
    if train["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **fused)
    return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9, nesterov=True, **fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; a device tensor (a captured step's, ``ablate.train.graph``) is filled in place."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def maybe_compile(model: nn.Module, compile_option: Any) -> nn.Module:
    if compile_option in (False, None):
        return model
    mode = None if compile_option in (True, "default") else compile_option
    return cast(nn.Module, torch.compile(model, mode=mode))


def uses_cudagraphs(compile_option: Any, device: torch.device) -> bool:
    """Whether the compiled model replays CUDA graphs (``reduce-overhead``, ``max-autotune``); each training step
    then starts with ``torch.compiler.cudagraph_mark_step_begin()``, so that evaluation and gradient statistics
    between steps never make the graphs guess wrongly where a step begins."""
    return device.type == "cuda" and compile_option in ("reduce-overhead", "max-autotune")


def pick_channels_last(option: Any) -> bool:
    """``auto`` means channels_last: faster on CUDA (tensor cores) and on CPU (oneDNN) alike."""
    return True if option == "auto" else bool(option)


def environment(device: torch.device, plugins: dict[str, str], threads: int | None = None) -> dict[str, Any]:
    """What ran it: versions, device, threads and plugins, for run records."""
    env: dict[str, Any] = {
        "ablate": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "threads": threads or torch.get_num_threads(),
        "plugins": plugins,
    }
    return env
