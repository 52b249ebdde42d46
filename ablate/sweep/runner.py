"""Plan a sweep's runs (skip, resume or start), execute them, and keep ``sweep.json`` current."""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ablate import rundir
from ablate.files import atomic_write_text
from ablate.registry import AblateError
from ablate.sweep.grid import SweepRun
from ablate.train import resume
from ablate.train.divergence import DIVERGED

MANIFEST = "sweep.json"
ACTIONS = {"start": "start", "resume": "resume", "complete": "skip"}


@dataclass
class Entry:
    """A run's place in this sweep: what the plan said (start, resume, skip, refuse) and where it is now
    (pending, running, complete, diverged, failed, interrupted)."""

    run: SweepRun
    action: str
    state: str
    error: str | None = None
    started: float | None = None
    seconds: float | None = None
    job_id: str | None = None
    job_state: str | None = None

    def record(self) -> dict[str, Any]:
        m, t = self.run.config["model"], self.run.config["train"]
        return {"name": self.run.name, "dir": self.run.path.name, "arch": m["arch"], "norm": m["norm"],
                "shortcut": m["shortcut"], "lr": t["lr"], "seed": t["seed"], "action": self.action,
                "state": self.state, "error": self.error, "seconds": self.seconds, "job_id": self.job_id,
                "job_state": self.job_state}


def plan(runs: list[SweepRun]) -> list[Entry]:
    """One entry per run; a directory holding a different recipe is refused, never reused, and a cell
    that cannot be built (``SweepRun.error``) is failed with its reason."""
    entries = []
    for run in runs:
        if run.error is not None:
            entries.append(Entry(run, "refuse", "failed", run.error))
            continue
        try:
            action = ACTIONS[resume.decide(run.path, run.config)]
        except AblateError as exc:
            entries.append(Entry(run, "refuse", "failed", str(exc)))
            continue
        state = _status(run.path) if action == "skip" else "pending"
        entries.append(Entry(run, action, state, "diverged earlier (see its summary.json)" if state == DIVERGED else None))
    return entries


def read_manifest(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The runs recorded in a sweep directory's ``sweep.json``, by run directory name ({} if none)."""
    try:
        data = json.loads((Path(sweep_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    runs = data.get("runs") if isinstance(data, dict) else None
    return {r["dir"]: r for r in runs if isinstance(r, dict) and "dir" in r} if isinstance(runs, list) else {}


def keep_jobs(entries: list[Entry], sweep_dir: Path) -> None:
    """Entries that will not be submitted keep the job id and state that ``sweep.json`` recorded for them."""
    recorded = read_manifest(sweep_dir)
    for entry in entries:
        old = recorded.get(entry.run.path.name, {})
        if entry.state != "pending" and old.get("job_id"):
            entry.job_id, entry.job_state = old["job_id"], old.get("job_state")


def write_manifest(sweep_dir: Path, recipe: str, executor: str, entries: list[Entry]) -> None:
    data = {"recipe": recipe, "executor": executor, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "runs": [e.record() for e in entries]}
    atomic_write_text(sweep_dir / MANIFEST, json.dumps(data, indent=2) + "\n")


LOCK = ".sweep.lock"


@contextmanager
def locked(sweep_dir: Path) -> Iterator[None]:
    """Hold the sweep directory for this process; a second sweep there fails at once."""
    rundir.ensure_writable(sweep_dir)
    with open(sweep_dir / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AblateError(f"another sweep is running in {sweep_dir}; wait for it or choose another --out") from None
        yield


def is_running(sweep_dir: Path) -> bool:
    """Whether a sweep holds ``sweep_dir`` now (without taking it)."""
    try:
        with open(Path(sweep_dir) / LOCK) as fh:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False


def execute(entries: list[Entry], executor: Any, save: Callable[[], None], tick: Callable[[], None],
            interval: float = 0.5) -> None:
    """Train the pending entries with ``executor``; ``save`` after each change, ``tick`` every ``interval``."""
    queue = [e for e in entries if e.state == "pending"]
    for entry in queue:
        rundir.ensure_writable(entry.run.path)
        rundir.write_recipe(entry.run.path, entry.run.config)
    by_path = {e.run.path: e for e in queue}
    try:
        while queue or executor.busy():
            while queue and executor.free():
                entry = queue.pop(0)
                executor.submit(entry.run)
                entry.state, entry.started = "running", time.time()
                save()
            for run, error in executor.poll():
                _finish(by_path[run.path], error)
                save()
            if _note_jobs(executor, by_path):
                save()
            tick()
            time.sleep(interval)
    except KeyboardInterrupt:
        executor.close(cancel=True)
        for entry in entries:
            if entry.state in ("pending", "running"):
                entry.state = "interrupted"
        save()
        raise
    executor.close()
    tick()


def _note_jobs(executor: Any, by_path: dict[Path, Entry]) -> bool:
    """Copy the job ids and states of an executor that has jobs (``job_states()``: run path -> (id, state));
    whether any changed."""
    changed = False
    for path, job in (executor.job_states() if hasattr(executor, "job_states") else {}).items():
        entry = by_path[path]
        if (entry.job_id, entry.job_state) != job:
            entry.job_id, entry.job_state = job
            changed = True
    return changed


def _status(run_dir: Path) -> str:
    """A finished run's status: complete or diverged (``rundir.FINISHED``)."""
    try:
        return str(rundir.read_summary(run_dir).get("status"))
    except AblateError:
        return "failed"


def _finish(entry: Entry, error: str | None) -> None:
    entry.state, entry.error = ("failed", error) if error else ("complete", None)
    if error and _status(entry.run.path) == DIVERGED:
        entry.state = DIVERGED
    entry.seconds = round(time.time() - (entry.started or time.time()), 1)
