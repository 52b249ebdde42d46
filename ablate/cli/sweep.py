"""``ablate sweep``: train every run of a recipe's arms x ``[sweep]`` grid x seeds, resumably."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ablate import rundir
from ablate.cli import options
from ablate.registry import AblateError
from ablate.sweep.grid import SweepRun, load_sweep
from ablate.sweep.runner import MANIFEST, Entry, execute, locked, plan, write_manifest
from ablate.sweep.view import SweepView, columns

console = Console(soft_wrap=True, highlight=False)
PLAN_WORDS = {"start": "new", "resume": "resume", "skip": "complete", "refuse": "refused"}


def sweep(
    recipe: Path = typer.Argument(..., help="A recipe TOML file with arms and/or a sweep grid, or a bundled recipe's name, e.g. table1."),
    norm: options.Norm = None, shortcut: options.Shortcut = None, arch: options.Arch = None, lr: options.Lr = None,
    epochs: options.Epochs = None, batch_size: options.BatchSize = None,
    seed: Optional[int] = typer.Option(None, help="One seed instead of the recipe's seeds."),
    dataset: options.Dataset = None, data_dir: options.DataDir = None, device: options.Device = None,
    amp: options.Amp = None, download: options.Download = False, set_: options.Sets = [],
    callback: options.CallbackNames = [], gradflow: options.Gradflow = None,
    out: Optional[Path] = typer.Option(None, help="Sweep directory (default runs/<recipe name>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and what a sweep would do; train nothing."),
    jobs: Optional[int] = typer.Option(None, help="Runs at a time (default: GPUs x --per-gpu, else 1; ray: per node)."),
    per_gpu: int = typer.Option(1, "--per-gpu", help="Runs sharing one GPU."),
    executor: str = typer.Option("local", help="local (subprocesses) or ray."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local one)."),
) -> None:
    """Train a sweep; finished runs are skipped and unfinished ones resumed."""
    if executor not in ("local", "ray"):
        raise AblateError(f"--executor {executor!r}: choose local or ray")
    if (jobs is not None and jobs < 1) or per_gpu < 1:
        raise AblateError("--jobs and --per-gpu must be at least 1")
    overrides = options.collect_overrides(locals())
    sweep_dir, runs = load_sweep(recipe, overrides, out)
    entries = plan(runs)
    _print_plan(recipe, sweep_dir, entries)
    if dry_run:
        return
    with locked(sweep_dir):
        save = partial(write_manifest, sweep_dir, str(recipe), executor, entries)
        save()
        if not any(e.state == "pending" for e in entries):
            return _print_result(sweep_dir, entries, table=False)
        pool = _executor(executor, address, jobs, per_gpu, runs)
        with SweepView(console, entries, live=console.is_terminal) as view:
            try:
                execute(entries, pool, save, view.tick)
            except KeyboardInterrupt:
                console.print(f"[yellow]interrupted[/]: run the same command to resume ({sweep_dir / MANIFEST})")
                raise typer.Exit(130)
    _print_result(sweep_dir, entries, table=not console.is_terminal)


def _executor(kind: str, address: str | None, jobs: int | None, per_gpu: int, runs: list[SweepRun]) -> Any:
    use_gpu = any(run.config["train"]["device"] != "cpu" for run in runs)
    if kind == "ray":
        from ablate.sweep.executors import RayExecutor

        return RayExecutor(address, jobs or 1, per_gpu, use_gpu)
    import torch

    from ablate.sweep.executors import LocalExecutor

    gpus = torch.cuda.device_count() if use_gpu else 0
    return LocalExecutor(jobs or max(1, gpus * per_gpu), per_gpu, gpus)


def _rows(entries: list[Entry], last: str) -> list[list[str]]:
    rows = [["#", "name", "arch", "norm", "shortcut", "lr", "seed", last, "dir"]]
    for i, e in enumerate(entries, 1):
        r = e.record()
        state = PLAN_WORDS[e.action] if last == "plan" else e.state
        rows.append([str(i), r["name"], r["arch"], r["norm"], r["shortcut"], f"{r['lr']:g}", str(r["seed"]),
                     state, r["dir"]])
    return rows


def _print_plan(recipe: Path, sweep_dir: Path, entries: list[Entry]) -> None:
    t, d = entries[0].run.config["train"], entries[0].run.config["data"]
    counts = {word: sum(PLAN_WORDS[e.action] == word for e in entries) for word in PLAN_WORDS.values()}
    summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    console.print(f"[bold]{recipe}[/]: {len(entries)} runs in {sweep_dir} ({summary}); dataset {d['dataset']}, "
                  f"{t['epochs']} epochs, batch {t['batch_size']}")
    for line in columns(_rows(entries, "plan")):
        console.print(line, markup=False)


def _print_result(sweep_dir: Path, entries: list[Entry], table: bool) -> None:
    if table:
        for line in columns(_rows(entries, "state")):
            console.print(line, markup=False)
    failed = [e for e in entries if e.state == "failed"]
    done = sum(e.state == "complete" for e in entries)
    skipped = sum(e.action == "skip" for e in entries)
    console.print(f"{len(entries)} runs in {sweep_dir}: {done} complete ({skipped} already), {len(failed)} failed; "
                  f"ablate report {sweep_dir}")
    if failed:
        console.print(f"[red]failed runs[/] ({len(failed)}):")
        for e in failed:
            console.print(f"  {escape(e.run.name)} (seed {e.run.seed}): {escape(e.error or '')}  "
                          f"[dim]log: {escape(str(e.run.path / rundir.LOG))}[/]")
        raise typer.Exit(1)
