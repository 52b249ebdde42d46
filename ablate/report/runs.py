"""Finished runs for the report: find run directories and read each one back through ``ablate.rundir``.

A run directory whose ``summary.json`` cannot be read, or is not an ablate run's, is skipped with one
warning; one whose ``recipe.toml`` is empty or unreadable is reported alone (its configuration is
unknown, so it is never grouped with another run), with one warning; two directories holding the same
run (same recipe identity and seed: a backup copy, say) count once, with one warning naming both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, cast

from ablate import rundir
from ablate.registry import AblateError
from ablate.report.labels import model_label

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


class ReportError(AblateError):
    pass


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each a run itself or a folder searched recursively."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path}: no such directory")
        if rundir.is_run(path):
            found[path] = None
            continue
        runs = rundir.runs_below(path)
        if not runs:
            raise ReportError(f"{path}: no runs found (no {rundir.SUMMARY} in it or below)")
        found.update(dict.fromkeys(runs))
    return list(found)


@dataclass
class Run:
    """One run directory: its summary, its saved recipe (if any) and its group's legend name."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any] | None = None
    group_name: str = ""
    problem: str | None = None
    """Why the saved recipe cannot say what this run is (then it is grouped with no other run)."""

    @classmethod
    def load(cls, path: Path) -> Run:
        try:
            summary = rundir.read_summary(path)
        except AblateError as exc:
            raise ReportError(str(exc)) from None
        if not isinstance(summary, dict) or "params" not in summary:
            raise ReportError(f"{path / rundir.SUMMARY}: not an ablate run summary (no 'params' field)")
        try:
            config = rundir.read_recipe(path)
        except (AblateError, OSError, ValueError) as exc:  # ValueError: a binary file is no UTF-8
            return cls(path, summary, None, problem=f"{rundir.RECIPE} is unreadable ({str(exc).splitlines()[0]})")
        if config is not None and not all(isinstance(config.get(t), dict) for t in ("model", "train")):
            return cls(path, summary, None, problem=f"{rundir.RECIPE} is empty or holds no [model] and [train] tables")
        return cls(path, summary, config)

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def label(self) -> str:
        s = self.summary
        return model_label(str(s.get("arch", "?")), str(s.get("norm", "none")), str(s.get("shortcut", "none")))

    @property
    def seed(self) -> Any:
        return self.summary.get("seed")

    @cached_property
    def key(self) -> str:
        """The configuration without the seed (and what does not change training), as JSON; a run whose
        recipe is unreadable has a key of its own."""
        if self.problem is not None:
            return json.dumps({"unknown recipe": str(self.path)})
        if self.config is not None:
            return json.dumps(_strip(self.config), sort_keys=True, default=str)
        s = self.summary
        fields = {k: s.get(k) for k in ("arch", "norm", "shortcut", "lr", "epochs", "dataset", "sizes")}
        return json.dumps(fields, sort_keys=True, default=str)

    @property
    def verdict(self) -> str | None:
        gradflow = self.summary.get("gradflow")
        return gradflow.get("verdict") if isinstance(gradflow, dict) else None

    @property
    def verdict_at_init(self) -> str | None:
        gradflow = self.summary.get("gradflow")
        at_init = gradflow.get("at_init") if isinstance(gradflow, dict) else None
        return at_init.get("verdict") if isinstance(at_init, dict) else None


def _strip(config: dict[str, Any]) -> dict[str, Any]:
    """A run's identity (``ablate.recipe.identity``) without its seed."""
    from ablate.recipe import identity

    out = identity(config)
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "seed"}
    return out


def load_runs(paths: Iterable[str | Path], warnings: list[str] | None = None) -> list[Run]:
    """Every readable run found among ``paths`` (see ``find_runs``), each run once; what was skipped or
    merged is appended to ``warnings``, one line each."""
    paths, notes = list(paths), warnings if warnings is not None else []
    runs: list[Run] = []
    for path in find_runs(paths):
        try:
            run = Run.load(path)
        except AblateError as exc:
            notes.append(f"skipped {path}: {exc}")
            continue
        if run.problem:
            notes.append(f"{path}: {run.problem}; reported alone, not grouped with other runs")
        runs.append(run)
    if not runs:
        raise ReportError(f"no readable runs in {', '.join(map(str, paths))}")
    return _once(runs, notes)


def _once(runs: list[Run], notes: list[str]) -> list[Run]:
    """The runs with copies of one run (same identity and seed) counted once: the one in the directory
    ablate named for it (``...-<hash>``) is kept, else the first found."""
    kept: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: not _named_by_ablate(r)):
        ident = json.dumps([run.key, run.seed], default=str)
        if ident in kept:
            notes.append(f"{kept[ident].path} and {run.path} hold the same run (same recipe, seed {run.seed}); "
                         f"counted once, from {kept[ident].path}")
            continue
        kept[ident] = run
    return [run for run in runs if any(run is k for k in kept.values())]


def _named_by_ablate(run: Run) -> bool:
    """Whether the run's directory ends with the hash of its recipe, as ``ablate run``/``sweep`` name it."""
    from ablate.recipe import Arm

    if run.config is None:
        return False
    try:
        return run.path.name.endswith("-" + Arm("", cast(Any, run.config)).digest())
    except (TypeError, ValueError):
        return False
