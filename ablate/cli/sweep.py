"""``ablate sweep``: train every run of a recipe's arms x ``[sweep]`` grid x seeds, resumably."""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ablate import rundir
from ablate.cli import options
from ablate.recipe import read_toml
from ablate.registry import AblateError
from ablate.sweep.grid import SweepRun, load_sweep
from ablate.sweep.runner import MANIFEST, Entry, execute, is_running, keep_jobs, locked, plan, read_manifest, write_manifest
from ablate.sweep.view import SweepView, columns
from ablate.train.divergence import DIVERGED, EXIT_DIVERGED

if TYPE_CHECKING:
    from ablate.sweep.slurm import SlurmOptions

console = Console(soft_wrap=True, highlight=False)
PLAN_WORDS = {"start": "new", "resume": "resume", "skip": "complete", "refuse": "refused"}
EXECUTORS = ("local", "ray", "slurm")
SLURM = "Slurm (--executor slurm; these override the recipe's executor table)"


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
    jobs: Optional[int] = typer.Option(None, help="Runs at a time (default: GPUs x --per-gpu, else 1; ray: per node; "
                                                   "slurm: jobs running at once, default all)."),
    per_gpu: int = typer.Option(1, "--per-gpu", help="Runs sharing one GPU."),
    executor: str = typer.Option("local", help="local (subprocesses), ray, or slurm (a job per run, through submitit)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local one)."),
    partition: Optional[str] = typer.Option(None, help="Slurm partition.", rich_help_panel=SLURM),
    gpus_per_job: Optional[int] = typer.Option(None, "--gpus-per-job", help="GPUs of each job.", rich_help_panel=SLURM),
    cpus_per_job: Optional[int] = typer.Option(None, "--cpus-per-job", help="CPU cores of each job.", rich_help_panel=SLURM),
    mem: Optional[str] = typer.Option(None, help="Memory of each job, like 32G.", rich_help_panel=SLURM),
    time_limit: Optional[str] = typer.Option(
        None, "--time", help="Time limit of each job: minutes or [D-]HH:MM:SS (default 240); a job that reaches it "
                             "is requeued and resumes its run.", rich_help_panel=SLURM),
    sbatch: list[str] = typer.Option([], "--sbatch", help="An extra sbatch option, like --sbatch=--account=lab (repeatable).",
                                     rich_help_panel=SLURM),
    status: bool = typer.Option(False, "--status", help="Show the sweep's runs, epochs and jobs; train and submit nothing."),
) -> None:
    """Train a sweep; finished runs are skipped and unfinished ones resumed."""
    if executor not in EXECUTORS:
        raise AblateError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if (jobs is not None and jobs < 1) or per_gpu < 1:
        raise AblateError("--jobs and --per-gpu must be at least 1")
    if status and dry_run:
        raise AblateError("--status and --dry-run exclude each other: --status shows a sweep, --dry-run plans one")
    slurm_cli = {"partition": partition, "gpus_per_job": gpus_per_job, "cpus_per_job": cpus_per_job, "mem": mem,
                 "time": _time_value(time_limit), "sbatch": sbatch}
    given = [f"--{k.replace('_', '-')}" for k, v in slurm_cli.items() if v not in (None, [])]
    if given and executor != "slurm":
        raise AblateError(f"{', '.join(given)} apply to --executor slurm only (this sweep uses --executor {executor})")
    if executor == "slurm" and (per_gpu != 1 or address):
        raise AblateError("--per-gpu and --address do not apply to --executor slurm; give each job GPUs with --gpus-per-job")
    overrides = options.collect_overrides(locals())
    sweep_dir, runs = load_sweep(recipe, overrides, out)
    entries = plan(runs)
    if status:
        return _print_status(recipe, sweep_dir, entries)
    slurm = _slurm_options(recipe, executor, {**slurm_cli, "jobs": jobs})
    _print_plan(recipe, sweep_dir, entries)
    if dry_run:
        return
    with locked(sweep_dir):
        keep_jobs(entries, sweep_dir)
        save = partial(write_manifest, sweep_dir, str(recipe), executor, entries)
        save()
        if not any(e.state == "pending" for e in entries):
            return _print_result(sweep_dir, entries, table=False)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # a killed sweep stops its runs (and jobs) as Ctrl-C
        signal.signal(signal.SIGHUP, signal.default_int_handler)   # does, and sweep.json marks them interrupted
        pool = _executor(executor, address, jobs, per_gpu, runs, sweep_dir, slurm)
        with SweepView(console, entries, live=console.is_terminal) as view:
            try:
                execute(entries, pool, save, view.tick)
            except KeyboardInterrupt:
                console.print(f"[yellow]interrupted[/]: run the same command to resume ({escape(str(sweep_dir / MANIFEST))})")
                raise typer.Exit(130)
    _print_result(sweep_dir, entries, table=not console.is_terminal)


def _time_value(text: str | None) -> int | str | None:
    """``--time``: minutes as an int, anything else as the string to check."""
    return int(text) if text is not None and text.isdigit() else text


def _slurm_options(recipe: Path, executor: str, cli: dict[str, Any]) -> SlurmOptions | None:
    """The Slurm options of ``--executor slurm`` (None for the other executors, which do not use ``[executor]``)."""
    table = read_toml(recipe).get("executor")
    if executor != "slurm":
        if table is not None:
            console.print(f"[dim]note: the [executor] table of {escape(str(recipe))} is for --executor slurm; "
                          f"--executor {executor} does not use it[/]")
        return None
    from ablate.sweep.slurm import SLURM_ONLY, slurm_options

    found = slurm_options(table if table is not None else {}, str(recipe), cli)
    unused = [key for key in SLURM_ONLY if getattr(found, key)]
    if found.cluster == "local" and unused:
        console.print(f"[dim]note: cluster = \"local\" runs the jobs here; {', '.join(unused)} apply on Slurm only[/]")
    return found


def _executor(kind: str, address: str | None, jobs: int | None, per_gpu: int, runs: list[SweepRun], sweep_dir: Path,
              slurm: SlurmOptions | None) -> Any:
    use_gpu = any(run.config["train"]["device"] != "cpu" for run in runs)
    if slurm is not None:
        from ablate.sweep.slurm import SlurmExecutor

        return SlurmExecutor(sweep_dir, slurm)
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
        state = _plan_word(e) if last == "plan" else e.state
        rows.append([str(i), r["name"], r["arch"], r["norm"], r["shortcut"], f"{r['lr']:g}", str(r["seed"]),
                     state, r["dir"]])
    return rows


def _plan_word(entry: Entry) -> str:
    """What the plan does with a run; a finished run that diverged is ``diverged``, not ``complete``."""
    return DIVERGED if entry.action == "skip" and entry.state == DIVERGED else PLAN_WORDS[entry.action]


def _print_plan(recipe: Path, sweep_dir: Path, entries: list[Entry]) -> None:
    t, d = entries[0].run.config["train"], entries[0].run.config["data"]
    counts = {word: sum(_plan_word(e) == word for e in entries) for word in [*PLAN_WORDS.values(), DIVERGED]}
    summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    console.print(f"[bold]{escape(str(recipe))}[/]: {len(entries)} runs in {escape(str(sweep_dir))} ({summary}); "
                  f"dataset {escape(str(d['dataset']))}, {t['epochs']} epochs, batch {t['batch_size']}")
    for line in columns(_rows(entries, "plan")):
        console.print(line, markup=False)
    for e in entries:
        if e.run.error is not None:
            console.print(f"  [red]cannot build[/] {escape(e.run.name)}: {escape(e.run.error)}")


def _print_status(recipe: Path, sweep_dir: Path, entries: list[Entry]) -> None:
    """Each run's state (its directory, else what sweep.json recorded), epochs done, latest val acc and job."""
    recorded = read_manifest(sweep_dir)
    rows = [["#", "name", "seed", "state", "epoch", "val acc", "job", "job state", "dir"]]
    counts: dict[str, int] = {}
    for i, e in enumerate(entries, 1):
        old = recorded.get(e.run.path.name, {})
        state = "complete" if e.action == "skip" else "refused" if e.action == "refuse" else old.get("state") or "not started"
        counts[state] = counts.get(state, 0) + 1
        metrics = rundir.read_metrics(e.run.path)
        acc = f"{100 * metrics[-1]['val_acc']:.2f}%" if metrics else "-"
        rows.append([str(i), e.run.name, str(e.run.seed), state, f"{len(metrics)}/{e.run.config['train']['epochs']}", acc,
                     old.get("job_id") or "-", old.get("job_state") or "-", e.run.path.name])
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    running = "a sweep is running there" if is_running(sweep_dir) else "no sweep is running there"
    console.print(f"[bold]{escape(str(recipe))}[/]: {len(entries)} runs in {escape(str(sweep_dir))} ({summary}); {running}")
    for line in columns(rows):
        console.print(line, markup=False)


def _print_result(sweep_dir: Path, entries: list[Entry], table: bool) -> None:
    """The outcome; exit status 1 when a run failed (or could not be built), else 3 when one diverged."""
    if table:
        for line in columns(_rows(entries, "state")):
            console.print(line, markup=False)
    failed = [e for e in entries if e.state == "failed"]
    diverged = [e for e in entries if e.state == DIVERGED]
    done = sum(e.state == "complete" for e in entries)
    skipped = sum(e.action == "skip" and e.state == "complete" for e in entries)
    console.print(f"{len(entries)} runs in {escape(str(sweep_dir))}: {done} complete ({skipped} already), "
                  f"{len(diverged)} diverged, {len(failed)} failed; ablate report {escape(str(sweep_dir))}")
    for word, listed in (("diverged", diverged), ("failed", failed)):
        if listed:
            console.print(f"[red]{word} runs[/] ({len(listed)}):")
        for e in listed:
            log = f"  [dim]log: {escape(str(e.run.path / rundir.LOG))}[/]" if e.run.error is None else ""
            console.print(f"  {escape(e.run.name)} (seed {e.run.seed}): {escape(e.error or '')}{log}")
    if failed or diverged:
        raise typer.Exit(1 if failed else EXIT_DIVERGED)
