"""Every statistic of the report: per-group summaries (mean, std, 95% CI, IQM) and comparisons between groups.

The per-seed inference between two groups (bootstrap CIs, tests, Holm, seeds needed) is
``ablate.report.pairwise``; this module picks the values it works on.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from ablate.report.groups import Group
from ablate.report.pairwise import CONFIDENCE, Comparison, compare, finish
from ablate.report.runs import METRICS, ReportError, Run

IQM_MIN = 5
ENVIRONMENT = ("threads", "torch")
"""What ran a run and changes its floating-point sums but not its identity: runs of one row that differ
in these are flagged (``--jobs`` changes the thread count, not the run directory)."""


def group_row(group: Group, metrics: Sequence[str] = METRICS) -> dict[str, Any]:
    """Machine-readable row: per metric mean, sample std, 95% CI of the mean and IQM (None where undefined).

    Diverged runs are left out of every statistic (``n`` counts the others; ``diverged`` them)."""
    s = group.first.summary
    runs = [r for r in group.runs if not r.diverged]
    row: dict[str, Any] = {
        "model": group.name, "arch": s.get("arch"), "norm": s.get("norm"), "shortcut": s.get("shortcut"),
        "lr": group.lr, "params": s.get("params"), "dataset": s.get("dataset"), "epochs": s.get("epochs"),
        "n": len(runs), "seeds": [r.seed for r in runs], "diverged": len(group.runs) - len(runs),
        "status": row_status(group.runs), "environment_differs": environment_differences(runs),
    }
    for metric in dict.fromkeys([*METRICS, *metrics]):
        values = [v for v in (number(r.summary.get(metric)) for r in runs) if v is not None]
        row[metric], row[f"{metric}_std"] = mean_std(values)
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = mean_ci(values)
        row[f"{metric}_iqm"] = iqm(values)
    row["verdict"] = combine_verdicts([r.verdict for r in runs])
    row["verdict_at_init"] = combine_verdicts([r.verdict_at_init for r in runs])
    row["complete"] = all(r.status in ("complete", "diverged") for r in group.runs)
    row["epochs_completed"] = [r.summary.get("epochs_completed") for r in group.runs]
    row["runs"] = [str(r.path) for r in group.runs]
    return row


def row_status(runs: Sequence[Run]) -> str:
    """``complete``, ``diverged`` (every run), ``2 of 3 diverged``, or ``unfinished`` (a run is still running)."""
    diverged = sum(r.diverged for r in runs)
    if any(r.status not in ("complete", "diverged") for r in runs):
        return "unfinished"
    if not diverged:
        return "complete"
    return "diverged" if diverged == len(runs) else f"{diverged} of {len(runs)} diverged"


def environment_differences(runs: Sequence[Run]) -> list[str]:
    """``threads: 1, 2`` for each of ``ENVIRONMENT`` in which the runs' summaries differ."""
    out = []
    for key in ENVIRONMENT:
        values = {str(env.get(key)) for r in runs if isinstance(env := r.summary.get("environment"), dict)}
        if len(values) > 1:
            out.append(f"{key}: {', '.join(sorted(values))}")
    return out


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean (None when empty) and sample std (None below two values)."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def mean_ci(values: Sequence[float]) -> tuple[float | None, float | None]:
    """95% Student-t confidence interval of the mean (None below two values; the mean twice when all are equal)."""
    if len(values) < 2:
        return None, None
    from scipy import stats

    mean, sem = statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def iqm(values: Sequence[float]) -> float | None:
    """Interquartile mean (the mean of the middle half, ``scipy.stats.trim_mean(values, 0.25)``) from 5 values on."""
    if len(values) < IQM_MIN:
        return None
    from scipy import stats

    return float(stats.trim_mean(values, 0.25))


def epoch_bands(curves: Sequence[Sequence[dict[str, Any]]], key: str) -> list[tuple[int, float, float | None, float | None]]:
    """Per epoch of the runs' metric rows: (epoch, mean of ``key``, 95% CI low, high) over the runs that reached it."""
    by_epoch: dict[int, list[float]] = {}
    for rows in curves:
        for row in rows:
            value = number(row.get(key))
            if value is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(value)
    return [(epoch, statistics.fmean(values), *mean_ci(values)) for epoch, values in sorted(by_epoch.items())]


def combine_verdicts(verdicts: Sequence[str | None]) -> str | None:
    """One verdict when the runs agree, else each with its count: ``vanishing x1, healthy x1``."""
    known = [v for v in verdicts if v]
    if not known:
        return None
    counts = {v: known.count(v) for v in dict.fromkeys(known)}
    if len(counts) == 1:
        return known[0]
    return ", ".join(f"{v} x{n}" for v, n in counts.items())


def higher_is_better(metric: str) -> bool:
    """Losses are better lower; every other metric higher."""
    return "loss" not in metric


def number(value: Any) -> float | None:
    """A summary value as a float, or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def check_metric(runs: Sequence[Run], metric: str) -> None:
    """A one-line error unless some run's summary has ``metric`` as a number."""
    if any(number(run.summary.get(metric)) is not None for run in runs):
        return
    keys = sorted({k for run in runs for k, v in run.summary.items() if number(v) is not None})
    raise ReportError(f"--metric {metric!r}: not a number in any run's summary; numeric keys: {', '.join(keys)}")


def compare_groups(pairs: Sequence[tuple[Group, Group]], metric: str) -> list[Comparison]:
    """Each (A, B) compared on ``metric`` (paired over shared seeds, else unpaired), Holm over all of them."""
    return finish([compare_pair(a, b, metric) for a, b in pairs])


def compare_pair(a: Group, b: Group, metric: str) -> Comparison:
    """A against B over their shared seeds; unpaired when they share none."""
    values_a, values_b = _by_seed(a, metric), _by_seed(b, metric)
    shared = [seed for seed in values_a if seed in values_b]
    options: dict[str, Any] = {"a_name": a.first.group_name or a.name, "b_name": b.first.group_name or b.name,
                               "metric": metric, "higher_is_better": higher_is_better(metric)}
    if shared:
        return compare([values_a[s] for s in shared], [values_b[s] for s in shared], paired=True, seeds=shared, **options)
    return compare(list(values_a.values()), list(values_b.values()), paired=False, **options)


def _by_seed(group: Group, metric: str) -> dict[Any, float]:
    values = {run.seed: number(run.summary.get(metric)) for run in group.runs if not run.diverged}
    found = {seed: v for seed, v in values.items() if v is not None}
    if not found:
        raise ReportError(f"--metric {metric!r}: no run of '{group.name}' has it as a number")
    return found
