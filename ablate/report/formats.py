"""The report's rows as text: terminal table (rich), Markdown, CSV, JSON, and the paired-difference line."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import TYPE_CHECKING, Any, Sequence

from ablate.report.runs import METRICS

if TYPE_CHECKING:
    from rich.table import Table

HEADERS = {"train_loss": "Train loss", "train_acc": "Train acc", "val_loss": "Val loss", "val_acc": "Val acc",
           "test_loss": "Test loss", "test_acc": "Test acc"}
FOOTNOTE = ("Accuracies in %; train and validation values are the last epoch's, test values those of the "
            "best-validation weights; mean ± sample std over n seeds.")
UNFINISHED = "\\* unfinished: at least one run of the row has not completed its epochs"


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
               "Grad flow", "n"]
    cells = []
    for row in rows:
        name = row["model"] + ("" if row["complete"] else " *")
        cells.append([name, row["norm"], row["shortcut"], fmt_lr(row["lr"]), fmt_params(row["params"]), *(fmt_value(row, m) for m in METRICS),
                      row["verdict"] or "–", str(row["n"])])
    return headers, cells


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    headers, cells = display_rows(rows)
    align = ["---", "---", "---", "---:", "---:", *["---:"] * len(METRICS), "---", "---:"]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def markdown_report(rows: Sequence[dict[str, Any]], diff: dict[str, Any] | None = None) -> str:
    """The Markdown table with its notes and, if given, the paired difference."""
    text = markdown_table(rows)
    if any(not r["complete"] for r in rows):
        text += f"\n{UNFINISHED}\n"
    text += f"\n{FOOTNOTE}\n"
    if diff:
        text += "\n" + diff_text(diff) + "\n"
    return text


def json_report(rows: Sequence[dict[str, Any]], diff: dict[str, Any] | None = None) -> str:
    """The rows as a JSON list, or ``{"rows": ..., "diff": ...}`` with a paired difference."""
    data: Any = rows if diff is None else {"rows": rows, "diff": diff}
    return json.dumps(data, indent=2, default=str)


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = ["model", "arch", "norm", "shortcut", "lr", "params", "dataset", "epochs", "n", "seeds",
               *(c for m in METRICS for c in (m, f"{m}_std")), "verdict", "verdict_at_init", "complete", "runs"]
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
        table.add_column(header, justify="left" if i in (0, 1, 2, len(headers) - 2) else "right", no_wrap=i == 0)
    colour = {"vanishing": "red", "exploding": "magenta", "healthy": "green"}
    for row, line in zip(rows, cells):
        verdict = line[-2]
        line = [escape(cell) for cell in line]
        if verdict in colour:
            line = [*line[:-2], f"[{colour[verdict]}]{verdict}[/]", line[-1]]
        table.add_row(*line)
    return table


def diff_text(diff: dict[str, Any]) -> str:
    """One line: ``A − B over n shared seed(s) (...): test acc +x ± y points; val acc ...``."""
    parts = []
    for metric in ("test_acc", "val_acc"):
        mean, std = diff.get(f"{metric}_diff"), diff.get(f"{metric}_diff_std")
        if mean is None:
            continue
        text = f"{100 * mean:+.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")
        parts.append(f"{metric.replace('_', ' ')} {text} points")
    seeds = ", ".join(map(str, diff["seeds"]))
    return f"{diff['a']} − {diff['b']} over {diff['n']} shared seed(s) ({seeds}): " + "; ".join(parts)
