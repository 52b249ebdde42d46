"""The run directory: what a run leaves behind, and how to read it back.

    recipe.toml           the resolved recipe (``ablate run DIR/recipe.toml`` repeats it)
    metrics.csv           one row per epoch
    checkpoint.safetensors  model, optimiser, scheduler, RNG state and epoch (last epoch)
    best.safetensors      weights of the best-validation epoch
    summary.json          params, progress, final and test metrics, environment, plugins
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import Any

import torch

from ablate import __version__
from ablate.registry import AblateError
from ablate.train.checkpoint import atomic_write_text

RECIPE, METRICS, CHECKPOINT, BEST, SUMMARY = (
    "recipe.toml", "metrics.csv", "checkpoint.safetensors", "best.safetensors", "summary.json")
METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_second"]


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` (and parents) or fail with one clear line."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise AblateError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}; choose another --out") from None


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    columns = METRIC_COLUMNS + sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / METRICS, buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    with path.open() as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(run_dir / SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AblateError(f"{run_dir}: not a run directory (no {SUMMARY})") from None


def environment(device: torch.device, plugins: dict[str, str], threads: int | None = None) -> dict[str, Any]:
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
