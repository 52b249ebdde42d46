"""``ablate report``: Table-1-style results of finished runs, seeds grouped, plus figures.

``find_runs`` turns run directories, or folders holding runs at any depth, into run
directories (each has a ``summary.json``). Runs whose configuration differs only in
the seed (and in what does not change training: name, device, threads, data folder,
gradient-flow recording) form one *group*, reported as mean ± sample std over its n
runs. Each row carries the model label (``VGG38 BN+RC``: norm ``bn`` -> BN, shortcut
``identity`` -> RC, ``zeropad`` -> RC(pad), ``proj`` -> RC(proj), other names
verbatim), norm, shortcut, learning rate, parameter count, the last epoch's train and
validation loss/accuracy, the test loss/accuracy of the best-validation weights (all
from ``summary.json``) and the gradient-flow verdict. Rows follow the study's order:
by learning rate, then VGG08, VGG38, +BN, +RC, +BN+RC, then anything else.

``paired_diff`` compares two groups over their shared seeds (mean ± std of the per-seed
difference). ``write_report`` does it all: prints, writes ``report.md`` and the
overlay figures (``ablate.report.plots``), and refreshes each run's own figures.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

from ablate import rundir
from ablate.registry import AblateError

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
HEADERS = {"train_loss": "Train loss", "train_acc": "Train acc", "val_loss": "Val loss", "val_acc": "Val acc",
           "test_loss": "Test loss", "test_acc": "Test acc"}
NORM_LABELS = {"bn": "BN", "none": ""}
SHORTCUT_LABELS = {"identity": "RC", "zeropad": "RC(pad)", "proj": "RC(proj)", "none": ""}
NORM_ORDER = {"none": 0, "bn": 1}
SHORTCUT_ORDER = {"none": 0, "identity": 1, "zeropad": 2, "proj": 3}
SECTION_ORDER = {"model": 0, "train": 1, "callbacks": 2, "data": 3}


class ReportError(AblateError):
    pass


def model_label(arch: str, norm: str = "none", shortcut: str = "none") -> str:
    """``vgg38, bn, identity`` -> ``VGG38 BN+RC``; unknown names are shown verbatim."""
    name = arch.upper() if re.fullmatch(r"vgg\d*", arch, re.IGNORECASE) else arch
    parts = [NORM_LABELS.get(norm, norm), SHORTCUT_LABELS.get(shortcut, shortcut)]
    extras = "+".join(p for p in parts if p)
    return f"{name} {extras}" if extras else name


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each a run itself or a folder searched recursively."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path}: no such directory")
        if rundir.is_run(path):
            found[path] = None
            continue
        runs = rundir.runs_below(path)
        if not runs:
            raise ReportError(f"{path}: no runs found (no {rundir.SUMMARY} in it or below)")
        found.update(dict.fromkeys(runs))
    return list(found)


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any] | None = None
    group_name: str = ""

    @classmethod
    def load(cls, path: Path) -> "Run":
        try:
            summary = rundir.read_summary(path)
        except AblateError as exc:
            raise ReportError(str(exc)) from None
        if not isinstance(summary, dict) or "params" not in summary:
            raise ReportError(f"{path}: {rundir.SUMMARY} is not an ablate run summary (no 'params' field)")
        return cls(path, summary, rundir.read_recipe(path))

    @property
    def label(self) -> str:
        s = self.summary
        return model_label(str(s.get("arch", "?")), str(s.get("norm", "none")), str(s.get("shortcut", "none")))

    @property
    def seed(self) -> Any:
        return self.summary.get("seed")

    @cached_property
    def key(self) -> str:
        """The configuration without the seed (and what does not change training), as JSON."""
        if self.config is not None:
            return json.dumps(_strip(self.config), sort_keys=True, default=str)
        s = self.summary
        fields = {k: s.get(k) for k in ("arch", "norm", "shortcut", "lr", "epochs", "dataset", "sizes")}
        return json.dumps(fields, sort_keys=True, default=str)

    @property
    def verdict(self) -> str | None:
        gradflow = self.summary.get("gradflow")
        return gradflow.get("verdict") if isinstance(gradflow, dict) else None

    @property
    def verdict_at_init(self) -> str | None:
        gradflow = self.summary.get("gradflow")
        at_init = gradflow.get("at_init") if isinstance(gradflow, dict) else None
        return at_init.get("verdict") if isinstance(at_init, dict) else None


def _strip(config: dict[str, Any]) -> dict[str, Any]:
    """A run's identity (``ablate.recipe.identity``) without its seed and plugin requirements."""
    from ablate.recipe import identity

    out = {k: v for k, v in identity(config).items() if k != "required_plugins"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "seed"}
    return out


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass
class Group:
    """Runs of one configuration (different seeds)."""

    runs: list[Run]
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def label(self) -> str:
        return self.first.label

    @property
    def lr(self) -> float | None:
        return self.first.summary.get("lr")

    def sort_key(self) -> tuple:
        s = self.first.summary
        arch = str(s.get("arch", ""))
        depth = re.fullmatch(r"vgg(\d+)", arch, re.IGNORECASE)
        return (self.lr if self.lr is not None else math.inf,
                (0, int(depth.group(1)), "") if depth else (1, 0, arch),
                SHORTCUT_ORDER.get(s.get("shortcut"), 9), str(s.get("shortcut")),
                NORM_ORDER.get(s.get("norm"), 9), str(s.get("norm")), self.name)

    def row(self) -> dict[str, Any]:
        """Machine-readable row: means, sample stds (None for n = 1), accuracies as fractions."""
        s = self.first.summary
        row: dict[str, Any] = {
            "model": self.name, "arch": s.get("arch"), "norm": s.get("norm"), "shortcut": s.get("shortcut"),
            "lr": self.lr, "params": s.get("params"), "dataset": s.get("dataset"), "epochs": s.get("epochs"),
            "n": len(self.runs), "seeds": [r.seed for r in self.runs],
        }
        for metric in METRICS:
            values = [r.summary.get(metric) for r in self.runs]
            values = [float(v) for v in values if isinstance(v, (int, float))]
            row[metric] = statistics.fmean(values) if values else None
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        row["verdict"] = _combine([r.verdict for r in self.runs])
        row["verdict_at_init"] = _combine([r.verdict_at_init for r in self.runs])
        row["complete"] = all(r.summary.get("status") == "complete" for r in self.runs)
        row["epochs_completed"] = [r.summary.get("epochs_completed") for r in self.runs]
        row["runs"] = [str(r.path) for r in self.runs]
        return row


def _combine(verdicts: Sequence[str | None]) -> str | None:
    known = [v for v in verdicts if v]
    if not known:
        return None
    counts = {v: known.count(v) for v in dict.fromkeys(known)}
    if len(counts) == 1:
        return known[0]
    return ", ".join(f"{v} x{n}" for v, n in counts.items())


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    return [Run.load(p) for p in find_runs(paths)]


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by configuration-but-seed, in the study's order, with unique names."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    groups = [Group(sorted(members, key=lambda r: (str(type(r.seed)), r.seed))) for members in by_key.values()]
    _name_groups(groups)
    groups.sort(key=Group.sort_key)
    lrs: dict[str, set] = {}
    for group in groups:
        lrs.setdefault(group.name, set()).add(group.lr)
    for group in groups:  # figures' legends: the name, with the lr where the name alone is ambiguous
        legend = group.name + (f" lr={fmt_lr(group.lr)}" if len(lrs[group.name]) > 1 else "")
        for run in group.runs:
            run.group_name = legend
    return groups


def _name_groups(groups: list[Group]) -> None:
    """Name = model label; groups that share label and lr get the config keys that tell them apart."""
    clashes: dict[tuple[str, Any], list[Group]] = {}
    for group in groups:
        group.name = group.label
        clashes.setdefault((group.label, group.lr), []).append(group)
    for members in clashes.values():
        if len(members) < 2:
            continue
        flats = [_flat(json.loads(g.first.key)) for g in members]
        keys = sorted({k for f in flats for k in f if len({json.dumps(x.get(k), default=str) for x in flats}) > 1},
                      key=lambda k: (SECTION_ORDER.get(k.split(".")[0], 9), k))
        for group, flat in zip(members, flats):
            shown = [f"{k.split('.')[-1]}={flat.get(k, 'default')}" for k in keys[:3]]
            group.extra = {k: flat.get(k) for k in keys}
            group.name = f"{group.label} [{', '.join(shown)}]" if shown else group.label
        seen: dict[str, int] = {}
        for group in members:  # still equal when they differ only beyond the first three keys
            seen[group.name] = seen.get(group.name, 0) + 1
            if seen[group.name] > 1:
                group.name += f" #{seen[group.name]}"


# -- formatting -----------------------------------------------------------------------------

def fmt_params(n: Any) -> str:
    """Exact parameter counts, as Table 1 is checked against them: 59,716."""
    return f"{int(n):,}" if isinstance(n, (int, float)) else "–"


def fmt_lr(lr: Any) -> str:
    if not isinstance(lr, (int, float)):
        return "–"
    text = f"{lr:.0e}" if lr == float(f"{lr:.0e}") else f"{lr:.2g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'-' if m.group(1) == '-' else ''}{m.group(2)}", text)


def fmt_value(row: dict[str, Any], metric: str) -> str:
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


def rich_table(rows: Sequence[dict[str, Any]], title: str | None = None):
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


# -- paired differences ------------------------------------------------------------------------

def find_group(groups: Sequence[Group], name: str) -> Group:
    """The group called ``name``: its row name, its label if unique, or ``label lr=X``."""
    wanted = name.strip().lower()
    exact = [g for g in groups if g.name.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = [g for g in groups if g.label.lower() == wanted or f"{g.name} lr={fmt_lr(g.lr)}".lower() == wanted
               or f"{g.label} lr={fmt_lr(g.lr)}".lower() == wanted]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(f"'{g.name} lr={fmt_lr(g.lr)}'" for g in (matches or groups))
    what = "is ambiguous" if matches else "matches no configuration"
    raise ReportError(f"--diff {name!r} {what}; choose one of: {choices}")


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
        out[f"{metric}_diff"] = statistics.fmean(values) if values else None
        out[f"{metric}_diff_std"] = statistics.stdev(values) if len(values) > 1 else None
        out[f"{metric}_diffs"] = values
    return out


def diff_text(diff: dict[str, Any]) -> str:
    parts = []
    for metric in ("test_acc", "val_acc"):
        mean, std = diff.get(f"{metric}_diff"), diff.get(f"{metric}_diff_std")
        if mean is None:
            continue
        text = f"{100 * mean:+.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")
        parts.append(f"{metric.replace('_', ' ')} {text} points")
    seeds = ", ".join(map(str, diff["seeds"]))
    return f"{diff['a']} − {diff['b']} over {diff['n']} shared seed(s) ({seeds}): " + "; ".join(parts)


# -- the whole report -----------------------------------------------------------------------------

@dataclass
class Report:
    runs: list[Run]
    groups: list[Group]
    rows: list[dict[str, Any]]
    diff: dict[str, Any] | None = None
    figures: list[Path] = field(default_factory=list)

    def markdown(self) -> str:
        text = markdown_table(self.rows)
        if any(not r["complete"] for r in self.rows):
            text += "\n\\* unfinished: at least one run of the row has not completed its epochs\n"
        text += ("\nAccuracies in %; train and validation values are the last epoch's, test values those of the "
                 "best-validation weights; mean ± sample std over n seeds.\n")
        if self.diff:
            text += "\n" + diff_text(self.diff) + "\n"
        return text

    def json(self) -> str:
        data: Any = self.rows if self.diff is None else {"rows": self.rows, "diff": self.diff}
        return json.dumps(data, indent=2, default=str)


def build_report(paths: Iterable[str | Path], diff: Sequence[str] | None = None) -> Report:
    runs = load_runs(paths)
    groups = group_runs(runs)
    rows = [g.row() for g in groups]
    result = paired_diff(groups, diff[0], diff[1]) if diff else None
    return Report([run for g in groups for run in g.runs], groups, rows, result)


def default_out(paths: Sequence[str | Path]) -> Path:
    """The first argument when it is a folder of runs, else ``./report``."""
    first = Path(paths[0])
    return first if first.is_dir() and not rundir.is_run(first) else Path("report")


def write_report(paths: Sequence[str | Path], out: Path | None = None, fmt: str = "table",
                 diff: Sequence[str] | None = None, figures: bool = True, formats: Sequence[str] = ("png",),
                 console: Any = None, log: bool = True) -> Report:
    """Print the report in ``fmt`` (table, md, csv, json); write ``report.md`` and figures into ``out``."""
    from rich.console import Console

    if fmt not in ("table", "md", "csv", "json"):
        raise ReportError(f"--format {fmt!r}: choose one of table, md, csv, json")
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    report = build_report(paths, diff)
    out = Path(out) if out is not None else default_out(paths)
    if figures:
        from ablate.report.plots import write_overlay_figures, write_run_figures

        out.mkdir(parents=True, exist_ok=True)
        for run in report.runs:
            try:
                write_run_figures(run.path, label=run.group_name, formats=formats, log=log, only_if_stale=True)
            except OSError:
                pass  # a read-only run directory keeps its figures as they are
        report.figures = write_overlay_figures(report.runs, out, formats=formats)
        _write_markdown(report, out)
    if fmt == "json":
        print(report.json())
    elif fmt == "csv":
        print(csv_table(report.rows), end="")
    elif fmt == "md":
        print(report.markdown(), end="")
    else:
        console.print(rich_table(report.rows, title=f"{len(report.runs)} run(s) in {len(report.groups)} configuration(s)"))
        console.print("Accuracies in %; train/val: last epoch; test: best-validation weights; mean ± std over n seeds.",
                      style="dim", highlight=False)
        if report.diff:
            console.print(diff_text(report.diff), highlight=False)
        if report.figures:
            console.print(f"figures and report.md in {out}", highlight=False)
    return report


def _write_markdown(report: Report, out: Path) -> None:
    from ablate.files import atomic_write_text

    text = "# Results\n\n" + report.markdown()
    images = [p for p in report.figures if p.suffix == ".png"]
    if images:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n"
    atomic_write_text(out / "report.md", text)
