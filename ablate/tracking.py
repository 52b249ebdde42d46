"""What tracker plugins (``ablate-mlflow``, ``ablate-wandb``) share: a run as an experiment tracker shows it.

A tracker run mirrors one run directory. ``describe`` gives its name (the run's arm: its
name in the sweep that trains it, else the model's label), tags (arm, arch, norm,
shortcut, seed, the hash of the configuration, the run directory) and parameters (the
resolved recipe flattened to dotted keys). ``Mirror`` keeps the tracker's run id and the
last epoch it was sent in the run directory (``trackers.json``, ``ablate.rundir``), so a
resumed run continues the same tracker run and every row of ``metrics.csv`` is sent
once, whichever attempt trained it. ``shared_run_id`` does the same for a run that
several runs share (a sweep's parent run), under a file lock, as the runs of a sweep may
start at the same time.

A tracker callback sets ``records_only = True``: it cannot change a run's results, so it
is not part of the run's identity (``ablate.recipe.identity``), and adding it to a sweep
resumes the same run directories.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, cast

from ablate import __version__, rundir
from ablate.config import Config


@dataclass(frozen=True)
class RunInfo:
    """A run as a tracker shows it; ``sweep`` is the directory of the sweep that trains it, if one does."""

    name: str
    tags: dict[str, str]
    params: dict[str, str]
    sweep: Path | None


def describe(run_dir: Path, config: Mapping[str, Any]) -> RunInfo:
    """Name, tags and parameters of the run in ``run_dir`` with the resolved recipe ``config``."""
    from ablate.recipe import Arm, plain
    from ablate.report import model_label

    run_dir = Path(run_dir).resolve()
    m, t = config["model"], config["train"]
    sweep = sweep_of(run_dir)
    name = sweep[1] if sweep else model_label(m["arch"], m["norm"], m["shortcut"])
    tags = {"arm": name, "arch": m["arch"], "norm": m["norm"], "shortcut": m["shortcut"], "seed": str(t["seed"]),
            "run_hash": Arm(name, cast(Config, config)).digest(), "run_dir": str(run_dir), "ablate": __version__}
    return RunInfo(name, tags, flatten(plain(config)), sweep[0] if sweep else None)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.001}}`` as ``{"train.lr": "0.001"}``; lists and other values as JSON, strings as they are."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def sweep_of(run_dir: Path) -> tuple[Path, str] | None:
    """The sweep directory whose ``sweep.json`` lists ``run_dir``, and the run's name there; None outside a sweep."""
    from ablate.sweep.runner import read_manifest

    run_dir = Path(run_dir).resolve()
    record = read_manifest(run_dir.parent).get(run_dir.name)
    return (run_dir.parent, str(record["name"])) if record else None


class Mirror:
    """One tracker's run for one run directory: its id, and the epochs of ``metrics.csv`` not sent yet.

    ``where`` names the tracker's store (an MLflow tracking URI, a W&B project): a run id
    stored for another store is not reused, and everything is sent to the new one.
    """

    def __init__(self, run_dir: Path, tracker: str, where: str) -> None:
        self.run_dir, self.tracker, self.where = Path(run_dir), tracker, where
        record = rundir.read_trackers(self.run_dir).get(tracker, {})
        self.record: dict[str, Any] = record if record.get("where") == where else {}

    @property
    def resumed(self) -> bool:
        """Whether an earlier attempt of this run created the tracker run."""
        return "run_id" in self.record

    def run_id(self, create: Callable[[], str]) -> str:
        """The stored tracker run id; else ``create()`` one and store it."""
        if not self.resumed:
            self.record = {"run_id": create(), "where": self.where, "epoch": 0}
            rundir.write_tracker(self.run_dir, self.tracker, self.record)
        return str(self.record["run_id"])

    def unsent(self) -> list[dict[str, float]]:
        """The rows of ``metrics.csv`` after the last epoch sent."""
        return [row for row in rundir.read_metrics(self.run_dir) if row["epoch"] > self.record.get("epoch", 0)]

    def sent(self, rows: list[dict[str, float]]) -> None:
        """Record that ``rows`` (from ``unsent``) reached the tracker."""
        if rows:
            self.record["epoch"] = int(rows[-1]["epoch"])
            rundir.write_tracker(self.run_dir, self.tracker, self.record)


def shared_run_id(folder: Path, tracker: str, where: str, create: Callable[[], str]) -> str:
    """The id of the tracker run kept in ``folder`` (a sweep's parent run) for the store ``where``;
    ``create()`` it once, whichever run comes first."""
    with folder_lock(Path(folder)):
        record = rundir.read_trackers(folder).get(tracker, {})
        if record.get("where") == where and "run_id" in record:
            return str(record["run_id"])
        run_id = create()
        rundir.write_tracker(folder, tracker, {"run_id": run_id, "where": where})
        return run_id


def run_figures(run_dir: Path, config: Mapping[str, Any]) -> list[Path]:
    """The run's figures (PNG), drawn now where missing or older than their data, as ``ablate run`` draws them."""
    from ablate.report import model_label
    from ablate.report.plots import write_run_figures

    m = config["model"]
    write_run_figures(Path(run_dir), label=model_label(m["arch"], m["norm"], m["shortcut"]), only_if_stale=True)
    return sorted((Path(run_dir) / rundir.FIGURES).glob("*.png"))


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s tracker lock (not re-entrant): one process at a time creates what a sweep's runs share."""
    with open(folder / f".{rundir.TRACKERS}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def metric_rows(rows: list[dict[str, float]]) -> list[tuple[int, dict[str, float]]]:
    """``(epoch, values)`` of each row, the values without the epoch and without empty cells."""
    return [(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch" and v == v}) for row in rows]


def final_values(summary: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers and labels of a finished run's summary for a tracker: test loss and accuracy, and the
    gradient-flow verdict and ratio (first layer's mean |g| / last layer's) at the end and at initialisation."""
    numbers = {k: float(summary[k]) for k in ("test_loss", "test_acc", "best_val_acc") if _number(summary.get(k))}
    labels: dict[str, str] = {}
    gradflow = summary.get("gradflow")
    gradflow = gradflow if isinstance(gradflow, dict) else {}
    for suffix, part in (("", gradflow), ("_at_init", gradflow.get("at_init") or {})):
        if part.get("verdict"):
            labels[f"gradflow_verdict{suffix}"] = str(part["verdict"])
        if _number(part.get("ratio")):
            numbers[f"gradflow_ratio{suffix}"] = float(part["ratio"])
    return numbers, labels


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
