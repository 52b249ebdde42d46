"""``ablate report``: labels, values straight from summary.json, seed groups, comparisons, formats, CLI."""

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from ablate.hookspecs import hookimpl
from ablate.recipe import dump, resolve
from ablate.report import (
    ReportError,
    build_report,
    csv_table,
    find_runs,
    fmt_lr,
    fmt_params,
    markdown_table,
    model_label,
)
from ablate.report.pairwise import holm

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arch,norm,shortcut,label", [
    ("vgg08", "none", "none", "VGG08"),
    ("vgg38", "bn", "none", "VGG38 BN"),
    ("vgg38", "none", "identity", "VGG38 RC"),
    ("vgg38", "bn", "identity", "VGG38 BN+RC"),
    ("vgg38", "bn", "zeropad", "VGG38 BN+RC(pad)"),
    ("vgg38", "none", "proj", "VGG38 RC(proj)"),
    ("vgg", "groupnorm", "gated", "VGG groupnorm+gated"),
    ("timm:resnet18", "keep", "keep", "timm:resnet18"),
    ("timm:resnet18", "bn", "none", "timm:resnet18 BN+no-shortcut"),
    ("timm:resnet18", "none", "keep", "timm:resnet18 no-norm"),
    ("resnet56", "bn", "zeropad", "ResNet56 BN+RC(pad)"),
    ("resnet20", "bn", "none", "ResNet20 BN"),
])
def test_model_labels(arch, norm, shortcut, label):
    assert model_label(arch, norm, shortcut) == label


def test_number_formats():
    assert (fmt_lr(1e-3), fmt_lr(1e-2), fmt_lr(3e-4), fmt_lr(0.0015)) == ("1e-3", "1e-2", "3e-4", "0.0015")
    assert (fmt_params(59_716), fmt_params(336_196), fmt_params(512), fmt_params(11_200_000)) == \
        ("59,716", "336,196", "512", "11,200,000")


def make_run(root: Path, arch="vgg38", norm="none", shortcut="none", lr=1e-3, seed=0, test_acc=0.5,
             val_acc=0.4, verdict="healthy", status="complete", **extra) -> Path:
    """A run directory as the trainer leaves it (summary.json, recipe.toml), without training."""
    config = resolve({"model": {"arch": arch, "norm": norm, "shortcut": shortcut},
                      "data": {"dataset": "synthetic"}, "train": {"lr": lr, "seed": seed, "epochs": 3}},
                     "test", {})[0].config
    run = root / f"{arch}-{norm}-{shortcut}-{lr:g}-s{seed}"
    run.mkdir(parents=True)
    dump(config, run / "recipe.toml")
    summary = {"name": None, "arch": arch, "norm": norm, "shortcut": shortcut, "lr": lr, "seed": seed,
               "params": 336_196 if arch == "vgg38" else 59_716, "epochs": 3, "dataset": "synthetic",
               "status": status, "epochs_completed": 3, "train_loss": 1.5 + seed / 10, "train_acc": 0.6 - seed / 100,
               "val_loss": 1.7 + seed / 10, "val_acc": val_acc, "test_loss": 1.8 + seed / 10, "test_acc": test_acc,
               "gradflow": {"verdict": verdict, "ratio": 0.1, "at_init": {"verdict": verdict}}, **extra}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_find_runs_accepts_runs_and_parents(tmp_path):
    a = make_run(tmp_path / "sweep" / "x", seed=0)
    b = make_run(tmp_path / "sweep" / "y" / "deeper", seed=1)
    c = make_run(tmp_path / "single", arch="vgg08")
    assert find_runs([tmp_path / "sweep", c, a]) == [a, b, c]  # parents searched recursively, no duplicates
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no runs"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(ReportError, match="no such directory"):
        find_runs([tmp_path / "missing"])


def test_table_values_equal_summary_json(tmp_path):
    run = make_run(tmp_path, arch="vgg08", test_acc=0.4684, val_acc=0.4684)
    [row] = build_report([tmp_path]).rows
    summary = json.loads((run / "summary.json").read_text())
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "params", "lr"):
        assert row[key] == summary[key], key
    assert row["train_loss_std"] is None and row["n"] == 1
    assert (row["model"], row["norm"], row["shortcut"], row["verdict"]) == ("VGG08", "none", "none", "healthy")
    md = markdown_table([row])
    assert "| VGG08 | none | none | 1e-3 | 59,716 | 1.500 | 60.00 | 1.700 | 46.84 | 1.800 | 46.84 | healthy | 1 |" in md


def test_seeds_are_grouped_as_mean_and_std(tmp_path):
    accs = [0.50, 0.54, 0.58]
    for seed, acc in enumerate(accs):
        make_run(tmp_path, norm="bn", shortcut="identity", seed=seed, test_acc=acc)
    make_run(tmp_path, norm="bn", shortcut="identity", seed=0, lr=1e-2, test_acc=0.6)  # another configuration
    report = build_report([tmp_path])
    assert [(r["model"], r["lr"], r["n"]) for r in report.rows] == [("VGG38 BN+RC", 1e-3, 3), ("VGG38 BN+RC", 1e-2, 1)]
    row = report.rows[0]
    assert row["test_acc"] == pytest.approx(statistics.fmean(accs))
    assert row["test_acc_std"] == pytest.approx(statistics.stdev(accs))
    assert row["train_loss"] == pytest.approx(1.6) and row["train_loss_std"] == pytest.approx(0.1)
    assert row["seeds"] == [0, 1, 2]
    assert "54.00 ± 4.00" in markdown_table(report.rows)


def test_rows_follow_the_study_order(tmp_path):
    for arch, norm, shortcut, lr in [("vgg38", "bn", "identity", 1e-2), ("vgg38", "bn", "identity", 1e-3),
                                     ("vgg38", "none", "identity", 1e-3), ("vgg38", "bn", "none", 1e-2),
                                     ("vgg38", "bn", "none", 1e-3), ("vgg38", "none", "none", 1e-3),
                                     ("vgg08", "none", "none", 1e-3)]:
        make_run(tmp_path, arch, norm, shortcut, lr)
    rows = build_report([tmp_path]).rows
    assert [(r["model"], r["lr"]) for r in rows] == [
        ("VGG08", 1e-3), ("VGG38", 1e-3), ("VGG38 BN", 1e-3), ("VGG38 RC", 1e-3), ("VGG38 BN+RC", 1e-3),
        ("VGG38 BN", 1e-2), ("VGG38 BN+RC", 1e-2)]  # Table 1's order


class PluginNorms:
    @hookimpl
    def register_norms(self, register):
        register("half-gn", lambda c: None, label="HGN")
        register("aa-norm", lambda c: None)


def test_plugin_components_show_their_registered_label_in_registration_order(tmp_path, register_plugin,
                                                                               fresh_plugins):
    register_plugin(PluginNorms(), name="plugin-norms")
    assert fresh_plugins["norms"].get("aa-norm").label == "aa-norm"  # the label defaults to the name
    for norm, shortcut in [("aa-norm", "none"), ("half-gn", "identity"), ("half-gn", "none"), ("bn", "none")]:
        make_run(tmp_path, norm=norm, shortcut=shortcut)
    rows = build_report([tmp_path]).rows
    assert [r["model"] for r in rows] == ["VGG38 BN", "VGG38 HGN", "VGG38 aa-norm", "VGG38 HGN+RC"]
    assert model_label("vgg38", "half-gn", "identity") == "VGG38 HGN+RC"


def test_configurations_differing_beyond_the_seed_are_told_apart(tmp_path):
    make_run(tmp_path / "a", seed=0)
    run = make_run(tmp_path / "b", seed=0)
    recipe = (run / "recipe.toml").read_text().replace("epochs = 3", "epochs = 7")
    (run / "recipe.toml").write_text(recipe)
    names = sorted(r["model"] for r in build_report([tmp_path]).rows)
    assert names == ["VGG38 [epochs=3]", "VGG38 [epochs=7]"]


def test_mixed_verdicts_and_unfinished_runs(tmp_path):
    make_run(tmp_path, seed=0, verdict="vanishing")
    make_run(tmp_path, seed=1, verdict="healthy", status="running")
    [row] = build_report([tmp_path]).rows
    assert row["verdict"] == "vanishing x1, healthy x1"
    assert row["complete"] is False
    assert "VGG38 *" in markdown_table([row])


def test_comparison_pairs_the_shared_seeds(tmp_path):
    for seed, (a, b) in enumerate([(0.60, 0.01), (0.62, 0.02), (0.58, 0.01)]):
        make_run(tmp_path, norm="bn", shortcut="identity", seed=seed, test_acc=a, val_acc=a - 0.05)
        make_run(tmp_path, seed=seed, test_acc=b, val_acc=b)
    make_run(tmp_path, seed=9, test_acc=0.99)  # no partner: left out
    [c] = build_report([tmp_path], compare=[("VGG38 BN+RC", "vgg38")]).comparisons
    expected = [0.59, 0.60, 0.57]
    assert (c.a, c.b, c.seeds, c.n, c.paired, c.metric) == ("VGG38 BN+RC", "VGG38", [0, 1, 2], 3, True, "test_acc")
    assert c.diff == pytest.approx(statistics.fmean(expected)) and c.sd == pytest.approx(statistics.stdev(expected))
    assert c.mean_b == pytest.approx(statistics.fmean([0.01, 0.02, 0.01]))  # seed 9 is not in the comparison
    assert c.p_better == 1.0 and c.verdict == "VGG38 BN+RC better (CI excludes 0)"
    [c] = build_report([tmp_path], compare=[("VGG38 BN+RC", "vgg38")], metric="val_acc").comparisons
    assert c.metric == "val_acc" and c.diff == pytest.approx(statistics.fmean(expected) - 0.05)
    with pytest.raises(ReportError, match="--compare 'VGG38 BN' matches no configuration"):
        build_report([tmp_path], compare=[("VGG38 BN", "VGG38")])
    with pytest.raises(ReportError, match="compared with itself"):
        build_report([tmp_path], compare=[("VGG38", "vgg38")])


def test_ambiguous_names_need_the_learning_rate(tmp_path):
    make_run(tmp_path, norm="bn", lr=1e-3)
    make_run(tmp_path, norm="bn", lr=1e-2, test_acc=0.7)
    with pytest.raises(ReportError, match="ambiguous"):
        build_report([tmp_path], compare=[("VGG38 BN", "VGG38 BN")])
    [c] = build_report([tmp_path], compare=[("VGG38 BN lr=1e-2", "VGG38 BN lr=1e-3")]).comparisons
    assert (c.a, c.b) == ("VGG38 BN lr=1e-2", "VGG38 BN lr=1e-3") and c.diff == pytest.approx(0.2)
    assert c.verdict == "too few seeds (n = 1)" and c.diff_ci_low is None and c.seeds_needed is None


def five_seed_arms(root: Path) -> None:
    for seed in range(5):
        make_run(root, shortcut="identity", seed=seed, test_acc=0.40 + 0.01 * seed)
        make_run(root, norm="bn", shortcut="identity", seed=seed, test_acc=0.60 + 0.013 * seed - 0.004 * (seed % 2))
        make_run(root, norm="bn", seed=seed, test_acc=0.41 + 0.012 * seed - 0.03 * (seed % 2))
        make_run(root, arch="vgg08", seed=seed + 5, test_acc=0.45 + 0.01 * seed)  # other seeds: unpaired


def test_baseline_compares_every_other_arm_with_holm_over_all(tmp_path):
    five_seed_arms(tmp_path)
    report = build_report([tmp_path], baseline="VGG38 RC")
    assert [(c.a, c.b) for c in report.comparisons] == [("VGG08", "VGG38 RC"), ("VGG38 BN", "VGG38 RC"),
                                                        ("VGG38 BN+RC", "VGG38 RC")]
    unpaired, bn, bnrc = report.comparisons
    assert [c.t_p_holm for c in report.comparisons] == holm([c.t_p for c in report.comparisons])
    assert [c.rank_p_holm for c in report.comparisons] == holm([c.rank_p for c in report.comparisons])
    assert (unpaired.paired, unpaired.n_a, unpaired.n_b, unpaired.rank_test) == (False, 5, 5, "Mann-Whitney U")
    assert unpaired.diff == pytest.approx(0.05)
    assert bnrc.verdict == "VGG38 BN+RC better (CI excludes 0)" and bnrc.seeds_needed is not None
    assert bn.verdict.startswith("no detectable difference")
    text = report.markdown()
    assert "Unpaired (no shared seeds): VGG08 vs VGG38 RC" in text and "5 + 5 unpaired" in text
    assert "Holm-Bonferroni over the 3 comparisons" in text
    row = next(r for r in report.rows if r["model"] == "VGG38 RC")
    accs = [0.40, 0.41, 0.42, 0.43, 0.44]
    assert row["test_acc_iqm"] == pytest.approx(0.42) and row["test_acc_ci_low"] < 0.42 < row["test_acc_ci_high"]
    assert "| VGG38 RC | 1e-3 | 5 | 42.00 | 1.58 |" in text and statistics.stdev(accs) == pytest.approx(0.0158, abs=1e-4)


def test_markdown_csv_and_json_carry_the_same_numbers(tmp_path):
    five_seed_arms(tmp_path)
    report = build_report([tmp_path], baseline="VGG38 RC")
    data = json.loads(report.json())
    comparison_lines = [line for line in report.markdown().splitlines() if line.startswith("| VGG") and " | VGG38 RC | " in line]
    assert len(comparison_lines) == 3
    for json_row, csv_row, line in zip(data["comparisons"], csv.DictReader(io.StringIO(report.csv())), comparison_lines):
        for key in ("diff", "diff_ci_low", "diff_ci_high", "p_better", "t_p", "t_p_holm", "rank_p", "rank_p_holm"):
            assert float(csv_row[key]) == json_row[key], key
        assert csv_row["verdict"] == json_row["verdict"] and int(csv_row["seeds_needed"]) == json_row["seeds_needed"]
        assert f"{100 * json_row['diff']:+.2f} [{100 * json_row['diff_ci_low']:.2f}, {100 * json_row['diff_ci_high']:.2f}]" in line
        assert f"{json_row['p_better']:.2f} [{json_row['p_better_ci_low']:.2f}, {json_row['p_better_ci_high']:.2f}]" in line
        assert f"{json_row['t_p']:.2g} ({json_row['t_p_holm']:.2g})" in line and json_row["verdict"] in line
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(csv_table(report.rows, "test_acc")))}
    for json_row in data["rows"]:
        for key in ("test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_acc_iqm"):
            assert float(rows[json_row["model"]][key]) == json_row[key]


def test_losses_are_better_lower(tmp_path):
    for seed in range(4):
        make_run(tmp_path, norm="bn", seed=seed, test_loss=1.0 + 0.02 * seed)
        make_run(tmp_path, seed=seed, test_loss=2.3 + 0.01 * (seed % 2))
    [c] = build_report([tmp_path], compare=[("VGG38 BN", "VGG38")], metric="test_loss").comparisons
    assert c.higher_is_better is False and c.diff < 0 and c.p_better == 1.0
    assert c.verdict == "VGG38 BN better (CI excludes 0)"


def test_bad_metric_and_baseline_are_one_line_errors(tmp_path):
    make_run(tmp_path, seed=0)
    for kwargs, message in [({"metric": "nope"}, "--metric 'nope': not a number in any run's summary; numeric keys: "),
                            ({"metric": "arch"}, "--metric 'arch': not a number"),
                            ({"baseline": "VGG38"}, "--baseline 'VGG38': no other configuration")]:
        with pytest.raises(ReportError, match=message.replace("(", "\\(")) as info:
            build_report([tmp_path], **kwargs)
        assert "\n" not in str(info.value)
    assert "epochs_completed" in str(pytest.raises(ReportError, build_report, [tmp_path], metric="nope").value)


def test_unfinished_runs_without_test_values_still_report(tmp_path):
    for seed in range(2):
        run = make_run(tmp_path, seed=seed, status="running")
        summary = json.loads((run / "summary.json").read_text())
        del summary["test_acc"], summary["test_loss"]
        (run / "summary.json").write_text(json.dumps(summary))
    report = build_report([tmp_path])
    assert report.metric == "test_acc" and report.rows[0]["test_acc"] is None and report.rows[0]["test_acc_ci_low"] is None
    assert "| VGG38 | 1e-3 | 2 | – | – | – | – |" in report.markdown()


def test_csv_and_json_are_machine_readable(tmp_path):
    make_run(tmp_path, seed=0)
    make_run(tmp_path, seed=1)
    report = build_report([tmp_path])
    [row] = list(csv.DictReader(io.StringIO(csv_table(report.rows))))
    assert row["model"] == "VGG38" and row["n"] == "2" and row["seeds"] == "0;1"
    assert float(row["test_acc"]) == pytest.approx(0.5)
    data = json.loads(report.json())
    assert isinstance(data, list) and data[0]["test_acc"] == 0.5 and data[0]["seeds"] == [0, 1]


def tiny_run(cli, out: Path, *extra: str):
    result = cli("run", "recipes/vgg08.toml", "--dataset", "synthetic", "--epochs", "1", "--set", "data.train_size=200",
                 "--set", "data.val_size=100", "--set", "data.test_size=100", "--set", "model.width=8",
                 "--out", str(out), "-q", *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_report_cli_end_to_end(cli, tmp_path):
    from matplotlib.image import imread

    tiny_run(cli, tmp_path / "runs" / "plain")
    tiny_run(cli, tmp_path / "runs" / "bn", "--norm", "bn")
    for name in ("plain", "bn"):
        figures = tmp_path / "runs" / name / "figures"
        assert {p.name for p in figures.iterdir()} == {"training_curves.png", "gradient_flow.png",
                                                       "gradient_heatmap.png"}
    result = cli("report", str(tmp_path / "runs"), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["VGG08", "VGG08 BN"]
    for row in rows:
        summary = json.loads((Path(row["runs"][0]) / "summary.json").read_text())
        assert row["test_acc"] == summary["test_acc"] and row["verdict"] == summary["gradflow"]["verdict"]
    for name in ("curves.png", "gradient_flow.png"):
        image = imread(tmp_path / "runs" / name)
        assert image.shape[0] > 300 and image.shape[1] > 500
    assert "| VGG08 BN |" in (tmp_path / "runs" / "report.md").read_text()

    result = cli("report", str(tmp_path / "runs" / "plain"), str(tmp_path / "runs" / "bn"),
                 "--out", str(tmp_path / "rep"), "--diff", "VGG08 BN", "VGG08")  # --diff: --compare's old name
    assert result.returncode == 0, result.stderr
    assert "Comparisons: Test acc %" in result.stdout and "too few seeds (n = 1)" in result.stdout
    assert (tmp_path / "rep" / "curves.png").exists()


def test_report_cli_compares_with_a_baseline(cli, tmp_path):
    five_seed_arms(tmp_path)
    result = cli("report", str(tmp_path), "--baseline", "VGG38 RC", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "Test acc % per configuration" in result.stdout and "VGG38 BN+RC better (CI excludes 0)" in result.stdout
    assert "Unpaired (no shared seeds): VGG08 vs VGG38 RC" in result.stdout
    result = cli("report", str(tmp_path), "--compare", "VGG38 BN+RC", "VGG38 RC", "--format", "csv", "--no-figures")
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["a"], row["b"], row["seeds"], row["verdict"]) == ("VGG38 BN+RC", "VGG38 RC", "0;1;2;3;4",
                                                                  "VGG38 BN+RC better (CI excludes 0)")
    result = cli("report", str(tmp_path), "--baseline", "VGG38 RC", "--metric", "test_loss", "--format", "json",
                 "--no-figures")
    data = json.loads(result.stdout)
    assert data["metric"] == "test_loss" and [c["higher_is_better"] for c in data["comparisons"]] == [False] * 3
    result = cli("report", str(tmp_path), "--baseline", "VGG38 RC", "--metric", "test_accuracy", "--no-figures")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --metric 'test_accuracy': not a number") and result.stderr.count("\n") == 1


def test_a_multi_arm_run_ends_with_the_report(cli, tmp_path):
    recipe = tmp_path / "two.toml"
    recipe.write_text('name = "two"\n[model]\narch = "vgg08"\nwidth = 4\n[data]\ndataset = "synthetic"\n'
                      'num_classes = 10\ntrain_size = 100\nval_size = 100\ntest_size = 100\n'
                      '[train]\nepochs = 1\n[[arms]]\nname = "plain"\n[[arms]]\nname = "bn"\nmodel = { norm = "bn" }\n')
    result = cli("run", str(recipe), "--out", str(tmp_path / "two"), "-q", "--gradflow", "every=2")
    assert result.returncode == 0, result.stderr
    assert "VGG08 BN" in result.stdout and "healthy" in result.stdout
    assert {"report.md", "curves.png", "gradient_flow.png"} <= {p.name for p in (tmp_path / "two").iterdir()}
    summary = json.loads(next((tmp_path / "two").glob("vgg08-bn-*/summary.json")).read_text())
    assert summary["gradflow"]["every"] == 2
