"""Figures are real, readable image files of a sensible size."""

import json
import math
from pathlib import Path

import pytest

from ablate.gradflow.plots import (
    plot_gradient_flow,
    plot_gradient_heatmap,
    select_epochs,
)
from ablate.gradflow.stats import STATISTICS, GradFlowTable, load_gradflow
from ablate.report.plots import (
    plot_curves_overlay,
    plot_gradflow_overlay,
    plot_training_curves,
    write_run_figures,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_width: int = 500, min_height: int = 300) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    image = imread(path)
    height, width = image.shape[:2]
    assert min_width <= width <= 4000 and min_height <= height <= 4000, (path, width, height)
    assert image[..., :3].std() > 0.01, f"{path} is blank"


def fake_table(layers: int = 12, epochs: int = 15, vanishing: bool = False) -> GradFlowTable:
    table = GradFlowTable([f"blocks.{i}.first.conv" for i in range(layers)])
    for epoch in range(epochs + 1):
        row = []
        for i in range(layers):
            value = (1e-18 if vanishing and i < layers - 2 else 1e-5) * (1 + i) * (1 + 0.1 * epoch)
            row.append([value] * len(STATISTICS))
        if epoch == 3:
            row[1] = [0.0] * len(STATISTICS)  # a zero must not break the log scale
        table.add(epoch, row, "mean")
        table.add(epoch, row, "last")
    return table


def metrics_rows(epochs: int = 5, good: bool = True):
    return [{"epoch": e, "train_loss": 2.3 - (0.3 * e if good else 0), "val_loss": 2.3 - (0.25 * e if good else 0),
             "train_acc": 0.1 + (0.1 * e if good else 0), "val_acc": 0.1 + (0.08 * e if good else 0)}
            for e in range(1, epochs + 1)]


def test_select_epochs_keeps_first_and_last():
    assert select_epochs(range(0, 101), 10)[0] == 0
    assert select_epochs(range(0, 101), 10)[-1] == 100
    assert len(select_epochs(range(0, 101), 10)) == 10
    assert select_epochs([0, 1, 2], 10) == [0, 1, 2]


def test_gradient_flow_figure_is_a_png(tmp_path):
    [path] = plot_gradient_flow(fake_table(), tmp_path / "flow", title="Gradient flow: test")
    assert path.name == "flow.png"
    check_png(path)


def test_gradient_flow_linear_scale_and_vanishing_values(tmp_path):
    [path] = plot_gradient_flow(fake_table(vanishing=True), tmp_path / "flow", log=False)
    check_png(path)


def test_heatmap_is_a_png(tmp_path):
    [path] = plot_gradient_heatmap(fake_table(layers=38, epochs=30), tmp_path / "heat")
    check_png(path)


def test_svg_and_pdf_on_request(tmp_path):
    paths = plot_gradient_flow(fake_table(), tmp_path / "flow", formats=("svg", "pdf"))
    assert [p.suffix for p in paths] == [".svg", ".pdf"]
    assert b"<svg" in paths[0].read_bytes()[:1000]
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="jpeg"):
        plot_gradient_flow(fake_table(), tmp_path / "flow", formats=("jpeg",))


def test_training_curves_are_a_png(tmp_path):
    [path] = plot_training_curves(metrics_rows(), tmp_path / "curves", title="Training curves: test")
    check_png(path)


def make_run(root: Path, name: str, arch: str, vanishing: bool) -> Path:
    from ablate.rundir import write_metrics

    run = root / name
    run.mkdir(parents=True)
    rows = [{**r, "lr": 1e-3, "epoch_seconds": 1.0, "images_per_second": 100.0}
            for r in metrics_rows(good=not vanishing)]
    write_metrics(run, rows)
    layers = 38 if arch == "vgg38" else 8
    (run / "gradflow.csv").write_text(fake_table(layers, 5, vanishing).to_csv())
    summary = {"arch": arch, "norm": "none", "shortcut": "none", "lr": 1e-3, "seed": 0, "status": "complete",
               "epochs_completed": 5, "params": 1000}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_run_figures_land_in_the_run_directory(tmp_path):
    run = make_run(tmp_path, "a", "vgg38", vanishing=True)
    paths = write_run_figures(run, label="VGG38")
    assert sorted(p.name for p in paths) == ["gradient_flow.png", "gradient_heatmap.png", "training_curves.png"]
    for path in paths:
        assert path.parent == run / "figures"
        check_png(path)
    assert write_run_figures(run, only_if_stale=True) == []  # up to date: nothing redrawn


def test_overlay_figures(tmp_path):
    from ablate.report import group_runs, load_runs

    make_run(tmp_path, "a", "vgg38", vanishing=True)
    make_run(tmp_path, "b", "vgg08", vanishing=False)
    runs = load_runs([tmp_path])
    group_runs(runs)
    [curves] = plot_curves_overlay(runs, tmp_path / "curves")
    [flow] = plot_gradflow_overlay(runs, tmp_path / "gradient_flow")
    check_png(curves)
    check_png(flow)


def test_curves_overlay_shades_the_interval_of_several_seeds(tmp_path, monkeypatch):
    from ablate.gradflow import plots as gradflow_plots
    from ablate.report import group_runs, load_runs, plots

    for seed in range(3):
        run = make_run(tmp_path, f"s{seed}", "vgg38", vanishing=False)
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "seed": seed}))
    make_run(tmp_path, "single", "vgg08", vanishing=False)
    runs = load_runs([tmp_path])
    group_runs(runs)
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, stem, formats: figures.append(fig) or gradflow_plots.save(fig, stem, formats))
    [path] = plot_curves_overlay(runs, tmp_path / "curves")
    check_png(path)
    loss_ax, acc_ax = figures[0].axes
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["VGG08", "VGG38 (n=3)"]
    assert len(loss_ax.collections) == len(acc_ax.collections) == 1  # one band: the three seeds of VGG38


def test_csv_round_trip_keeps_values(tmp_path):
    table = fake_table(layers=3, epochs=2)
    table.values[(1, "grad_norm", "mean")][0] = math.nan
    (tmp_path / "gradflow.csv").write_text(table.to_csv())
    back = load_gradflow(tmp_path)
    assert back.layers == table.layers and back.epochs == table.epochs
    assert back.profile(2) == pytest.approx(table.profile(2), rel=1e-8)
    assert math.isnan(back.profile(1, "grad_norm")[0])
