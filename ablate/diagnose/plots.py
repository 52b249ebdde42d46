"""The signal propagation figure (Brock et al. 2021, Fig. 1): three panels against block depth.

(a) average channel squared mean, (b) average channel variance, (c) residual-branch variance,
each on a log y axis, x = depth position (0 = input, 1 = entry, 2 = first block, ...,
last = classifier input), one line per series (an arm, or an epoch of one run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ablate.diagnose.signal import SignalProfile
from ablate.gradflow.plots import new_figure, positive, save

PANELS = (("sq_mean", "(a) average channel squared mean"), ("variance", "(b) average channel variance"),
          ("branch_variance", "(c) residual-branch variance"))


def plot_signal_propagation(series: Sequence[tuple[str, SignalProfile]], stem: Path, *, title: str,
                            formats: Iterable[str] = ("png",)) -> list[Path]:
    """One line per ``(label, profile)`` in each of the three panels; returns the written paths."""
    import matplotlib

    fig = new_figure(15, 4.6)
    axes = fig.subplots(1, 3)
    cmap = matplotlib.colormaps["tab10" if len(series) <= 10 else "viridis"]
    for k, (label, profile) in enumerate(series):
        colour = cmap(k % 10) if len(series) <= 10 else cmap(k / max(1, len(series) - 1))
        depth = list(range(len(profile.positions)))
        for ax, (statistic, _) in zip(axes, PANELS):
            values = positive(profile.column(statistic))
            if any(v == v for v in values):
                ax.plot(depth, values, marker=".", lw=1.3, color=colour, label=label)
    for ax, (statistic, name) in zip(axes, PANELS):
        if ax.get_lines():
            ax.set_yscale("log")
        ax.set(title=name, xlabel="depth (0 input, 1 entry, 2.. blocks, last: classifier input)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("over the batch, averaged over channels (log scale)")
    if axes[1].get_lines():
        axes[1].legend(fontsize=8, loc="best")
    if not axes[2].get_lines():
        axes[2].text(0.5, 0.5, "no block has a shortcut", ha="center", va="center", transform=axes[2].transAxes)
    fig.suptitle(title)
    return save(fig, stem, formats)


def plot_gradient_overlay(series: Sequence[tuple[str, Sequence[float]]], stem: Path, *, title: str,
                          formats: Iterable[str] = ("png",)) -> list[Path]:
    """Mean |g| per weight layer against relative depth (0 = entry conv, 1 = classifier), one line per arm."""
    fig = new_figure(7.5, 4.6)
    ax = fig.subplots()
    for label, profile in series:
        n = len(profile)
        ax.plot([i / max(1, n - 1) for i in range(n)], positive(profile), marker=".", lw=1.3, label=label)
    if ax.get_lines():
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="best")
    ax.set(xlabel="relative depth (0 = entry conv, 1 = classifier)", ylabel="average gradient, mean |g| (log scale)")
    ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return save(fig, stem, formats)
