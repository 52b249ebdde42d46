"""The report as text: the rows, the per-configuration summary and the comparisons as terminal tables (rich),
Markdown, CSV and JSON. Nothing here computes a statistic; ``ablate.report.stats`` and ``pairwise`` do."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, Sequence

from ablate.report.pairwise import ALPHA, EXACT_UP_TO, MIN_SEEDS, RESAMPLES, Comparison
from ablate.report.runs import METRICS

if TYPE_CHECKING:
    from rich.table import Table

HEADERS = {"train_loss": "Train loss", "train_acc": "Train acc", "val_loss": "Val loss", "val_acc": "Val acc",
           "test_loss": "Test loss", "test_acc": "Test acc"}
FOOTNOTE = ("Accuracies in %; train and validation values are the last epoch's, test values those of the "
            "best-validation weights; mean ± sample std over n seeds.")
ARM_NOTE = ("mean, sample std, 95% confidence interval of the mean (Student t) and, from 5 seeds on, the "
            "interquartile mean (mean of the middle half).")
UNFINISHED = "\\* unfinished: at least one run of the row has not completed its epochs"
DIVERGED_NOTE = "diverged: runs whose loss was non-finite or above 1e4 in most steps of an epoch; left out of n and every statistic"
DIFFERS = "†"
DIFFERS_NOTE = (f"{DIFFERS} the runs of the row differ in thread count or torch version (same recipe, different "
                "floating-point sums): their spread is not the seeds' alone")


def fmt_params(n: Any) -> str:
    """Exact parameter counts, as Table 1 is checked against them: 59,716."""
    return f"{int(n):,}" if isinstance(n, (int, float)) else "–"


def fmt_lr(lr: Any) -> str:
    """Learning rates as the study writes them: ``1e-3``, ``0.0015``."""
    if not isinstance(lr, (int, float)):
        return "–"
    text = f"{lr:.0e}" if lr == float(f"{lr:.0e}") else f"{lr:.2g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'-' if m.group(1) == '-' else ''}{m.group(2)}", text)


def fmt_value(row: dict[str, Any], metric: str) -> str:
    """``mean ± std`` of one metric, accuracies in percent; ``–`` when missing."""
    mean, std = row.get(metric), row.get(f"{metric}_std")
    if mean is None:
        return "–"
    scale, digits = (100, 2) if metric.endswith("_acc") else (1, 3)
    text = f"{scale * mean:.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if std is not None else "")


def display_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for the terminal and Markdown (accuracies in percent)."""
    headers = ["Model", "Norm", "Shortcut", "LR", "Params", *(HEADERS[m] + (" %" if m.endswith("_acc") else "") for m in METRICS),
               "Grad flow", "n", "Status"]
    cells = []
    for row in rows:
        name = row["model"] + ("" if row["complete"] else " *") + (f" {DIFFERS}" if row.get("environment_differs") else "")
        cells.append([name, row["norm"], row["shortcut"], fmt_lr(row["lr"]), fmt_params(row["params"]), *(fmt_value(row, m) for m in METRICS),
                      row["verdict"] or "–", str(row["n"]), row.get("status", "complete")])
    return headers, cells


def table_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The notes the rows need: unfinished, diverged, differing environments."""
    notes = [UNFINISHED] if any(not r["complete"] for r in rows) else []
    notes += [DIVERGED_NOTE] if any(r.get("diverged") for r in rows) else []
    return notes + ([DIFFERS_NOTE] if any(r.get("environment_differs") for r in rows) else [])


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    headers, cells = display_rows(rows)
    return pipe_table(headers, cells, ["---", "---", "---", "---:", "---:", *["---:"] * len(METRICS), "---", "---:", "---"])


def pipe_table(headers: Sequence[str], cells: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    """A Markdown table; ``align`` holds ``---`` or ``---:`` per column."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def markdown_report(rows: Sequence[dict[str, Any]], metric: str | None = None,
                    comparisons: Sequence[Comparison] = ()) -> str:
    """The Markdown table with its notes, the per-configuration summary of ``metric`` and the comparisons."""
    text = markdown_table(rows)
    for note in table_notes(rows):
        text += f"\n{note}\n"
    text += f"\n{FOOTNOTE}\n"
    if metric:
        headers, cells = arm_rows(rows, metric)
        text += f"\n**{metric_title(metric)} per configuration**\n\n"
        text += pipe_table(headers, cells, ["---", "---:", "---:", "---:", "---:", "---:", "---:"])
        text += f"\n{ARM_NOTE}\n"
    if comparisons:
        headers, cells = comparison_rows(comparisons)
        text += f"\n**Comparisons: {metric_title(comparisons[0].metric)}**\n\n"
        text += pipe_table(headers, cells, ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---"])
        text += "\n" + comparison_note(comparisons) + "\n"
    return text


def json_report(rows: Sequence[dict[str, Any]], metric: str | None = None, comparisons: Sequence[Comparison] = ()) -> str:
    """The rows as a JSON list, or ``{"metric": ..., "rows": ..., "comparisons": ...}`` with comparisons."""
    data: Any = rows if not comparisons else {"metric": metric, "rows": rows,
                                              "comparisons": [asdict(c) for c in comparisons]}
    return json.dumps(data, indent=2, default=str)


def csv_table(rows: Sequence[dict[str, Any]], metric: str | None = None) -> str:
    """The rows as CSV: per metric (and ``metric``) its mean, std, 95% CI and IQM."""
    metrics = dict.fromkeys([*METRICS, *([metric] if metric else [])])
    columns = ["model", "arch", "norm", "shortcut", "lr", "params", "dataset", "epochs", "n", "seeds",
               *(f"{m}{suffix}" for m in metrics for suffix in ("", "_std", "_ci_low", "_ci_high", "_iqm")),
               "verdict", "verdict_at_init", "complete", "status", "diverged", "environment_differs", "runs"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else "" if v is None else v)
                         for k, v in row.items()})
    return buf.getvalue()


def rich_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """The rows as a ``rich.table.Table``, verdicts coloured."""
    from rich.markup import escape
    from rich.table import Table

    headers, cells = display_rows(rows)
    table = Table(title=title, show_lines=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in (0, 1, 2, len(headers) - 3, len(headers) - 1) else "right",
                         no_wrap=i == 0)
    colour = {"vanishing": "red", "exploding": "magenta", "healthy": "green"}
    for row, line in zip(rows, cells):
        verdict, status = line[-3], line[-1]
        line = [escape(cell) for cell in line]
        if verdict in colour:
            line[-3] = f"[{colour[verdict]}]{verdict}[/]"
        if status != "complete":
            line[-1] = f"[{'magenta' if 'diverged' in status else 'yellow'}]{escape(status)}[/]"
        table.add_row(*line)
    return table


def rich_cells(headers: Sequence[str], cells: Sequence[Sequence[str]], title: str, left: Sequence[int]) -> Table:
    """A plain ``rich`` table, the columns ``left`` left-aligned; comparison verdicts (the last cell) coloured."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in left else "right")
    for line in cells:
        last = escape(line[-1])
        style = "green" if " better" in last else "yellow" if last.startswith("too few") else ""
        table.add_row(*(escape(c) for c in line[:-1]), f"[{style}]{last}[/]" if style else last)
    return table


def metric_title(metric: str) -> str:
    """``test_acc`` -> ``Test acc %``; other keys as they are."""
    return HEADERS.get(metric, metric) + (" %" if metric.endswith("_acc") else "")


def fmt_metric(value: float | None, metric: str, signed: bool = False) -> str:
    """One value of ``metric``: accuracies in percent (points for differences), losses to 3 decimals, else 4 digits."""
    if value is None:
        return "–"
    sign = "+" if signed else ""
    if metric.endswith("_acc"):
        return f"{100 * value:{sign}.2f}"
    return f"{value:{sign}.3f}" if "loss" in metric else f"{value:{sign}.4g}"


def fmt_interval(low: float | None, high: float | None, metric: str) -> str:
    return "–" if low is None or high is None else f"[{fmt_metric(low, metric)}, {fmt_metric(high, metric)}]"


def fmt_p(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"


def fmt_seeds(n: int | None) -> str:
    """Seeds needed; beyond ``EXACT_UP_TO`` only that it is more."""
    return "–" if n is None else f"> {EXACT_UP_TO:,}" if n > EXACT_UP_TO else str(n)


def arm_rows(rows: Sequence[dict[str, Any]], metric: str) -> tuple[list[str], list[list[str]]]:
    """Per configuration: n, mean, std, 95% CI of the mean and IQM of ``metric``."""
    headers = ["Model", "LR", "n", "mean", "std", "95% CI", "IQM"]
    cells = [[row["model"], fmt_lr(row["lr"]), str(row["n"]), fmt_metric(row.get(metric), metric),
              fmt_metric(row.get(f"{metric}_std"), metric),
              fmt_interval(row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"), metric),
              fmt_metric(row.get(f"{metric}_iqm"), metric)] for row in rows]
    return headers, cells


def comparison_rows(comparisons: Sequence[Comparison]) -> tuple[list[str], list[list[str]]]:
    """One line per comparison: A, B, n, A − B [CI], P(A better) [CI], p-values (Holm), seeds needed, verdict."""
    headers = ["A", "B", "n", "A − B [95% CI]", "P(A better) [95% CI]", "rank test p (Holm)", "t-test p (Holm)",
               "seeds for 80% power", "verdict"]
    cells = []
    for c in comparisons:
        n = str(c.n_a) if c.paired else f"{c.n_a} + {c.n_b} unpaired"
        diff = fmt_metric(c.diff, c.metric, signed=True) + " " + fmt_interval(c.diff_ci_low, c.diff_ci_high, c.metric)
        p_better = f"{c.p_better:.2f} " + ("–" if c.p_better_ci_low is None else
                                          f"[{c.p_better_ci_low:.2f}, {c.p_better_ci_high:.2f}]")
        cells.append([c.a, c.b, n, diff, p_better, f"{fmt_p(c.rank_p)} ({fmt_p(c.rank_p_holm)})",
                      f"{fmt_p(c.t_p)} ({fmt_p(c.t_p_holm)})", fmt_seeds(c.seeds_needed),
                      c.verdict])
    return headers, cells


def comparison_note(comparisons: Sequence[Comparison]) -> str:
    """What the comparison table's numbers are."""
    c, m = comparisons[0], len(comparisons)
    unit = "percentage points" if c.metric.endswith("_acc") else "the metric's units"
    percentile = any("percentile" in x.ci_method for x in comparisons)
    unpaired = [x for x in comparisons if not x.paired]
    lines = [
        f"{c.metric} ({'higher' if c.higher_is_better else 'lower'} is better); A − B in {unit}, paired over the "
        f"seeds both arms ran; 95% CIs: BCa bootstrap, {RESAMPLES:,} resamples of the seeds (seeded)"
        + ("; the percentile interval where BCa is undefined (every resample equal)" if percentile else "") + ".",
        "P(A better): share of seeds on which A beats B, ties half. Rank test: Wilcoxon signed-rank; t-test: "
        f"paired t; p-values raw (Holm-Bonferroni over the {m} comparison{'s' if m > 1 else ''}).",
        f"Verdict: better when the CI excludes 0 and the Holm-adjusted t-test p < {ALPHA}; at least {MIN_SEEDS} "
        f"seeds. Seeds for 80% power: paired t-test at alpha = {ALPHA}/{m}, taking the observed mean and SD of the "
        "differences as true (a planning figure).",
    ]
    if unpaired:
        names = "; ".join(f"{x.a} vs {x.b}" for x in unpaired)
        lines.append(f"Unpaired (no shared seeds): {names}: difference of means, Mann-Whitney U and Welch t, "
                     "P(A better) over all pairs of runs, seeds per arm.")
    return "\n".join(lines)


def comparisons_csv(comparisons: Sequence[Comparison]) -> str:
    """One CSV line per comparison with every number (seeds joined by ``;``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(Comparison)], lineterminator="\n")
    writer.writeheader()
    for c in comparisons:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else "" if v is None else v)
                         for k, v in asdict(c).items()})
    return buf.getvalue()
