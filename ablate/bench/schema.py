"""The fields of one bench result row (one JSON line of ``--json``)."""

from __future__ import annotations

from typing import Any

from ablate.bench.arms import BenchArm

Number = (int, float)
NoneType = type(None)

ARM_FIELDS: dict[str, tuple[type, ...]] = {
    "arch": (str,), "norm": (str,), "shortcut": (str,), "batch_size": (int,), "device": (str,),
    "amp": (str,), "channels_last": (bool,), "compile": (str, NoneType), "graph": (str,), "warmup": (int,), "steps": (int,),
}
MEASURED_FIELDS: dict[str, tuple[type, ...]] = {
    "params": (int,),
    "flops_forward": (int,),           # per image, torch.utils.flop_counter
    "flops_train_step": (int,),        # per image, forward + backward
    "train_images_per_s": Number,      # batch / median step time
    "train_step_ms_median": Number,
    "train_step_ms_iqr": Number,
    "mfu": Number,                     # model FLOP utilisation of the train step; None without a known peak
    "infer_images_per_s": Number,      # eval mode, no_grad
    "infer_step_ms_median": Number,
    "infer_step_ms_iqr": Number,
    "compile_seconds": Number,         # first train and eval calls (--compile), first train call (--graph step)
    "peak_memory_bytes": (int,),
    "peak_memory_kind": (str,),        # cuda_max_allocated or cpu_max_rss
    "grad_first": Number,              # mean |g| of the first >=2-D weight at initialisation
    "grad_last": Number,               # ... of the last one
    "grad_ratio": Number,              # first / last
    "gradflow_verdict": (str,),        # vanishing | exploding | healthy
    "signal_died_at": (str, NoneType),  # where the signal variance left [1e-6, 1e6] x the input's ("block 4"), or None
    "effective_rank": Number,          # of the penultimate features of the batch
    "trainability": (str,),            # trainable | at risk | untrainable (ablate.diagnose.verdict, no Jacobian)
}
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "worker_pid": (int,), "worker_seconds": Number, "error": (str, NoneType), "environment": (dict,),
}
FIELDS = {**ARM_FIELDS, **MEASURED_FIELDS, **RUN_FIELDS}


def empty_row(arm: BenchArm) -> dict[str, Any]:
    """A row with the arm's settings and every measurement still None."""
    row: dict[str, Any] = {name: getattr(arm, name) for name in ARM_FIELDS}
    row.update({name: None for name in (*MEASURED_FIELDS, *RUN_FIELDS)})
    row["environment"] = {}
    return row


def row_problems(row: dict[str, Any]) -> list[str]:
    """What is wrong with a row: missing fields or wrong types (measurements may be None on error)."""
    problems = [f"missing {name}" for name in FIELDS if name not in row]
    for name, types in FIELDS.items():
        value = row.get(name)
        nullable = name in MEASURED_FIELDS or name in ("worker_pid", "worker_seconds")
        if name in row and not (isinstance(value, types) or (value is None and nullable)):
            problems.append(f"{name}={value!r} is not {'/'.join(t.__name__ for t in types)}")
    return problems
