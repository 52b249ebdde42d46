"""``ablate report``: Table-1-style results of finished runs, seeds grouped, plus figures.

Runs whose configuration differs only in the seed (and in what does not change
training: name, device, threads, data folder, gradient-flow recording) form one
*group*, reported as mean ± sample std over its n runs. Each row carries the model
label (``VGG38 BN+RC``, from the labels the components were registered with), norm,
shortcut, learning rate, parameter count, the last epoch's train and validation
loss/accuracy, the test loss/accuracy of the best-validation weights (all from the
run's summary) and the gradient-flow verdict, in the study's order: by learning rate,
then VGG08, VGG38, +BN, +RC, +BN+RC, then anything else.

The modules, one job each:

    runs      find run directories and read them (``Run``, ``find_runs``, ``load_runs``)
    labels    component labels and order, from registration (``model_label``)
    groups    seed groups, their names and order (``Group``, ``group_runs``, ``find_group``)
    stats     every statistic of a group: mean, std, 95% CI, IQM (``group_row``); comparisons between groups
    pairwise  two arms over seeds: bootstrap CIs, P(A better), Wilcoxon and t-tests, Holm, seeds needed
    formats   rows, per-configuration summaries and comparisons as terminal tables, Markdown, CSV and JSON
    plots     per-run and overlay figures (validation curves: mean and 95% CI band over seeds)

This module puts them together: ``build_report`` and ``write_report``, which prints,
writes ``report.md`` and the overlay figures, and refreshes each run's own figures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ablate import rundir
from ablate.report.formats import (
    ARM_NOTE,
    HEADERS,
    arm_rows,
    comparison_note,
    comparison_rows,
    comparisons_csv,
    csv_table,
    display_rows,
    fmt_lr,
    fmt_params,
    fmt_value,
    json_report,
    markdown_report,
    markdown_table,
    metric_title,
    rich_cells,
    rich_table,
    table_notes,
)
from ablate.report.groups import Group, comparison_pairs, find_group, group_runs
from ablate.report.labels import model_label
from ablate.report.pairwise import Comparison
from ablate.report.runs import METRICS, ReportError, Run, find_runs, load_runs
from ablate.report.stats import check_metric, compare_groups, group_row

__all__ = [
    "HEADERS", "METRICS", "Comparison", "Group", "Report", "ReportError", "Run", "build_report", "compare_groups",
    "comparison_pairs", "csv_table", "default_out", "display_rows", "find_group", "find_runs", "fmt_lr", "fmt_params",
    "fmt_value", "group_row", "group_runs", "load_runs", "markdown_table", "model_label", "rich_table", "write_report",
]
DEFAULT_METRIC = "test_acc"
FORMATS = ("table", "md", "csv", "json")


@dataclass
class Report:
    runs: list[Run]
    groups: list[Group]
    rows: list[dict[str, Any]]
    metric: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """One line each: runs skipped, copies counted once, recipes unreadable, environments that differ."""

    def markdown(self) -> str:
        return markdown_report(self.rows, self.metric, self.comparisons)

    def json(self) -> str:
        return json_report(self.rows, self.metric, self.comparisons)

    def csv(self) -> str:
        """The comparisons when there are any, else the rows."""
        return comparisons_csv(self.comparisons) if self.comparisons else csv_table(self.rows, self.metric)


def build_report(paths: Iterable[str | Path], compare: Sequence[Sequence[str]] = (), baseline: str | None = None,
                 metric: str | None = None) -> Report:
    """Load the runs under ``paths``, group them, compute their rows and the comparisons asked for.

    ``compare`` holds (A, B) pairs, ``baseline`` an arm compared with every other one; ``metric``
    (any numeric summary key) is the one compared and summarised per configuration, by default
    the test accuracy when there are comparisons or several seeds.
    """
    warnings: list[str] = []
    runs = load_runs(paths, warnings)
    if metric is not None:
        check_metric(runs, metric)
    groups = group_runs(runs)
    pairs = _comparable(comparison_pairs(groups, compare, baseline), warnings)
    shown = metric or (DEFAULT_METRIC if pairs or any(len(g.runs) > 1 for g in groups) else None)
    rows = [group_row(g, (shown,) if shown else ()) for g in groups]
    comparisons = compare_groups(pairs, shown) if pairs and shown else []
    for row in rows:
        if row["environment_differs"]:
            warnings.append(f"'{row['model']}': its runs differ in {'; '.join(row['environment_differs'])} "
                            f"(different floating-point sums; marked †)")
        if row["diverged"]:
            warnings.append(f"'{row['model']}': {row['status']}; left out of its statistics")
    return Report([run for g in groups for run in g.runs], groups, rows, shown, comparisons, warnings=warnings)


def _comparable(pairs: Sequence[tuple[Group, Group]], warnings: list[str]) -> list[tuple[Group, Group]]:
    """The pairs whose arms both have a run that did not diverge; one warning for each other pair."""
    kept = []
    for a, b in pairs:
        gone = [g.first.group_name or g.name for g in (a, b) if all(run.diverged for run in g.runs)]
        if gone:
            warnings.append(f"'{a.first.group_name or a.name}' vs '{b.first.group_name or b.name}': not compared, "
                            f"every run of {' and '.join(repr(name) for name in gone)} diverged")
        else:
            kept.append((a, b))
    return kept


def default_out(paths: Sequence[str | Path]) -> Path:
    """The first argument when it is a folder of runs, else ``./report``."""
    first = Path(paths[0])
    return first if first.is_dir() and not rundir.is_run(first) else Path("report")


def write_report(paths: Sequence[str | Path], out: Path | None = None, fmt: str = "table",
                 compare: Sequence[Sequence[str]] = (), baseline: str | None = None, metric: str | None = None,
                 figures: bool = True, formats: Sequence[str] = ("png",), console: Any = None, log: bool = True) -> Report:
    """Print the report in ``fmt`` (table, md, csv, json); write ``report.md`` and figures into ``out``."""
    from rich.console import Console

    if fmt not in FORMATS:
        raise ReportError(f"--format {fmt!r}: choose one of table, md, csv, json")
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    report = build_report(paths, compare, baseline, metric)
    _print_warnings(report.warnings)
    out = Path(out) if out is not None else default_out(paths)
    if figures:
        _write_figures(report, out, formats, log)
    if fmt == "json":
        print(report.json())
    elif fmt == "csv":
        print(report.csv(), end="")
    elif fmt == "md":
        print(report.markdown(), end="")
    else:
        _print_table(report, out, console)
    return report


def _print_warnings(warnings: Sequence[str]) -> None:
    """Each on stderr, so that ``--format json|csv`` output stays machine-readable."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True)
    for line in warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


def _write_figures(report: Report, out: Path, formats: Sequence[str], log: bool) -> None:
    """Each run's own figures (where stale), the overlays and ``report.md``, into ``out``."""
    from ablate.report.plots import write_overlay_figures, write_run_figures

    out.mkdir(parents=True, exist_ok=True)
    for run in report.runs:
        try:
            write_run_figures(run.path, label=run.group_name, formats=formats, log=log, only_if_stale=True)
        except OSError:
            pass  # a read-only run directory keeps its figures as they are
    trained = [run for run in report.runs if not run.diverged]  # the overlays are statistics too: mean and CI
    report.figures = write_overlay_figures(trained, out, formats=formats)
    _write_markdown(report, out)


def _print_table(report: Report, out: Path, console: Any) -> None:
    console.print(rich_table(report.rows, title=f"{len(report.runs)} run(s) in {len(report.groups)} configuration(s)"))
    console.print("Accuracies in %; train/val: last epoch; test: best-validation weights; mean ± std over n seeds.",
                  style="dim", highlight=False)
    for note in table_notes(report.rows):
        console.print(note.replace("\\*", "*"), style="dim", highlight=False, markup=False)
    if report.metric:
        headers, cells = arm_rows(report.rows, report.metric)
        console.print(rich_cells(headers, cells, f"{metric_title(report.metric)} per configuration", left=(0,)))
        console.print(ARM_NOTE, style="dim", highlight=False)
    if report.comparisons:
        headers, cells = comparison_rows(report.comparisons)
        title = f"Comparisons: {metric_title(report.metric or '')}"
        console.print(rich_cells(headers, cells, title, left=(0, 1, len(headers) - 1)))
        console.print(comparison_note(report.comparisons), style="dim", highlight=False)
    if report.figures:
        console.print(f"figures and report.md in {out}", highlight=False)


def _write_markdown(report: Report, out: Path) -> None:
    from ablate.files import atomic_write_text

    text = "# Results\n\n" + report.markdown()
    images = [p for p in report.figures if p.suffix == ".png"]
    if images:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n"
    atomic_write_text(out / "report.md", text)
