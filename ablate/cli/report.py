"""``ablate report``: a Table-1-style table of runs (seeds grouped), paired differences, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ablate.registry import AblateError


def report(
    paths: list[Path] = typer.Argument(..., help="Run directories, or folders holding runs (searched recursively)."),
    out: Optional[Path] = typer.Option(None, help="Folder for report.md and the overlay figures "
                                                  "(default: the first argument if it holds runs, else ./report)."),
    format_: str = typer.Option("table", "--format", "-f", help="table (terminal), md, csv or json."),
    diff: Optional[tuple[str, str]] = typer.Option(
        None, "--diff", metavar="A B",
        help='Paired difference A - B over shared seeds, e.g. --diff "VGG38 BN+RC" "VGG38" (add lr=1e-2 if needed).'),
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
    write_report(paths, out=out, fmt=format_, diff=list(diff) if diff else None, figures=figures,
                 formats=formats, log=scale == "log")
