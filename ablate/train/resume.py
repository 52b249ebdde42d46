"""Decide what to do with an output directory: start, resume, skip, or refuse."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ablate.recipe import identity, plain, read_toml
from ablate.registry import AblateError
from ablate.train import rundir

RUN_FILES = (rundir.RECIPE, rundir.METRICS, rundir.CHECKPOINT, rundir.BEST, rundir.SUMMARY)


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def plan(run_dir: Path, config: dict[str, Any], mode: str = "auto") -> str:
    """``"start"``, ``"resume"`` or ``"complete"`` for ``run_dir``; ``mode`` is auto, resume or restart.

    A directory holding a run of a different recipe is refused unless ``mode``
    says what to do, so that nothing is silently mixed or overwritten.
    """
    recipe = run_dir / rundir.RECIPE
    if not recipe.exists():
        return "start"
    if mode == "restart":
        clear(run_dir)
        return "start"
    changed = differences(identity(read_toml(recipe)), identity(plain(config)))
    if changed and mode != "resume":
        raise AblateError(
            f"{run_dir} holds a run of a different recipe ({'; '.join(changed[:3])}); pass --resume to continue "
            f"it with the new recipe, --restart to start over, or choose another --out"
        )
    summary = run_dir / rundir.SUMMARY
    if summary.exists() and rundir.read_summary(run_dir).get("status") == "complete":
        if changed:
            raise AblateError(f"{run_dir} holds a complete run of a different recipe ({'; '.join(changed[:3])}); "
                              f"pass --restart to train it again with the new recipe, or choose another --out")
        return "complete"
    return "resume" if (run_dir / rundir.CHECKPOINT).exists() else "start"


def clear(run_dir: Path) -> None:
    """Remove a run's files (and nothing else) from ``run_dir``."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "gradflow.csv").unlink(missing_ok=True)
    for extra in ("figures", "tensorboard"):
        shutil.rmtree(run_dir / extra, ignore_errors=True)
