"""Gradient-flow figures of one run, in the study's style (Figures 2, 3 and 5).

``plot_gradient_flow``: mean |g| per layer (layer names on the x axis, input to
output), one line per selected epoch coloured by epoch, the profile at initialisation
dashed; log y axis by default. ``plot_gradient_heatmap``: layers x epochs with a log
colour scale. Both draw on a bare ``matplotlib.figure.Figure`` (the Agg canvas; pyplot
and its global state are never touched) and save one file per requested format
(``png``, ``svg``, ``pdf``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

from ablate.gradflow.stats import GradFlowTable

FORMATS = ("png", "svg", "pdf")
DPI = 120
STAT_LABELS = {
    "grad_mean_abs": "average gradient, mean |g|", "grad_norm": "gradient L2 norm ||g||",
    "grad_max_abs": "max |g|", "weight_mean_abs": "mean |w|", "weight_norm": "weight L2 norm ||w||",
    "weight_max_abs": "max |w|",
}


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig, stem: Path, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Write ``stem.<format>`` for each format; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"figure format {fmt!r} is not supported; choose from {', '.join(FORMATS)}")
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=DPI)
        out.append(path)
    return out


def select_epochs(epochs: Sequence[int], max_lines: int = 10) -> list[int]:
    """At most ``max_lines`` epochs, evenly spread, always with the first and the last."""
    epochs = sorted(epochs)
    if len(epochs) <= max_lines:
        return epochs
    picks = {epochs[round(i * (len(epochs) - 1) / (max_lines - 1))] for i in range(max_lines)}
    return sorted(picks)


def positive(values: Sequence[float]) -> list[float]:
    """Values for a log axis: non-positive and non-finite ones become NaN (gaps)."""
    return [v if (v > 0 and math.isfinite(v)) else math.nan for v in values]


def plot_gradient_flow(table: GradFlowTable, stem: Path, *, title: str = "Gradient flow",
                       epochs: Sequence[int] | None = None, statistic: str = "grad_mean_abs",
                       aggregate: str = "mean", log: bool = True, max_lines: int = 10,
                       formats: Iterable[str] = ("png",)) -> list[Path]:
    """The study's gradient-flow plot: ``statistic`` per layer, one line per epoch."""
    import matplotlib
    import numpy as np
    from matplotlib import cm, colors

    layers = table.layers
    chosen = list(epochs) if epochs is not None else select_epochs(table.epochs, max_lines)
    trained = [e for e in chosen if e > 0]
    fig = new_figure(max(7.0, 0.26 * len(layers) + 3), 5.2)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"]
    norm = colors.Normalize(vmin=min(trained, default=1), vmax=max(max(trained, default=1), min(trained, default=1) + 1))
    x = list(range(len(layers)))
    for epoch in chosen:
        values = table.profile(epoch, statistic, aggregate)
        y = positive(values) if log else values
        if epoch == 0:
            ax.plot(x, y, "--", color="0.35", marker=".", lw=1.4, label="at initialisation (epoch 0)")
        else:
            ax.plot(x, y, color=cmap(0.88 * norm(epoch)), marker=".", lw=1.4, alpha=0.9,
                    label=f"epoch {epoch}" if len(trained) <= 6 else None)
    if log and any(v > 0 for e in chosen for v in positive(table.profile(e, statistic, aggregate)) if v == v):
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=90, fontsize=7 if len(layers) > 20 else 8)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel(STAT_LABELS.get(statistic, statistic) + ("" if aggregate == "mean" else f" ({aggregate} step)"))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if trained and len(trained) > 6:
        shown = colors.ListedColormap(cmap(np.linspace(0, 0.88, 256)))
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=shown), ax=ax, label="epoch", pad=0.01)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return save(fig, stem, formats)


def plot_gradient_heatmap(table: GradFlowTable, stem: Path, *, title: str = "Gradient flow per epoch",
                          statistic: str = "grad_mean_abs", aggregate: str = "mean",
                          formats: Iterable[str] = ("png",)) -> list[Path]:
    """Layers (rows, input at the top) x epochs (columns), log colour scale; zero/non-finite cells grey."""
    import matplotlib
    import numpy as np
    from matplotlib import colors

    epochs = table.epochs
    layers = table.layers
    data = np.array([positive(table.profile(e, statistic, aggregate)) for e in epochs], dtype=float).T
    finite = data[np.isfinite(data)]
    fig = new_figure(max(6.5, 0.18 * len(epochs) + 5), max(4.0, 0.2 * len(layers) + 1.6))
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(data)
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        norm = colors.LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    else:
        norm = None
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.8")
    image = ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers, fontsize=7 if len(layers) > 20 else 8)
    step = max(1, math.ceil(len(epochs) / 20))
    ax.set_xticks(range(0, len(epochs), step))
    ax.set_xticklabels([str(e) for e in epochs][::step], fontsize=8)
    gaps = bool(np.isnan(data).any())
    ax.set_xlabel("epoch (0 = at initialisation)" + ("; grey: zero or non-finite" if gaps else ""))
    ax.set_ylabel("layer (input at the top)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=STAT_LABELS.get(statistic, statistic) + " (log scale)", pad=0.01)
    return save(fig, stem, formats)
