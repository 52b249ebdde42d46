"""``ablate report``: a Table-1-style table of runs (seeds grouped), comparisons between arms over seeds, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ablate.registry import AblateError


def report(
    paths: list[Path] = typer.Argument(..., help="Run directories, or folders holding runs (searched recursively)."),
    out: Optional[Path] = typer.Option(None, help="Folder for report.md and the overlay figures "
                                                  "(default: the first argument if it holds runs, else ./report)."),
    format_: str = typer.Option("table", "--format", "-f",
                                help="table (terminal), md, csv or json (csv: the comparisons when there are any, else the rows)."),
    compare: Optional[tuple[str, str]] = typer.Option(
        None, "--compare", metavar="A B",
        help='Compare arm A with arm B over their shared seeds, e.g. --compare "VGG38 BN+RC" "VGG38 RC" '
             '(add lr=1e-2 to a name if needed).'),
    diff: Optional[tuple[str, str]] = typer.Option(None, "--diff", metavar="A B", help="The same as --compare A B."),
    baseline: Optional[str] = typer.Option(None, help='Compare every other arm with this one, e.g. --baseline "VGG38 RC".'),
    metric: Optional[str] = typer.Option(None, help="Summary key to compare and summarise per arm (default test_acc: "
                                                    "test accuracy of the best-validation weights)."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write figures (overlays and each run's own)."),
    figure_format: list[str] = typer.Option(["png"], "--figure-format", help="png, svg or pdf (repeatable)."),
    scale: str = typer.Option("log", help="y scale of the per-run gradient-flow figure: log or linear."),
) -> None:
    """Tabulate runs like the study's Table 1 and draw their figures."""
    from ablate.report import write_report

    if scale not in ("log", "linear"):
        raise AblateError(f"--scale {scale!r}: choose log or linear")
    formats = [f.strip() for item in figure_format for f in item.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise AblateError(f"--figure-format {bad[0]!r}: choose png, svg or pdf")
    write_report(paths, out=out, fmt=format_, compare=[pair for pair in (compare, diff) if pair], baseline=baseline, metric=metric,
                 figures=figures, formats=formats, log=scale == "log")
