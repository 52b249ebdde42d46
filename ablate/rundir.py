"""The run directory: the one place that knows what a run leaves behind and how to read it back.

    recipe.toml             the resolved recipe (``ablate run DIR/recipe.toml`` repeats it)
    metrics.csv             one row per epoch
    checkpoint.safetensors  model, optimiser, scheduler, RNG state and epoch (last epoch)
    best.safetensors        weights of the best-validation epoch
    summary.json            params, progress, final and test metrics, environment, plugins
    gradflow.csv            per-layer gradient statistics (format in ``ablate.gradflow.stats``)
    signal.csv              per-block forward statistics per epoch (``[gradflow] signal = true``;
                            format in ``ablate.diagnose.record``)
    figures/                the run's figures (``ablate.report.plots``)
    tensorboard/            TensorBoard events (``ablate run --tensorboard``)
    sweep.log               output of the run when a sweep trained it
    trackers.json           the tracker runs that mirror this run (``ablate.tracking``), by tracker

A run is *complete* when its summary says so; ``clear`` removes exactly what
ablate writes here (``--restart``) and nothing else.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from ablate.files import atomic_write_text, remove_temporaries
from ablate.registry import AblateError

RECIPE, METRICS, CHECKPOINT, BEST, SUMMARY = (
    "recipe.toml", "metrics.csv", "checkpoint.safetensors", "best.safetensors", "summary.json")
GRADFLOW, FIGURES, TENSORBOARD, LOG = "gradflow.csv", "figures", "tensorboard", "sweep.log"
SIGNAL, SIGNAL_FIGURE = "signal.csv", "signal_propagation"
LOCK = ".ablate.lock"
TRACKERS = "trackers.json"
METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_second"]
TEXT_COLUMNS = ("device", "amp")
CLEARED_FILES = (RECIPE, METRICS, CHECKPOINT, BEST, SUMMARY, GRADFLOW, SIGNAL, TRACKERS)
CURVES_FIGURE, GRADFLOW_FIGURE, HEATMAP_FIGURE = "training_curves", "gradient_flow", "gradient_heatmap"
FIGURE_STEMS = (CURVES_FIGURE, GRADFLOW_FIGURE, HEATMAP_FIGURE, SIGNAL_FIGURE)
FIGURE_FORMATS = ("png", "svg", "pdf")
TENSORBOARD_EVENTS = "events.out.tfevents.*"


RESTART = "pass --restart to train the run again"


def damaged(path: Path, problem: object, remedy: str) -> AblateError:
    """The one-line error for a damaged or foreign file of a run: which file, what is wrong, what to do."""
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
    return AblateError(f"{path} is damaged or not ablate's ({first}); {remedy}")


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` (and parents) or fail with one clear line."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise AblateError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}; choose another --out") from None


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this process: a second ``ablate run`` into it fails at once, naming the holder.

    The lock is an ``flock`` on ``.ablate.lock``, released by the kernel when the holder dies, so a killed
    run never leaves a stale lock. Holding it, temporary files of killed writes are removed. A directory
    this created and that holds nothing but the lock when done (the run failed before writing) is removed.
    """
    created = not Path(run_dir).exists()
    ensure_writable(run_dir)
    path = Path(run_dir) / LOCK
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise AblateError(f"{run_dir} is in use by another ablate run (pid {holder}); wait for it to finish "
                              f"or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        remove_temporaries(run_dir)
        try:
            yield
        finally:
            if created and [p.name for p in Path(run_dir).iterdir()] == [LOCK]:
                path.unlink()
                Path(run_dir).rmdir()


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    columns = METRIC_COLUMNS + sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / METRICS, buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The numeric columns of ``metrics.csv`` (all but ``device`` and ``amp``), one dict per epoch."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    try:
        text = path.read_text()
        rows = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()
                 if k not in TEXT_COLUMNS} for row in csv.DictReader(io.StringIO(text))]
        if text and not text.endswith("\n"):
            raise ValueError("it ends mid-line")
        if [row.get("epoch") for row in rows] != list(range(1, len(rows) + 1)):
            raise ValueError("its epochs are not 1, 2, ...")
    except (ValueError, TypeError, csv.Error, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise damaged(path, exc, RESTART) from None
    return rows


def summary_text(summary: Mapping[str, Any]) -> str:
    """A summary as ``summary.json`` holds it."""
    return json.dumps(summary, indent=2, default=str) + "\n"


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(run_dir / SUMMARY, summary_text(summary))


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise AblateError(f"{run_dir}: not a run directory (no {SUMMARY})") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise damaged(path, exc, f"delete it (the run resumes from its checkpoint and rewrites it) or {RESTART}") from None
    if not isinstance(summary, dict):
        raise damaged(path, f"a JSON {type(summary).__name__}, not an object",
                      f"delete it (the run resumes from its checkpoint and rewrites it) or {RESTART}")
    return summary


def write_gradflow(run_dir: Path, text: str) -> None:
    atomic_write_text(Path(run_dir) / GRADFLOW, text)


def write_signal(run_dir: Path, text: str) -> None:
    atomic_write_text(Path(run_dir) / SIGNAL, text)


T = TypeVar("T")


def check_whole(text: str, columns: Sequence[str], rows: int, of: str) -> None:
    """``ValueError`` unless ``text`` is a tidy CSV as ablate writes it, whole: the ``columns`` header, a final
    newline and ``rows`` rows (``of``: what makes them, for the message); a truncated or foreign file is not."""
    if text.splitlines()[:1] != [",".join(columns)]:
        raise ValueError("no header row")
    if not text.endswith("\n"):
        raise ValueError("it ends mid-line")
    found = sum(1 for line in text.splitlines()[1:] if line)
    if found != rows:
        raise ValueError(f"{found} rows where {of} make {rows}")


def load_table(run_dir: Path, name: str, parse: Callable[[str], T]) -> T | None:
    """The run's tidy CSV ``name`` (GRADFLOW, SIGNAL) parsed by ``parse``, or None when the run recorded none;
    a damaged or foreign file is one line naming it (``AblateError``)."""
    path = Path(run_dir) / name
    try:
        return parse(path.read_text()) if path.exists() else None
    except (ValueError, KeyError, TypeError, csv.Error, OSError) as exc:  # UnicodeDecodeError is a ValueError
        problem = f"no column {exc}" if isinstance(exc, KeyError) else exc
        raise damaged(path, problem, RESTART) from None


def read_trackers(folder: Path) -> dict[str, dict[str, Any]]:
    """What tracker plugins keep in a run (or sweep) directory, by tracker: its run id, the epochs sent."""
    path = Path(folder) / TRACKERS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AblateError(f"{path}: cannot read {TRACKERS}: {exc}") from None


def write_tracker(folder: Path, tracker: str, record: Mapping[str, Any]) -> None:
    """Store one tracker's record in ``folder``'s ``trackers.json``, keeping the others'."""
    data = {**read_trackers(folder), tracker: dict(record)}
    atomic_write_text(Path(folder) / TRACKERS, json.dumps(data, indent=2, sort_keys=True) + "\n")


def is_run(path: Path) -> bool:
    """Whether ``path`` holds a run (a ``summary.json``)."""
    return (Path(path) / SUMMARY).is_file()


def runs_below(folder: Path) -> list[Path]:
    """Every run directory at any depth below ``folder``, sorted."""
    return sorted(p.parent for p in Path(folder).rglob(SUMMARY))


def is_complete(run_dir: Path) -> bool:
    return is_run(run_dir) and read_summary(run_dir).get("status") == "complete"


FINISHED = ("complete", "diverged")
"""Statuses of a run that has ended: a rerun trains nothing (``--restart`` trains it again)."""


def is_finished(run_dir: Path) -> bool:
    return is_run(run_dir) and read_summary(run_dir).get("status") in FINISHED


def has_recipe(run_dir: Path) -> bool:
    return (Path(run_dir) / RECIPE).is_file()


def read_recipe(run_dir: Path) -> dict[str, Any] | None:
    """The run's saved recipe as a plain dict, or None when it has none."""
    from ablate.recipe import ADDED_LATER, DEFAULTS, read_toml

    if not has_recipe(run_dir):
        return None
    try:
        saved = read_toml(Path(run_dir) / RECIPE)
    except AblateError as exc:
        raise AblateError(f"{exc}; it is the saved recipe of the run in {run_dir}: {RESTART}") from None
    missing = [table for table in ("model", "data", "train") if not isinstance(saved.get(table), dict)]
    if missing:  # ablate saves the resolved recipe, every table filled in
        raise damaged(Path(run_dir) / RECIPE, f"no [{missing[0]}] table", RESTART)
    keys = [f"{table}.{key}" for table in ("model", "data", "train") for key in DEFAULTS[table]
            if key not in saved[table] and f"{table}.{key}" not in ADDED_LATER]
    if keys:  # every key an ablate of any version saved: a cut-off file can still parse
        raise damaged(Path(run_dir) / RECIPE, f"no {keys[0]} key", RESTART)
    return saved


def write_recipe(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Save the resolved recipe (round-trips through ``ablate.recipe.load_recipe``), atomically."""
    from ablate.recipe import dump

    dump(config, Path(run_dir) / RECIPE)


def clear(run_dir: Path) -> None:
    """Remove the files ablate wrote (and nothing else) from ``run_dir``: a user's own file stays, also in
    ``figures/`` and ``tensorboard/``."""
    for name in CLEARED_FILES:
        (run_dir / name).unlink(missing_ok=True)
    ours = [run_dir / FIGURES / f"{stem}.{fmt}" for stem in FIGURE_STEMS for fmt in FIGURE_FORMATS]
    ours += (run_dir / TENSORBOARD).glob(TENSORBOARD_EVENTS)
    for path in ours:
        path.unlink(missing_ok=True)
    for folder in (FIGURES, TENSORBOARD):  # removed only when nothing of the user's is left in them
        if (run_dir / folder).is_dir() and not any((run_dir / folder).iterdir()):
            (run_dir / folder).rmdir()
