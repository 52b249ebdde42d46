"""Slurm through submitit: each pending run one job (one job array per batch), requeued when preempted or out of time.

``slurm_options`` reads the sweep's resources from the recipe's ``[executor]`` table and
the command line; ``SlurmExecutor`` submits runs as a job array and watches the jobs;
``TrainJob`` is what a job runs, ``python -m ablate run RUN_DIR/recipe.toml --out RUN_DIR
-q`` (``ablate.sweep.executors.run_to_end``), so a requeued job resumes its run from the
last completed epoch. submitit keeps its pickles and job logs in ``SWEEP_DIR/submitit/``;
the run's own output goes to its ``sweep.log``, as with every executor.
``cluster = "local"`` runs the same jobs as local processes through submitit's
LocalExecutor (the same pickles and checkpointing): the tests use it, and it tries a
recipe's Slurm setup on one machine.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.recipe import RecipeError
from ablate.registry import AblateError
from ablate.sweep.executors import failure, run_args, run_to_end
from ablate.sweep.grid import SweepRun

SUBMITIT = "submitit"
CLUSTERS = ("slurm", "local")
SLURM_ONLY = ("partition", "mem", "sbatch")
KEYS: dict[str, type | tuple[type, ...]] = {
    "partition": str, "gpus_per_job": int, "cpus_per_job": int, "mem": str, "time": (int, str), "sbatch": list,
    "cluster": str, "jobs": int, "requeues": int}
MINIMUM = {"gpus_per_job": 0, "cpus_per_job": 1, "jobs": 1, "requeues": 0}
TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d\d):(\d\d)$")
MEM = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class SlurmOptions:
    """A sweep's Slurm resources; ``time`` in minutes, ``jobs`` the most jobs running at once."""

    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem: str | None = None
    time: int = 240
    sbatch: tuple[str, ...] = ()
    cluster: str = "slurm"
    jobs: int | None = None
    requeues: int = 3


def slurm_options(table: Any, source: str, cli: dict[str, Any]) -> SlurmOptions:
    """The ``[executor]`` table of ``source`` with the command line's values (``cli``, None when not given) over it."""
    if not isinstance(table, dict):
        raise RecipeError(f"{source}: [executor] must be a table, like [executor] partition = \"gpu\"")
    from_cli = {k: v for k, v in cli.items() if v not in (None, [])}
    given: dict[str, Any] = {**table, **from_cli}

    def where(key: str) -> str:
        return f"--{key.replace('_', '-')}" if key in from_cli else f"{source}: executor.{key}"

    for key, value in given.items():
        if key not in KEYS:
            raise RecipeError(f"{source}: unknown key 'executor.{key}'; valid keys in [executor]: {', '.join(KEYS)}")
        if not isinstance(value, KEYS[key]) or isinstance(value, bool):
            raise RecipeError(f"{where(key)} = {value!r} has the wrong type; see {_example(key)}")
        if key in MINIMUM and given[key] < MINIMUM[key]:
            raise RecipeError(f"{where(key)} = {value!r} is too small; see {_example(key)}")
    if given.get("cluster", "slurm") not in CLUSTERS:
        raise RecipeError(f"{where('cluster')} = {given['cluster']!r}: choose one of {', '.join(CLUSTERS)}")
    if "mem" in given and not MEM.match(given["mem"]):
        raise RecipeError(f"{where('mem')} = {given['mem']!r}: give a Slurm size, like {_example('mem')}")
    if "time" in given:
        given["time"] = minutes(given["time"], where("time"))
    if "sbatch" in given:
        given["sbatch"] = tuple(given["sbatch"])
        for line in given["sbatch"]:
            sbatch_flag(line, where("sbatch"))
    return SlurmOptions(**given)


def _example(key: str) -> str:
    return {"partition": 'partition = "gpu"', "gpus_per_job": "gpus_per_job = 1", "cpus_per_job": "cpus_per_job = 8",
            "mem": 'mem = "32G"', "time": 'time = "04:00:00" or time = 240 (minutes)',
            "sbatch": 'sbatch = ["--account=lab", "--qos=normal"]', "cluster": 'cluster = "slurm"',
            "jobs": "jobs = 8", "requeues": "requeues = 3"}[key]


def minutes(value: int | str, where: str) -> int:
    """A Slurm time limit in whole minutes: an int (minutes) or ``[D-]HH:MM:SS``; ``where`` names the key in errors."""
    if isinstance(value, int) and value >= 1:
        return value
    match = TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise RecipeError(f"{where} = {value!r}: give minutes or [D-]HH:MM:SS, like {_example('time')}")
    days, hours, mins, secs = (int(g or 0) for g in match.groups())
    return max(1, days * 1440 + hours * 60 + mins + (secs > 0))


def sbatch_flag(line: Any, where: str) -> tuple[str, str | bool]:
    """``--account=lab`` (or ``#SBATCH --account lab``) as ``("account", "lab")``; ``--exclusive`` as ``("exclusive", True)``."""
    text = line.strip().removeprefix("#SBATCH").strip() if isinstance(line, str) else ""
    match = re.match(r"^--([A-Za-z][\w-]*)(?:[= ]\s*(\S.*))?$", text)
    if not match:
        raise RecipeError(f"{where} line {line!r}: write one long option, like --account=lab")
    return match.group(1), match.group(2) or True


def submitit_parameters(options: SlurmOptions, name: str) -> dict[str, Any]:
    """The parameters of ``submitit.AutoExecutor.update_parameters`` for ``options``."""
    params: dict[str, Any] = {"name": name, "timeout_min": options.time, "gpus_per_node": options.gpus_per_job,
                              "tasks_per_node": 1, "nodes": 1}
    if options.cpus_per_job:
        params["cpus_per_task"] = options.cpus_per_job
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.mem:
        params["slurm_mem"] = options.mem
    if options.jobs:
        params["slurm_array_parallelism"] = options.jobs
    if options.sbatch:
        params["slurm_additional_parameters"] = dict(sbatch_flag(line, "sbatch") for line in options.sbatch)
    return params


@dataclass
class TrainJob:
    """What one job runs: ``ablate run`` on one run directory. Requeued as itself, it resumes the run."""

    args: list[str]
    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self) -> int:
        return run_to_end(self.args, self.cwd, self.log, self.env)

    def checkpoint(self) -> Any:
        """submitit calls this when the job is preempted or reaches its time limit: requeue the same job."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


class SlurmExecutor:
    """Runs as Slurm jobs: ``submit`` collects runs, the next ``poll`` submits them as one job array."""

    def __init__(self, sweep_dir: Path, options: SlurmOptions) -> None:
        try:
            import submitit
        except ImportError:
            raise AblateError("--executor slurm needs submitit: pip install 'ablate-cnn[slurm]'") from None
        self.options = options
        try:
            self.executor = submitit.AutoExecutor(folder=sweep_dir / SUBMITIT, cluster=options.cluster,
                                                  slurm_max_num_timeout=options.requeues,
                                                  local_max_num_timeout=options.requeues)
        except RuntimeError:  # submitit's SlurmExecutor looks for srun
            raise AblateError("--executor slurm: srun is not on PATH, so this is no Slurm cluster; run the sweep on one, "
                              "or set [executor] cluster = \"local\" to run the jobs as local processes") from None
        self.executor.update_parameters(**submitit_parameters(options, f"ablate-{sweep_dir.name}"))
        self.waiting: list[SweepRun] = []
        self.active: dict[Path, tuple[SweepRun, Any]] = {}
        self.states: dict[Path, tuple[str, str]] = {}

    def free(self) -> bool:
        limit = self.options.jobs if self.options.cluster == "local" else None
        return limit is None or len(self.active) + len(self.waiting) < limit

    def busy(self) -> bool:
        return bool(self.active or self.waiting)

    def submit(self, run: SweepRun) -> None:
        self.waiting.append(run)

    def job_states(self) -> dict[Path, tuple[str, str]]:
        """Job id and latest state of every run submitted, by run directory."""
        return dict(self.states)

    def poll(self) -> list[tuple[SweepRun, str | None]]:
        if self.waiting:
            self._submit_waiting()
        ended = []
        for path, (run, job) in list(self.active.items()):
            self.states[path] = (job.job_id, job.state)
            if job.done():
                del self.active[path]
                ended.append((run, self._result(run, job)))
        return ended

    def _submit_waiting(self) -> None:
        env = {"OMP_NUM_THREADS": str(self.options.cpus_per_job)} if self.options.cpus_per_job else {}
        runs, self.waiting = self.waiting, []
        with self.executor.batch():
            jobs = [self.executor.submit(TrainJob(run_args(run), str(Path.cwd()), str((run.path / rundir.LOG).resolve()),
                                                  env)) for run in runs]
        for run, job in zip(runs, jobs):
            self.active[run.path] = (run, job)
            self.states[run.path] = (job.job_id, "SUBMITTED")

    def _result(self, run: SweepRun, job: Any) -> str | None:
        try:
            return failure(run, job.result())
        except Exception as exc:  # submitit: the job raised, or ended without a result (cancelled, out of requeues)
            lines = [line.strip() for line in str(exc).splitlines() if line.strip(" -")]
            with open(run.path / rundir.LOG, "a") as fh:
                fh.write(f"{exc}\n")
            first = type(exc).__name__ == "UncompletedJobError"
            return f"job {job.job_id}: {(lines[0] if first else lines[-1]) if lines else type(exc).__name__}"

    def close(self, cancel: bool = False) -> None:
        """With ``cancel``, cancel the jobs still queued or running (and wait for local ones to stop)."""
        if not cancel:
            return
        for _, job in self.active.values():
            job.cancel(check=False)
        deadline = time.monotonic() + 15
        while self.options.cluster == "local" and time.monotonic() < deadline:
            if all(job.done() for _, job in self.active.values()):
                break
            time.sleep(0.2)
