"""``ablate run``: train every arm of a recipe, with progress, resume and a summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from ablate import rundir
from ablate.cli import options
from ablate.files import disk_full
from ablate.recipe import Arm, load_recipe
from ablate.train.divergence import EXIT_DIVERGED, NonFiniteLossError

if TYPE_CHECKING:
    from ablate.train.trainer import Progress
from ablate.registry import AblateError

console = Console(soft_wrap=True)


def rich_progress(quiet: bool) -> tuple[Progress, RichProgress | None]:
    """A progress bar per epoch (loss, accuracy, img/s, ETA) and one line per epoch; lines only when quiet."""
    from ablate.train.trainer import Progress

    if quiet:
        return Progress(epoch_end=lambda row: console.print(_epoch_line(row), highlight=False)), None
    bar = RichProgress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  {task.fields[ips]} img/s"),
                       TimeRemainingColumn(), console=console, transient=True)
    task: dict[str, Any] = {"id": None, "t0": 0.0, "shown": 0.0}

    def epoch_start(epoch: int, epochs: int, steps: int) -> None:
        if task["id"] is not None:
            bar.remove_task(task["id"])
        task["id"] = bar.add_task("", total=steps, epoch=f"{epoch}/{epochs}", loss="-", acc="-", ips="-")
        task["t0"] = task["shown"] = time.perf_counter()

    def step(i: int, loss_sum, correct, seen: int) -> None:
        now = time.perf_counter()
        fields: dict[str, Any] = {}
        if now - task["shown"] > 1.0:  # read the sums back about once a second, never every step
            fields = {"loss": f"{loss_sum.item() / seen:.3f}", "acc": f"{100 * correct.item() / seen:.1f}%",
                      "ips": f"{seen / (now - task['t0']):,.0f}"}
            task["shown"] = now
        bar.update(task["id"], completed=i, **fields)

    def epoch_end(row: dict[str, float]) -> None:
        console.print(_epoch_line(row), highlight=False)

    return Progress(epoch_start, step, epoch_end), bar


def _epoch_line(row: dict[str, float]) -> str:
    return (f"epoch {int(row['epoch']):>3}  lr {row['lr']:.2e}  train loss {row['train_loss']:.3f} "
            f"acc {100 * row['train_acc']:5.1f}%  val loss {row['val_loss']:.3f} acc {100 * row['val_acc']:5.1f}%  "
            f"{row['images_per_second']:,.0f} img/s")


def run_dirs(arms: list[Arm], out: Optional[Path]) -> list[Path]:
    """One arm: ``--out`` itself (default runs/<slug>-<hash>); several: subfolders of ``--out``."""
    if len(arms) == 1:
        return [out or Path("runs") / arms[0].dirname()]
    parent = out or Path("runs") / (arms[0].config.get("name") or "arms")
    return [parent / arm.dirname() for arm in arms]


def write_figures(run_dir: Path, label: str | None = None) -> None:
    """The run's figures into RUN_DIR/figures/ (training curves, gradient flow); a failure only warns."""
    try:
        from ablate.report.plots import write_run_figures

        write_run_figures(run_dir, label=label)
    except Exception as exc:  # figures are a convenience: never fail a finished run over them
        console.print(f"[yellow]warning:[/] could not draw the figures of {escape(str(run_dir))}: {escape(str(exc))}",
                      highlight=False)


def train_arm(arm: Arm, run_dir: Path, mode: str, quiet: bool, tensorboard: bool = False) -> dict[str, Any] | None:
    """Train one arm in ``run_dir``, holding the directory (``rundir.locked``) from the resume decision to the end."""
    with rundir.locked(run_dir):
        return _train_arm(arm, run_dir, mode, quiet, tensorboard)


def _train_arm(arm: Arm, run_dir: Path, mode: str, quiet: bool, tensorboard: bool) -> dict[str, Any] | None:
    import torch

    from ablate.train import resume
    from ablate.train.divergence import DIVERGED, diverged_again
    from ablate.train.trainer import train

    action = resume.decide(run_dir, arm.config, mode)
    m = arm.config["model"]
    title = escape(f"{m['arch']} norm={m['norm']} shortcut={m['shortcut']} lr={arm.config['train']['lr']:g}")
    title, where = f"[bold]{escape(arm.name)}[/]: {title}", escape(str(run_dir))
    if action == "complete":
        done = rundir.read_summary(run_dir)
        if done.get("status") == DIVERGED:
            raise diverged_again(run_dir, done)
        console.print(f"{title} — already complete in {where} (--restart trains it again)")
        return done
    console.print(f"{title} -> {where}" + (" (resuming)" if action == "resume" else ""))
    progress, bar = rich_progress(quiet)
    try:
        if bar is not None:
            bar.start()
        extra = []
        if tensorboard:
            from ablate.gradflow.tensorboard import TensorBoardLogger
            extra.append(TensorBoardLogger(run_dir / rundir.TENSORBOARD))
        summary = train(arm.config, run_dir, progress, extra_callbacks=extra, allow_device_change=mode == "resume")
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: finished epochs are saved in {where}; run the same command to resume")
        raise typer.Exit(130)
    except torch.OutOfMemoryError:
        raise AblateError(
            f"out of GPU memory at batch size {arm.config['train']['batch_size']}; the finished epochs in {run_dir} are "
            f"kept: lower --batch-size (and add --resume to continue that run) or free the GPU"
        ) from None
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "DefaultCPUAllocator" not in str(exc):
            raise
        raise AblateError(
            f"out of memory (CPU) at batch size {arm.config['train']['batch_size']}; the finished epochs in {run_dir} "
            f"are kept: lower --batch-size or the [data] sizes (add --resume to continue that run) or free memory"
        ) from None
    except Exception as exc:
        if not disk_full(exc):
            raise
        raise AblateError(f"disk full writing {run_dir} ({str(exc).splitlines()[0]}); the last finished epoch's "
                          f"checkpoint is kept: free space and run the same command to resume") from None
    finally:
        if bar is not None:
            bar.stop()
    _print_summary(summary)
    from ablate.report import model_label
    write_figures(run_dir, model_label(m["arch"], m["norm"], m["shortcut"]))
    return summary


def _print_summary(s: dict[str, Any]) -> None:
    line = (f"done: {s['epochs_completed']} epochs, best val acc {100 * s['best_val_acc']:.2f}% (epoch "
            f"{s['best_val_epoch']}), test loss {s['test_loss']:.3f} acc {100 * s['test_acc']:.2f}%")
    verdict = s.get("gradflow", {}).get("verdict") if isinstance(s.get("gradflow"), dict) else None
    console.print(line + (f", gradient flow: [bold]{escape(str(verdict))}[/]" if verdict else ""), highlight=False)


def run(
    recipe: Path = typer.Argument(..., help="A recipe TOML file, or a bundled recipe's name (ablate recipes), e.g. vgg38."),
    norm: options.Norm = None, shortcut: options.Shortcut = None, arch: options.Arch = None, lr: options.Lr = None,
    epochs: options.Epochs = None, batch_size: options.BatchSize = None, seed: options.Seed = None,
    dataset: options.Dataset = None, data_dir: options.DataDir = None, device: options.Device = None,
    amp: options.Amp = None, download: options.Download = False, set_: options.Sets = [],
    callback: options.CallbackNames = [], gradflow: options.Gradflow = None,
    out: Optional[Path] = typer.Option(None, help="Run directory (parent directory for several arms)."),
    resume_: bool = typer.Option(False, "--resume", help="Continue a run in --out even if the recipe changed."),
    restart: bool = typer.Option(False, "--restart", help="Discard a run in --out and start over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One line per epoch, no progress bar."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log scalars and gradient histograms "
                                                                  "for TensorBoard into RUN_DIR/tensorboard/."),
) -> None:
    """Train a recipe's arms; resumes an unfinished run in the same directory."""
    if resume_ and restart:
        raise AblateError("--resume and --restart exclude each other")
    overrides = options.collect_overrides(locals())
    if tensorboard:
        from ablate.gradflow.tensorboard import require_tensorboard
        require_tensorboard()
    arms = load_recipe(recipe, overrides)
    mode = "restart" if restart else "resume" if resume_ else "auto"
    dirs = run_dirs(arms, out)
    failed: list[str] = []
    diverged: list[str] = []
    for arm, run_dir in zip(arms, dirs):
        try:
            train_arm(arm, run_dir, mode, quiet, tensorboard)
        except AblateError as exc:
            if len(arms) == 1:
                raise
            console.print(f"[red]error:[/] arm '{escape(arm.name)}': {escape(str(exc))}", highlight=False)
            (diverged if getattr(exc, "exit_code", 2) == EXIT_DIVERGED else failed).append(arm.name)
    done = [d for d in dirs if rundir.is_run(d)]
    if len(arms) > 1 and done:  # the arms side by side: table, report.md and overlay figures in the parent folder
        from ablate.report import write_report
        console.print()
        write_report(done, out=dirs[0].parent)
    ended = "; ".join(f"{len(names)} of {len(arms)} arms {word}: {', '.join(names)}"
                      for word, names in (("failed", failed), ("diverged", diverged)) if names)
    if ended:  # exit status 2 when an arm failed, else 3 (EXIT_DIVERGED), as for one arm
        raise AblateError(ended) if failed else NonFiniteLossError(ended)
