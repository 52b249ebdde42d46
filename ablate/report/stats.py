"""Every statistic of the report: per-group mean and sample std, and paired differences over shared seeds."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from ablate.report.formats import fmt_lr
from ablate.report.groups import Group, find_group
from ablate.report.runs import METRICS, ReportError


def group_row(group: Group) -> dict[str, Any]:
    """Machine-readable row: means, sample stds (None for n = 1), accuracies as fractions."""
    runs, s = group.runs, group.first.summary
    row: dict[str, Any] = {
        "model": group.name, "arch": s.get("arch"), "norm": s.get("norm"), "shortcut": s.get("shortcut"),
        "lr": group.lr, "params": s.get("params"), "dataset": s.get("dataset"), "epochs": s.get("epochs"),
        "n": len(runs), "seeds": [r.seed for r in runs],
    }
    for metric in METRICS:
        values = [r.summary.get(metric) for r in runs]
        row[metric], row[f"{metric}_std"] = mean_std([float(v) for v in values if isinstance(v, (int, float))])
    row["verdict"] = combine_verdicts([r.verdict for r in runs])
    row["verdict_at_init"] = combine_verdicts([r.verdict_at_init for r in runs])
    row["complete"] = all(r.summary.get("status") == "complete" for r in runs)
    row["epochs_completed"] = [r.summary.get("epochs_completed") for r in runs]
    row["runs"] = [str(r.path) for r in runs]
    return row


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean (None when empty) and sample std (None below two values)."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def combine_verdicts(verdicts: Sequence[str | None]) -> str | None:
    """One verdict when the runs agree, else each with its count: ``vanishing x1, healthy x1``."""
    known = [v for v in verdicts if v]
    if not known:
        return None
    counts = {v: known.count(v) for v in dict.fromkeys(known)}
    if len(counts) == 1:
        return known[0]
    return ", ".join(f"{v} x{n}" for v, n in counts.items())


def paired_diff(groups: Sequence[Group], a: str, b: str, metrics: Sequence[str] = ("test_acc", "val_acc")
                ) -> dict[str, Any]:
    """Mean ± std over shared seeds of the per-seed difference ``a - b`` in each metric."""
    ga, gb = find_group(groups, a), find_group(groups, b)
    runs_a = {r.seed: r for r in ga.runs}
    runs_b = {r.seed: r for r in gb.runs}
    seeds = [s for s in runs_a if s in runs_b]
    if not seeds:
        raise ReportError(f"--diff: '{ga.name}' (seeds {sorted(runs_a)}) and '{gb.name}' (seeds {sorted(runs_b)}) "
                          "share no seed")
    names = [g.name + (f" lr={fmt_lr(g.lr)}" if ga.lr != gb.lr else "") for g in (ga, gb)]
    out: dict[str, Any] = {"a": names[0], "b": names[1], "lr_a": ga.lr, "lr_b": gb.lr, "seeds": seeds,
                           "n": len(seeds)}
    for metric in metrics:
        diffs = [runs_a[s].summary.get(metric) for s in seeds]
        base = [runs_b[s].summary.get(metric) for s in seeds]
        values = [x - y for x, y in zip(diffs, base) if isinstance(x, (int, float)) and isinstance(y, (int, float))]
        out[f"{metric}_diff"], out[f"{metric}_diff_std"] = mean_std(values)
        out[f"{metric}_diffs"] = values
    return out
