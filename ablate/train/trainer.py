"""The training loop: read it top to bottom in ``train``.

Data lives on the device; each epoch runs the shared ``train_step`` with no host
synchronisation, reads its loss and accuracy once at the end, evaluates, calls the
callbacks, then writes ``summary.json``, a checkpoint, the best weights and ``metrics.csv``
(each atomically, in an order that leaves any kill repairable). A killed run resumes from
its last completed epoch with identical results; a damaged file stops it at the start.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError

from ablate import rundir
from ablate.build import load_data, model_for
from ablate.config import Config, TrainConfig
from ablate.data import Splits
from ablate.data.augment import DeviceLoader, channel_stats
from ablate.diagnose.record import SignalRecorder
from ablate.gradflow import GradFlowRecorder
from ablate.models import count_params
from ablate.models.timm import surgery_of
from ablate.plugins import get_plugins
from ablate.registry import AblateError
from ablate.requirements import provenance
from ablate.train.callbacks import Callbacks, TrainState, build_callbacks
from ablate.train.checkpoint import (
    UNREADABLE,
    load_checkpoint,
    load_weights,
    read_state,
    save_checkpoint,
    save_weights,
    weights_epoch,
)
from ablate.train.divergence import DIVERGED, count_diverged, diverged_error, has_diverged
from ablate.train.divergence import NonFiniteLossError as NonFiniteLossError  # what train() raises, as before
from ablate.train.graph import graph_step, per_step_callbacks
from ablate.train.setup import (
    Precision,
    configure_cpu,
    configure_cuda,
    environment,
    make_optimizer,
    maybe_compile,
    pick_channels_last,
    pick_device,
    pick_precision,
    precision_name,
    set_lr,
    uses_cudagraphs,
)
from ablate.train.step import evaluate, train_step


@dataclass
class Progress:
    """Hooks for showing progress; the CLI supplies rich ones, tests none."""

    epoch_start: Callable[[int, int, int], None] = lambda epoch, epochs, steps: None
    step: Callable[[int, torch.Tensor, torch.Tensor, int], None] = lambda step, loss_sum, correct, seen: None
    epoch_end: Callable[[dict[str, float]], None] = lambda row: None


def lr_at(epoch: int, train: TrainConfig) -> float:
    """Learning rate of a 1-based epoch: cosine annealing per epoch to ``min_lr``, or constant."""
    if train["schedule"] != "cosine":
        return train["lr"]
    t = (epoch - 1) / max(1, train["epochs"])
    return train["min_lr"] + (train["lr"] - train["min_lr"]) * (1 + math.cos(math.pi * t)) / 2


@dataclass
class Prepared:
    """Everything a run needs, built from the config before anything is written."""

    device: torch.device
    threads: int | None
    splits: Splits
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    channels_last: bool
    loader: DeviceLoader
    evaluators: dict[str, DeviceLoader]


def prepare(config: Config) -> Prepared:
    """Device, data, model, optimiser and loaders; raises before touching the run directory."""
    t = config["train"]
    device = pick_device(t["device"])
    threads = configure_cpu(t["threads"]) if device.type == "cpu" else None
    if device.type == "cuda":
        configure_cuda(t["deterministic"])
    torch.manual_seed(t["seed"])
    splits = load_data(config, device)
    empty = [name for name, size in splits.sizes.items() if size == 0]
    if empty:
        raise AblateError(f"dataset {splits.name!r}: the {' and '.join(empty)} split is empty ({splits.sizes}); "
                          f"a run needs images in each: check the [data] sizes")
    model, _ = model_for(config, splits.num_classes)
    channels_last = pick_channels_last(t["channels_last"])
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)  # type: ignore[call-overload]
    mean, std = channel_stats(splits.train.x)
    loader = DeviceLoader(splits.train, t["batch_size"], mean, std, augment=t["augment"], shuffle=True,
                          drop_last=len(splits.train) >= t["batch_size"], channels_last=channels_last)
    evaluators = {name: DeviceLoader(getattr(splits, name), t["eval_batch_size"], mean, std,
                                     channels_last=channels_last) for name in ("val", "test")}
    return Prepared(device, threads, splits, model, make_optimizer(model, t, device), pick_precision(t["amp"], device),
                 channels_last, loader, evaluators)


def train(config: Config, run_dir: Path, progress: Progress | None = None,
          extra_callbacks: list[Any] | None = None, allow_device_change: bool = False) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir``; returns its summary.

    Resuming on another device type or precision than the checkpoint's is refused unless
    ``allow_device_change`` (``ablate run --resume``); every epoch's row records both.
    """
    progress = progress or Progress()
    t = config["train"]
    _check_device(run_dir, config, allow_device_change)
    s = prepare(config)
    rundir.ensure_writable(run_dir)
    rows, best = _resume(run_dir, s)
    rundir.write_recipe(run_dir, config)
    if rows:  # the checkpoint is the source of truth: a kill between its rename and the metrics' loses no row
        rundir.write_metrics(run_dir, rows)
    state = TrainState(s.model, s.optimizer, config, run_dir, s.device)
    recorder = _recorder(config, s)
    signal = [SignalRecorder(lambda: init_batch(config, s), precision=s.precision)] if config["gradflow"]["signal"] else []
    callbacks = Callbacks([*([recorder] if recorder else []), *signal, *(extra_callbacks or []),
                           *build_callbacks(config["callbacks"])])
    state.epoch, state.step = len(rows), len(rows) * len(s.loader)
    step_model = maybe_compile(s.model, t["compile"])
    after_backward = (lambda: callbacks("on_after_backward", state)) if callbacks.wants("on_after_backward") else None
    mark_step = uses_cudagraphs(t["compile"], s.device)
    graphed = graph_step(t["graph"], s.model, s.optimizer, s.precision, s.device, t["optimizer"],
                         recorder.record_on_device if recorder else None,
                         per_step_callbacks(callbacks.callbacks, [recorder]), report=_note)
    step: Step = graphed if graphed is not None else (
        lambda x, y: train_step(step_model, s.optimizer, x, y, s.precision, after_backward, mark_step))
    compiling = step_model is not s.model or graphed is not None  # the first step compiles or captures: timed apart
    first = len(rows) + 1
    summary = {**_summary_base(config, s), "graph": "step" if graphed else "none"}
    callbacks("on_run_start", state)

    for epoch in range(first, t["epochs"] + 1):
        state.epoch = epoch
        lr = lr_at(epoch, t)
        set_lr(s.optimizer, lr)
        callbacks("on_epoch_start", state)
        progress.epoch_start(epoch, t["epochs"], len(s.loader))
        trained = _train_epoch(s, state, step, callbacks, progress, timed_apart=compiling and epoch == first)
        if has_diverged(trained["train_loss"], trained["diverged_steps"], trained["steps"]):
            info = {"epoch": epoch, **{k: trained[k] for k in ("train_loss", "steps", "diverged_steps")}}
            rundir.write_summary(run_dir, {**_progress_summary(summary, rows, best, DIVERGED, recorder), DIVERGED: info})
            raise diverged_error(run_dir, epoch, lr, trained["train_loss"], trained["diverged_steps"], trained["steps"])
        val_loss, val_acc = evaluate(s.model, s.evaluators["val"].batches(), s.precision)
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, **trained, "val_loss": val_loss, "val_acc": val_acc,
                               "device": s.device.type, "amp": s.precision.name}
        state.metrics = row
        row.update(callbacks("on_epoch_end", state))
        rows.append(row)
        improved = best is None or val_acc > best["val_acc"]
        if improved:
            best = {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss}
        _commit_epoch(run_dir, s, rows, best, improved, _progress_summary(summary, rows, best, "running", recorder),
                      t["schedule"])
        progress.epoch_end(row)

    summary = _progress_summary(summary, rows, best, "complete", recorder)
    if best is not None:
        load_weights(run_dir / rundir.BEST, s.model)
    summary["test_loss"], summary["test_acc"] = evaluate(s.model, s.evaluators["test"].batches(), s.precision)
    state.metrics = summary
    summary.update(callbacks("on_run_end", state))
    rundir.write_summary(run_dir, summary)
    return summary


Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (x, y) -> (loss sum, correct)


def _train_epoch(s: Prepared, state: TrainState, step: Step, callbacks: Callbacks, progress: Progress,
                 timed_apart: bool) -> dict[str, Any]:
    """One epoch of training steps, no host sync inside; its row's training columns (loss, accuracy, step counts,
    timing).

    ``timed_apart``: the first step compiles or captures, so it is timed on its own (``compile_seconds``) and
    left out of ``images_per_second``."""
    s.model.train()
    start, untimed, timing = time.perf_counter(), 0, {}
    loss_sum = torch.zeros((), device=s.device)
    correct = torch.zeros((), device=s.device, dtype=torch.long)
    diverged = torch.zeros((), device=s.device, dtype=torch.long)
    seen = steps = 0
    for i, (x, y) in enumerate(s.loader.batches(seed=state.config["train"]["seed"] * 1_000_003 + state.epoch)):
        batch_loss, batch_correct = step(x, y)
        loss_sum += batch_loss
        correct += batch_correct
        seen += len(y)
        steps += 1
        count_diverged(diverged, batch_loss, len(y))
        state.step += 1
        state.loss = batch_loss / len(y)
        callbacks("on_step_end", state)
        progress.step(i + 1, loss_sum, correct, seen)
        if timed_apart:
            timed_apart, timing["compile_seconds"] = False, _seconds_since(start, s.device)
            start, untimed = time.perf_counter(), seen
    train_loss, train_acc = loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1)
    bad = int(diverged.item())
    elapsed = time.perf_counter() - start
    return {"train_loss": train_loss, "train_acc": train_acc, "steps": steps, "diverged_steps": bad,
            "epoch_seconds": elapsed + timing.get("compile_seconds", 0.0),
            "images_per_second": (seen - untimed) / elapsed, **timing}


def _commit_epoch(run_dir: Path, s: Prepared, rows: list[dict[str, Any]], best: dict[str, Any] | None, improved: bool,
                  summary: dict[str, Any], schedule: str) -> None:
    """Save the epoch so that every kill is repairable: the summary first (it alone keeps the gradient-flow step
    counts; a rerun of a lagging checkpoint rewrites it), then the checkpoint, the single source of truth, then
    what ``_resume`` derives from it (best weights of its own epoch, metrics.csv)."""
    epoch = rows[-1]["epoch"]
    rundir.write_summary(run_dir, summary)
    scaler = s.precision.scaler.state_dict() if s.precision.scaler is not None else None
    save_checkpoint(run_dir / rundir.CHECKPOINT, s.model, s.optimizer,
                    {"epoch": epoch, "best": best, "rows": rows, "scaler": scaler, "device_type": s.device.type,
                     "amp": s.precision.name, "scheduler": {"schedule": schedule, "lr": rows[-1]["lr"]}})
    if improved:
        save_weights(run_dir / rundir.BEST, s.model, {"epoch": str(epoch)})
    rundir.write_metrics(run_dir, rows)


def _note(message: str) -> None:
    print(f"ablate: {message}", file=sys.stderr)


def _seconds_since(start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _check_device(run_dir: Path, config: Config, allow_change: bool) -> None:
    """Refuse to resume a checkpoint on another device type or precision (results would silently change)."""
    path = run_dir / rundir.CHECKPOINT
    if allow_change or not path.exists():
        return
    try:
        before = read_state(path)
    except Exception:
        return  # unreadable: _resume says so after the data and model are ready
    device = pick_device(config["train"]["device"])
    now = (device.type, precision_name(config["train"]["amp"], device))
    was = (before.get("device_type"), before.get("amp"))
    if was[0] is not None and was != now:
        raise AblateError(f"{run_dir} was trained on {was[0]} with amp {was[1]}; continuing on {now[0]} with amp "
                          f"{now[1]} would change its results: pass --resume to continue anyway (each epoch's row "
                          f"records its device), --device {was[0]} --amp {was[1]}, or --restart")


def _recorder(config: Config, s: Prepared) -> GradFlowRecorder | None:
    """Per-layer gradient statistics into gradflow.csv, unless ``[gradflow] every = 0``."""
    every = config["gradflow"]["every"]
    if every <= 0:
        return None
    return GradFlowRecorder(every, precision=s.precision, init_batch=lambda: init_batch(config, s))


def init_batch(config: Config, s: Prepared) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch that measurements at initialisation use (gradient flow, forward statistics)."""
    return next(iter(s.loader.batches(seed=config["train"]["seed"] * 1_000_003)))


def _resume(run_dir: Path, s: Prepared) -> tuple[list[dict[str, Any]], dict | None]:
    """Epoch rows and best-epoch record of an earlier attempt, with its state restored and the best weights
    checked (a damaged file fails now, not after the last epoch) or, killed before they were written, rewritten."""
    path = run_dir / rundir.CHECKPOINT
    if not path.exists():
        return [], None
    try:
        read_state(path)
    except UNREADABLE as exc:
        raise rundir.damaged(path, exc, rundir.RESTART) from None
    try:
        state = load_checkpoint(path, s.model, s.optimizer, s.device)
    except SafetensorError as exc:
        raise rundir.damaged(path, exc, rundir.RESTART) from None
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise AblateError(f"{run_dir}: its checkpoint does not fit this recipe's model or optimiser "
                          f"({str(exc).splitlines()[0]}); use --restart or another --out") from None
    if s.precision.scaler is not None and state.get("scaler"):
        s.precision.scaler.load_state_dict(state["scaler"])
    best = state.get("best")
    if best is not None:
        _check_best(run_dir / rundir.BEST, s.model, best["epoch"], state["epoch"])
    return state["rows"], best


def _check_best(path: Path, model: torch.nn.Module, epoch: int, checkpoint_epoch: int) -> None:
    """``best.safetensors`` must hold this model's weights of the recorded best epoch. When that epoch is the
    checkpoint's, the weights are the model's now: a run killed before writing them gets them rewritten."""
    try:
        written = weights_epoch(path, model)
    except FileNotFoundError:
        written = 0
    except UNREADABLE as exc:
        raise rundir.damaged(path, exc, rundir.RESTART) from None
    if written in (epoch, None):  # None: written before weights recorded their epoch
        return
    if epoch == checkpoint_epoch:
        save_weights(path, model, {"epoch": str(epoch)})
    elif written == 0:
        raise AblateError(f"{path} is missing (the checkpoint's best epoch is {epoch}); {rundir.RESTART}")
    else:
        raise rundir.damaged(path, f"holds the weights of epoch {written}, not those of the best epoch {epoch}",
                             rundir.RESTART)


def _summary_base(config: Config, s: Prepared) -> dict[str, Any]:
    m, t = config["model"], config["train"]
    return {
        "name": config.get("name"), "arch": m["arch"], "norm": m["norm"], "shortcut": m["shortcut"],
        "lr": t["lr"], "seed": t["seed"], "dataset": s.splits.name, "num_classes": s.splits.num_classes,
        "sizes": s.splits.sizes, "params": count_params(s.model), "surgery": surgery_of(s.model), "epochs": t["epochs"],
        "amp": s.precision.name, "channels_last": s.channels_last, "deterministic": t["deterministic"],
        "recipe_source": config.get("recipe_source"), "components": provenance(config),
        "required_plugins": config["required_plugins"],
        "environment": environment(s.device, get_plugins().versions(), s.threads),
    }


def _total(rows: list[dict[str, Any]], key: str) -> int:
    """A per-epoch count summed over the checkpoint's rows (rows of an older ablate lack it)."""
    return sum(int(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]))


def _progress_summary(base: dict[str, Any], rows: list[dict[str, Any]], best: dict | None, status: str,
                      recorder: GradFlowRecorder | None) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    summary = {
        **base, "status": status, "epochs_completed": len(rows),
        "best_val_epoch": best["epoch"] if best else None,
        "best_val_acc": best["val_acc"] if best else None,
        **{k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")},
        "train_seconds": sum(r["epoch_seconds"] for r in rows),
        "steps": _total(rows, "steps"), "diverged_steps": _total(rows, "diverged_steps"),
    }
    if recorder is not None:
        summary["gradflow"] = recorder.summary()
    return summary
