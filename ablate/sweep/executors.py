"""Where a sweep's runs train: local processes, or tasks on a Ray cluster.

Both start ``python -m ablate run RUN_DIR/recipe.toml --out RUN_DIR -q`` for each run,
its output appended to ``RUN_DIR/sweep.log``, so a run's files are the same whichever
executor trained it. An executor offers ``free()`` (may take another run now),
``submit(run)``, ``poll()`` (the runs that ended, each with None or a one-line error),
``busy()`` and ``close(cancel)``; one whose runs are jobs also offers ``job_states()``
(run directory -> job id and state, for ``sweep.json``), as ``ablate.sweep.slurm`` does.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.registry import AblateError
from ablate.sweep.grid import SweepRun


def run_args(run: SweepRun) -> list[str]:
    """Arguments after ``python -m ablate`` that train ``run``."""
    path = run.path.resolve()
    return ["run", str(path / rundir.RECIPE), "--out", str(path), "-q"]


def available_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def start(args: list[str], cwd: str, log: Path, env: dict[str, str], cpus: list[int] | None = None) -> subprocess.Popen:
    """Start ``python -m ablate ARGS`` with output appended to ``log``; it dies with its parent."""
    cmd = [sys.executable, "-m", "ablate", *args]
    with open(log, "a") as fh:
        fh.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        fh.flush()
        parent = os.getpid()
        return subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                preexec_fn=lambda: _child_setup(cpus, parent))


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _child_setup(cpus: list[int] | None, parent: int) -> None:
    """In the child: stay on ``cpus`` (the trainer uses as many threads as it may use cores) and
    receive SIGTERM when the parent dies, so a killed sweep leaves no run behind."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def run_to_end(args: list[str], cwd: str, log: str, env: dict[str, str]) -> int:
    """Train one run to its end and return the exit status (the body of a Ray task)."""
    proc = start(args, cwd, Path(log), env)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def failure(run: SweepRun, status: int) -> str | None:
    """None for a run that exited 0 with a complete summary, else the last line of its log."""
    if status == 0:
        if rundir.is_complete(run.path):
            return None
        return "exited without a complete summary.json"
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    lines = [line.strip() for line in (run.path / rundir.LOG).read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines and not lines[-1].startswith("== ") else ""
    return last.removeprefix("error: ") or f"exited with status {status}"


@dataclass
class Slot:
    """One local job: the cores it may use, its GPU, and the run it holds."""

    cpus: list[int]
    gpu: int | None
    run: SweepRun | None = None
    proc: subprocess.Popen | None = None


@dataclass
class LocalExecutor:
    """``jobs`` runs at a time in subprocesses; cores split between them, ``per_gpu`` runs per GPU."""

    jobs: int
    per_gpu: int = 1
    gpus: int = 0
    slots: list[Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        cores = available_cores()
        per = max(1, len(cores) // self.jobs)
        for k in range(self.jobs):
            cpus = [cores[(k * per + i) % len(cores)] for i in range(per)]
            self.slots.append(Slot(cpus, (k // self.per_gpu) % self.gpus if self.gpus else None))

    def free(self) -> bool:
        return any(s.proc is None for s in self.slots)

    def busy(self) -> bool:
        return not all(s.proc is None for s in self.slots)

    def submit(self, run: SweepRun) -> None:
        slot = next(s for s in self.slots if s.proc is None)
        env = {"OMP_NUM_THREADS": str(len(slot.cpus))}
        if slot.gpu is not None and run.config["train"]["device"] in ("auto", "cuda"):
            env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
        slot.run, slot.proc = run, start(run_args(run), os.getcwd(), run.path / rundir.LOG, env, slot.cpus)

    def poll(self) -> list[tuple[SweepRun, str | None]]:
        ended = []
        for slot in self.slots:
            if slot.run is not None and slot.proc is not None and slot.proc.poll() is not None:
                ended.append((slot.run, failure(slot.run, slot.proc.returncode)))
                slot.run, slot.proc = None, None
        return ended

    def close(self, cancel: bool = False) -> None:
        for slot in self.slots:
            if slot.proc is not None and cancel:
                slot.proc.terminate()
        for slot in self.slots:
            if slot.proc is not None:
                slot.proc.wait()


class RayExecutor:
    """Each run a Ray task: one GPU (or 1/per_gpu) where the cluster has GPUs, else node cores / jobs.

    Tasks run in the driver's working directory and write to the sweep directory, so on a
    cluster both must be on a filesystem every node shares (at the same path).
    """

    def __init__(self, address: str | None, jobs: int, per_gpu: int, use_gpu: bool) -> None:
        try:
            import ray
        except ImportError:
            raise AblateError("--executor ray needs Ray: pip install 'ablate-cnn[ray]'") from None
        self.ray = ray
        options: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=len(available_cores()), include_dashboard=False, **options)
        if use_gpu and ray.cluster_resources().get("GPU", 0) > 0:
            self.options: dict[str, Any] = {"num_gpus": 1 / per_gpu, "num_cpus": 1}
        else:
            self.options = {"num_cpus": max(1, _node_cpus(ray) // jobs)}
        self.task = ray.remote(max_retries=2)(run_to_end)
        self.refs: dict[Any, SweepRun] = {}

    def free(self) -> bool:
        return True

    def busy(self) -> bool:
        return bool(self.refs)

    def submit(self, run: SweepRun) -> None:
        env = {"OMP_NUM_THREADS": str(self.options["num_cpus"])}
        ref = self.task.options(**self.options).remote(run_args(run), os.getcwd(), str((run.path / rundir.LOG).resolve()), env)
        self.refs[ref] = run

    def poll(self) -> list[tuple[SweepRun, str | None]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        return [self._result(ref) for ref in ready]

    def _result(self, ref: Any) -> tuple[SweepRun, str | None]:
        run = self.refs.pop(ref)
        try:
            return run, failure(run, self.ray.get(ref))
        except self.ray.exceptions.RayError as exc:
            error = f"ray task failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
            with open(run.path / rundir.LOG, "a") as fh:
                fh.write(f"{exc}\n")
            return run, error

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self.refs:
                self.ray.cancel(ref)
        self.ray.shutdown()


def _node_cpus(ray: Any) -> int:
    """Cores of the smallest alive node."""
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return int(min(cpus)) if cpus else 1
