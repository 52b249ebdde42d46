"""Figures of runs: training curves of one run, and overlays across runs (the report's).

Per run (``write_run_figures``, into the run's figures folder, ``ablate.rundir.FIGURES``):

    training_curves.png   loss and accuracy per epoch, train and validation (Figures 1, 4)
    gradient_flow.png     mean |g| per layer, one line per selected epoch (Figures 2, 3, 5)
    gradient_heatmap.png  mean |g| per layer and epoch, log colour scale
    signal_propagation.png  forward statistics per block, one line per epoch (``[gradflow] signal``)

Across runs (``write_overlay_figures``, into the report's folder):

    curves.png            validation loss and accuracy per epoch of every run
    gradient_flow.png     mean |g| per layer against relative depth (0 = entry conv,
                          1 = classifier) at initialisation and in the last epoch,
                          on one shared log axis, so VGG38 and VGG38 BN+RC sit side by side
    signal_propagation.png  forward statistics per block at initialisation, one line per run
                          (runs that recorded ``signal.csv``)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ablate import rundir
from ablate.diagnose.record import load_signal
from ablate.gradflow.plots import (
    new_figure,
    plot_gradient_flow,
    plot_gradient_heatmap,
    positive,
    save,
)
from ablate.gradflow.stats import load_gradflow

if TYPE_CHECKING:
    from ablate.report.runs import Run


def plot_training_curves(rows: Sequence[dict[str, float]], stem: Path, *, title: str = "Training curves",
                         formats: Iterable[str] = ("png",)) -> list[Path]:
    """Two panels, cross-entropy and accuracy (%) per epoch, train and validation."""
    epochs = [int(r["epoch"]) for r in rows]
    fig = new_figure(10, 4.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split, style in (("train", "-"), ("val", "--")):
        name = "training" if split == "train" else "validation"
        loss_ax.plot(epochs, [r[f"{split}_loss"] for r in rows], style, marker=".", label=name)
        acc_ax.plot(epochs, [100 * r[f"{split}_acc"] for r in rows], style, marker=".", label=name)
    _integer_epochs(loss_ax, acc_ax)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="(a) loss per epoch")
    _log_if_wide(loss_ax)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="(b) accuracy per epoch")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, stem, formats)


def write_run_figures(run_dir: Path, *, label: str | None = None, formats: Iterable[str] = ("png",),
                      log: bool = True, only_if_stale: bool = False) -> list[Path]:
    """The three figures of one run into its figures folder (those whose data exists).

    With ``only_if_stale`` a figure is redrawn only when it is missing or older than
    its data (the run's metrics or gradient-flow file, ``ablate.rundir``).
    """

    run_dir = Path(run_dir)
    formats = tuple(formats)
    folder = run_dir / rundir.FIGURES
    name = label or run_dir.name
    out: list[Path] = []

    def stale(stem: str, source: Path) -> bool:
        if not only_if_stale:
            return True
        targets = [folder / f"{stem}.{fmt}" for fmt in formats]
        return any(not t.exists() or t.stat().st_mtime < source.stat().st_mtime for t in targets)

    rows = rundir.read_metrics(run_dir)
    if rows and stale(rundir.CURVES_FIGURE, run_dir / rundir.METRICS):
        out += plot_training_curves(rows, folder / rundir.CURVES_FIGURE, title=f"Training curves: {name}", formats=formats)
    table = load_gradflow(run_dir)
    if table is not None and table.epochs:
        source = run_dir / rundir.GRADFLOW
        if stale(rundir.GRADFLOW_FIGURE, source):
            out += plot_gradient_flow(table, folder / rundir.GRADFLOW_FIGURE, title=f"Gradient flow: {name}", log=log,
                                      formats=formats)
        if stale(rundir.HEATMAP_FIGURE, source):
            out += plot_gradient_heatmap(table, folder / rundir.HEATMAP_FIGURE, title=f"Gradient flow per epoch: {name}",
                                         formats=formats)
    signal = load_signal(run_dir)
    if signal is not None and signal.epochs and stale(rundir.SIGNAL_FIGURE, run_dir / rundir.SIGNAL):
        from ablate.diagnose.plots import plot_signal_propagation

        series = [(f"epoch {e}" if e else "initialisation", signal.epochs[e]) for e in sorted(signal.epochs)]
        out += plot_signal_propagation(series, folder / rundir.SIGNAL_FIGURE, title=f"Signal propagation: {name}",
                                       formats=formats)
    return out


def _log_if_wide(ax) -> None:
    """Log y when the plotted losses span more than two decades (a diverging run hides the rest)."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if y == y and y > 0]
    if ys and max(ys) / min(ys) > 100:
        ax.set_yscale("log")
        ax.set_ylabel(ax.get_ylabel() + " (log scale)")


def _integer_epochs(*axes) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _colours(keys: Sequence[Any]) -> dict[Any, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {key: cmap(i % cmap.N) for i, key in enumerate(keys)}


def _legend_once(ax, line, label: str, seen: set[str]) -> None:
    if label not in seen:
        line.set_label(label)
        seen.add(label)


def plot_curves_overlay(runs: Sequence["Run"], stem: Path, *, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Validation loss and accuracy per epoch: per configuration the mean over its seeds, shaded its 95% CI."""
    from ablate.report.stats import epoch_bands

    curves: dict[str, list[list[dict[str, float]]]] = {}
    for run in runs:
        rows = rundir.read_metrics(run.path)
        if rows:
            curves.setdefault(run.group_name, []).append(rows)
    colour = _colours(list(curves))
    fig = new_figure(11, 4.6)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for name, group in curves.items():
        label = name + (f" (n={len(group)})" if len(group) > 1 else "")
        for ax, key, scale in ((loss_ax, "val_loss", 1), (acc_ax, "val_acc", 100)):
            _band(ax, epoch_bands(group, key), scale, colour[name], label if ax is loss_ax else None)
    _integer_epochs(loss_ax, acc_ax)
    loss_ax.set(xlabel="epoch", ylabel="validation cross-entropy loss", title="(a) validation loss per epoch")
    _log_if_wide(loss_ax)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="(b) validation accuracy per epoch")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
    if curves:
        loss_ax.legend(fontsize=8)
    fig.suptitle("Validation curves: mean over seeds, shaded 95% CI of the mean (one colour per configuration)")
    return save(fig, stem, formats)


def _band(ax, band: Sequence[tuple[int, float, float | None, float | None]], scale: float, colour: Any,
          label: str | None) -> None:
    """The mean line, and the CI shaded where at least two seeds reached the epoch."""
    ax.plot([b[0] for b in band], [scale * b[1] for b in band], color=colour, marker=".", label=label)
    shaded = [(epoch, scale * low, scale * high) for epoch, _, low, high in band if low is not None and high is not None]
    if shaded:
        epochs, lows, highs = zip(*shaded)
        ax.fill_between(epochs, lows, highs, color=colour, alpha=0.2, lw=0)


def plot_gradflow_overlay(runs: Sequence["Run"], stem: Path, *, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Mean |g| per layer against relative depth, at initialisation and in the last epoch, shared log y."""
    groups = list(dict.fromkeys(run.group_name for run in runs))
    colour = _colours(groups)
    fig = new_figure(12, 4.8)
    init_ax, last_ax = fig.subplots(1, 2, sharey=True)
    seen: set[str] = set()
    last_epochs = set()
    any_values = False
    for run in runs:
        table = load_gradflow(run.path)
        if table is None or not table.epochs:
            continue
        n = len(table.layers)
        depth = [i / max(1, n - 1) for i in range(n)]
        for ax, epoch in ((init_ax, 0 if table.has(0) else None), (last_ax, max(table.epochs))):
            if epoch is None or (ax is last_ax and epoch == 0):
                continue
            (line,) = ax.plot(depth, positive(table.profile(epoch)), color=colour[run.group_name], marker=".",
                              lw=1.3, alpha=0.85)
            any_values = True
            if ax is last_ax:
                last_epochs.add(epoch)
                _legend_once(ax, line, run.group_name, seen)
            elif run.group_name not in seen:
                _legend_once(ax, line, run.group_name, seen)
    if any_values:
        init_ax.set_yscale("log")
    which = f"epoch {next(iter(last_epochs))}" if len(last_epochs) == 1 else "each run's last epoch"
    init_ax.set(title="(a) at initialisation", xlabel="relative depth (0 = entry conv, 1 = classifier)",
                ylabel="average gradient, mean |g| (log scale)")
    last_ax.set(title=f"(b) {which} (mean over its steps)", xlabel="relative depth (0 = entry conv, 1 = classifier)")
    for ax in (init_ax, last_ax):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(-0.02, 1.02)
    handles = [h for ax in (init_ax, last_ax) for h in ax.get_lines() if not h.get_label().startswith("_")]
    if handles:
        last_ax.legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle("Gradient flow of all runs (one colour per configuration; seeds share it)")
    return save(fig, stem, formats)


def write_overlay_figures(runs: Sequence["Run"], out: Path, *, formats: Iterable[str] = ("png",)) -> list[Path]:
    formats = tuple(formats)
    paths = plot_curves_overlay(runs, Path(out) / "curves", formats=formats)
    if any((run.path / rundir.GRADFLOW).exists() for run in runs):
        paths += plot_gradflow_overlay(runs, Path(out) / rundir.GRADFLOW_FIGURE, formats=formats)
    series = []
    for run in runs:
        signal = load_signal(run.path)
        if signal is not None and 0 in signal.epochs:
            series.append((run.group_name, signal.epochs[0]))
    if series:
        from ablate.diagnose.plots import plot_signal_propagation

        paths += plot_signal_propagation(series, Path(out) / rundir.SIGNAL_FIGURE, formats=formats,
                                         title="Signal propagation at initialisation (one line per run)")
    return paths
