"""``ablate run``: train every arm of a recipe, with progress, resume and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

from ablate.plugins import check_required
from ablate.recipe import Arm, load_recipe, parse_set
from ablate.registry import AblateError
from ablate.train import resume
from ablate.train.trainer import Progress

console = Console(soft_wrap=True)

OVERRIDES = {"norm": "model.norm", "shortcut": "model.shortcut", "arch": "model.arch", "lr": "train.lr",
             "epochs": "train.epochs", "batch_size": "train.batch_size", "seed": "train.seed",
             "dataset": "data.dataset", "data_dir": "data.dir", "device": "train.device", "amp": "train.amp"}


def collect_overrides(values: dict[str, Any], sets: list[str], callbacks: list[str]) -> dict[str, Any]:
    """CLI flags and ``--set section.key=value`` items as dotted overrides."""
    out = {OVERRIDES[k]: v for k, v in values.items() if v is not None}
    out.update(parse_set(item) for item in sets)
    if callbacks:
        out["callbacks"] = [{"name": name} for name in callbacks]
    return out


def rich_progress(quiet: bool) -> tuple[Progress, RichProgress | None]:
    if quiet:
        return Progress(epoch_end=lambda row: console.print(_epoch_line(row), highlight=False)), None
    bar = RichProgress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]}  {task.fields[ips]} img/s"), TimeRemainingColumn(),
                       console=console, transient=True)
    task = {"id": None, "t0": 0.0, "shown": 0.0}

    def epoch_start(epoch: int, epochs: int, steps: int) -> None:
        import time
        if task["id"] is not None:
            bar.remove_task(task["id"])
        task["id"] = bar.add_task("", total=steps, epoch=f"{epoch}/{epochs}", loss="-", ips="-")
        task["t0"] = task["shown"] = time.perf_counter()

    def step(i: int, loss_sum, seen: int) -> None:
        import time
        now = time.perf_counter()
        fields = {}
        if now - task["shown"] > 1.0:  # read the loss back about once a second, not every step
            fields = {"loss": f"{loss_sum.item() / seen:.3f}", "ips": f"{seen / (now - task['t0']):,.0f}"}
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


def train_arm(arm: Arm, run_dir: Path, mode: str, quiet: bool) -> dict[str, Any] | None:
    from ablate.train.rundir import read_summary
    from ablate.train.trainer import train

    action = resume.plan(run_dir, arm.config, mode)
    m = arm.config["model"]
    title = f"[bold]{arm.name}[/]: {m['arch']} norm={m['norm']} shortcut={m['shortcut']} lr={arm.config['train']['lr']:g}"
    if action == "complete":
        console.print(f"{title} — already complete in {run_dir} (--restart trains it again)")
        return read_summary(run_dir)
    console.print(f"{title} -> {run_dir}" + (" (resuming)" if action == "resume" else ""))
    progress, bar = rich_progress(quiet)
    try:
        if bar is not None:
            bar.start()
        summary = train(arm.config, run_dir, progress)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: finished epochs are saved in {run_dir}; run the same command to resume")
        raise typer.Exit(130)
    finally:
        if bar is not None:
            bar.stop()
    _print_summary(summary)
    return summary


def _print_summary(s: dict[str, Any]) -> None:
    line = (f"done: {s['epochs_completed']} epochs, best val acc {100 * s['best_val_acc']:.2f}% (epoch "
            f"{s['best_val_epoch']}), test loss {s['test_loss']:.3f} acc {100 * s['test_acc']:.2f}%")
    verdict = s.get("gradflow", {}).get("verdict") if isinstance(s.get("gradflow"), dict) else None
    console.print(line + (f", gradient flow: [bold]{verdict}[/]" if verdict else ""), highlight=False)


def run(
    recipe: Path = typer.Argument(..., help="A recipe TOML file, e.g. recipes/vgg38.toml."),
    norm: Optional[str] = typer.Option(None, help="Norm (ablate list norms)."),
    shortcut: Optional[str] = typer.Option(None, help="Shortcut strategy (ablate list shortcuts)."),
    arch: Optional[str] = typer.Option(None, help="Architecture (ablate list architectures)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate."),
    epochs: Optional[int] = typer.Option(None, help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size."),
    seed: Optional[int] = typer.Option(None, help="Random seed (initialisation and data order)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset (ablate list datasets)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the dataset."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    amp: Optional[str] = typer.Option(None, help="auto, off, bf16 or fp16."),
    download: bool = typer.Option(False, "--download", help="Download the dataset if it is missing."),
    out: Optional[Path] = typer.Option(None, help="Run directory (parent directory for several arms)."),
    set_: list[str] = typer.Option([], "--set", help="Override any recipe key: section.key=value (repeatable)."),
    callback: list[str] = typer.Option([], "--callback", help="Add a training callback by name (repeatable)."),
    resume_: bool = typer.Option(False, "--resume", help="Continue a run in --out even if the recipe changed."),
    restart: bool = typer.Option(False, "--restart", help="Discard a run in --out and start over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One line per epoch, no progress bar."),
) -> None:
    """Train a recipe's arms; resumes an unfinished run in the same directory."""
    if resume_ and restart:
        raise AblateError("--resume and --restart exclude each other")
    values = dict(norm=norm, shortcut=shortcut, arch=arch, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                  dataset=dataset, data_dir=data_dir, device=device, amp=amp)
    overrides = collect_overrides(values, set_, callback)
    if download:
        overrides["data.download"] = True
    arms = load_recipe(recipe, overrides)
    for arm in arms:
        check_required(arm.config.get("required_plugins", []), str(recipe))
    mode = "restart" if restart else "resume" if resume_ else "auto"
    for arm, run_dir in zip(arms, run_dirs(arms, out)):
        train_arm(arm, run_dir, mode, quiet)
