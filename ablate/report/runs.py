"""Finished runs for the report: find run directories and read each one back through ``ablate.rundir``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

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

    @classmethod
    def load(cls, path: Path) -> Run:
        try:
            summary = rundir.read_summary(path)
        except AblateError as exc:
            raise ReportError(str(exc)) from None
        if not isinstance(summary, dict) or "params" not in summary:
            raise ReportError(f"{path}: {rundir.SUMMARY} is not an ablate run summary (no 'params' field)")
        return cls(path, summary, rundir.read_recipe(path))

    @property
    def label(self) -> str:
        s = self.summary
        return model_label(str(s.get("arch", "?")), str(s.get("norm", "none")), str(s.get("shortcut", "none")))

    @property
    def seed(self) -> Any:
        return self.summary.get("seed")

    @cached_property
    def key(self) -> str:
        """The configuration without the seed (and what does not change training), as JSON."""
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


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run found among ``paths`` (see ``find_runs``), loaded."""
    return [Run.load(p) for p in find_runs(paths)]
