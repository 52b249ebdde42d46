"""Decide what to do with an output directory: start, resume, skip, or refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.config import Config
from ablate.recipe import identity, plain
from ablate.registry import AblateError


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def decide(run_dir: Path, config: Config, mode: str = "auto") -> str:
    """``"start"``, ``"resume"`` or ``"complete"`` for ``run_dir``; ``mode`` is auto, resume or restart.

    A run that diverged has ended too: ``"complete"`` (its summary's status tells them apart).

    A directory holding a run of a different recipe is refused unless ``mode``
    says what to do, so that nothing is silently mixed or overwritten.
    """
    if mode == "restart":  # before reading anything: --restart is the way out of a damaged run
        rundir.clear(run_dir)
        return "start"
    saved = rundir.read_recipe(run_dir)
    if saved is None:
        return "start"
    changed = differences(identity(saved), identity(plain(config)))
    if changed and mode != "resume":
        raise AblateError(
            f"{run_dir} holds a run of a different recipe ({'; '.join(changed[:3])}); pass --resume to continue "
            f"it with the new recipe, --restart to start over, or choose another --out"
        )
    if rundir.is_finished(run_dir):
        if changed:
            status = rundir.read_summary(run_dir).get("status")
            raise AblateError(f"{run_dir} holds a {status} run of a different recipe ({'; '.join(changed[:3])}); "
                              f"pass --restart to train it again with the new recipe, or choose another --out")
        return "complete"
    return "resume" if (run_dir / rundir.CHECKPOINT).exists() else "start"

