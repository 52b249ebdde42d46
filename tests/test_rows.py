"""Honest rows (issue 11): one row per configuration, each run once, diverged runs and differing
environments shown, old recipes resumed, sweeps that report every run they stopped or could not build."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_report import REPO, make_run

from ablate.recipe import ADDED_LATER, dump, resolve
from ablate.report import build_report, markdown_table
from ablate.sweep.grid import load_sweep
from ablate.testing import TINY_RECIPE
from ablate.train.resume import decide
from ablate.train.trainer import train

GN2_PLUGIN = """
from torch import nn
from ablate import hookspecs

@hookspecs.hookimpl
def register_norms(register):
    register("gn2", lambda c: nn.GroupNorm(2, c), help="GroupNorm with 2 groups")
"""


def recipe_file(tmp_path, extra="", epochs=1):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.replace("epochs = 3", f"epochs = {epochs}") + extra)
    return path


def report_cli(cli, *args):
    result = cli("report", *map(str, args), "--no-figures")
    assert "Traceback" not in result.stderr, result.stderr
    return result


# -- ablate report: each run once, unknown recipes alone, unreadable summaries skipped ---------------------------


def test_a_copied_run_counts_once_with_one_warning_naming_both(cli, tmp_path):
    original = make_run(tmp_path / "sweep", seed=0, test_acc=0.5)
    make_run(tmp_path / "sweep", seed=1, test_acc=0.6)
    backup = tmp_path / "sweep" / "backup"
    shutil.copytree(original, backup)
    [row] = build_report([tmp_path / "sweep"]).rows
    assert (row["n"], row["seeds"]) == (2, [0, 1])
    result = report_cli(cli, tmp_path / "sweep", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert [r["seeds"] for r in json.loads(result.stdout)] == [[0, 1]]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(backup) in warnings[0] and str(original) in warnings[0]
    assert "counted once" in warnings[0]


@pytest.mark.parametrize("recipe", [b"", b"\xff\xfe\x00garbage", b"[model\n"])
def test_a_run_with_an_empty_or_unreadable_recipe_is_reported_alone(cli, tmp_path, recipe):
    make_run(tmp_path, lr=1e-3, seed=0)
    a = make_run(tmp_path, lr=1e-3, seed=1)
    b = make_run(tmp_path, lr=1e-2, seed=1)  # another configuration, same seed
    for run in (a, b):
        (run / "recipe.toml").write_bytes(recipe)
    report = build_report([tmp_path])
    assert sorted(row["n"] for row in report.rows) == [1, 1, 1]  # never grouped with each other or with seed 0
    assert len(report.warnings) == 2 and all("reported alone" in w for w in report.warnings)
    result = report_cli(cli, tmp_path)
    assert result.returncode == 0 and result.stderr.count("reported alone") == 2


@pytest.mark.parametrize("summary", [b"{not json", b"\x00\x01\x02\xff", b'{"hello": "world"}', b"[1, 2]"])
def test_an_unreadable_or_foreign_summary_is_skipped_with_one_warning(cli, tmp_path, summary):
    make_run(tmp_path, seed=0)
    make_run(tmp_path, seed=1)
    bad = make_run(tmp_path, seed=2)
    (bad / "summary.json").write_bytes(summary)
    result = report_cli(cli, tmp_path, "-f", "json")
    assert result.returncode == 0, result.stderr
    assert [row["seeds"] for row in json.loads(result.stdout)] == [[0, 1]]
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: skipped {bad}")
    (tmp_path / "only").mkdir()
    shutil.move(bad, tmp_path / "only" / "bad")
    alone = report_cli(cli, tmp_path / "only")
    assert alone.returncode == 2 and "error: no readable runs in" in alone.stderr


# -- diverged runs ------------------------------------------------------------------------------------------------


def test_a_diverged_run_says_so_exits_3_and_is_left_out_of_the_statistics(cli, tmp_path):
    out = tmp_path / "runs" / "boom"
    result = cli("run", str(recipe_file(tmp_path, epochs=2)), "--lr", "1e3", "--out", str(out), "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    epoch = summary["diverged"]["epoch"]
    assert summary["status"] == "diverged" and summary["epochs_completed"] == epoch - 1
    assert summary["diverged"]["diverged_steps"] * 2 > summary["diverged"]["steps"]
    assert (summary["environment"]["threads"], summary["environment"]["torch"]) == (2, torch.__version__)  # OMP_NUM_THREADS=2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in epoch {epoch} (lr " in lines[0] and "the run diverged (status 'diverged'" in lines[0]
    again = cli("run", str(recipe_file(tmp_path, epochs=2)), "--lr", "1e3", "--out", str(out), "-q")
    assert again.returncode == 3 and f"{out} holds a run that diverged in epoch {epoch}" in again.stderr
    assert "Traceback" not in result.stderr + again.stderr

    make_run(tmp_path / "runs", seed=0, test_acc=0.5)
    make_run(tmp_path / "runs", seed=1, test_acc=0.7)
    make_run(tmp_path / "runs", seed=2, test_acc=0.01, status="diverged")
    report = build_report([tmp_path / "runs"])
    row = next(r for r in report.rows if r["lr"] == 1e-3)
    assert (row["n"], row["seeds"], row["diverged"], row["status"]) == (2, [0, 1], 1, "1 of 3 diverged")
    assert row["test_acc"] == pytest.approx(0.6)  # the diverged run's 1% is no part of the mean
    assert next(r for r in report.rows if r["lr"] == 1e3)["status"] == "diverged"
    assert "| 1 of 3 diverged |" in markdown_table(report.rows)
    shown = report_cli(cli, tmp_path / "runs")
    assert shown.returncode == 0 and "1 of 3 diverged" in shown.stdout and "left out of its statistics" in shown.stderr


def test_comparisons_against_an_arm_whose_runs_all_diverged_are_left_out_with_a_warning(cli, tmp_path):
    for seed in (0, 1):
        make_run(tmp_path / "runs", seed=seed, test_acc=0.5 + seed / 10)
        make_run(tmp_path / "runs", norm="bn", seed=seed, test_acc=0.6 + seed / 10)
        make_run(tmp_path / "runs", shortcut="identity", seed=seed, test_acc=0.01, status="diverged")
    report = build_report([tmp_path / "runs"], baseline="vgg38")
    assert [(c.a, c.b) for c in report.comparisons] == [("VGG38 BN", "VGG38")]
    assert "'VGG38 RC' vs 'VGG38': not compared, every run of 'VGG38 RC' diverged" in report.warnings
    shown = report_cli(cli, tmp_path / "runs", "--baseline", "vgg38")
    assert shown.returncode == 0 and "not compared, every run of 'VGG38 RC' diverged" in shown.stderr


# -- threads and torch version ------------------------------------------------------------------------------------


def test_runs_of_one_row_that_differ_in_threads_or_torch_are_flagged(cli, tmp_path):
    env = {"torch": "2.6.0", "threads": 1}
    make_run(tmp_path, seed=0, environment=env)
    make_run(tmp_path, seed=1, environment={**env, "threads": 2})
    make_run(tmp_path, seed=0, lr=1e-2, environment=env)
    make_run(tmp_path, seed=1, lr=1e-2, environment=env)
    make_run(tmp_path, seed=2, lr=1e-2, environment={**env, "threads": 4}, status="diverged")  # not in the statistics
    rows = {r["lr"]: r for r in build_report([tmp_path]).rows}
    assert rows[1e-3]["environment_differs"] == ["threads: 1, 2"] and rows[1e-2]["environment_differs"] == []
    result = report_cli(cli, tmp_path, "-f", "md")
    assert result.returncode == 0
    assert "| VGG38 † |" in result.stdout and "| VGG38 |" in result.stdout
    assert "† the runs of the row differ in thread count or torch version" in result.stdout
    assert result.stderr.count("warning:") == 2 and "differ in threads: 1, 2" in result.stderr
    assert "'VGG38': 1 of 3 diverged; left out of its statistics" in result.stderr


# -- an older recipe, a resumed run ---------------------------------------------------------------------------------


def tiny_config(seed=0):
    raw = {"model": {"arch": "vgg08", "width": 8},
           "data": {"dataset": "synthetic", "train_size": 100, "val_size": 50, "test_size": 50, "num_classes": 10},
           "train": {"epochs": 2, "batch_size": 25, "threads": 1, "seed": seed}}
    return resolve(raw, "test", {})[0]


class StopAtEpoch2:
    def on_epoch_start(self, state):
        if state.epoch == 2:
            raise KeyboardInterrupt  # as a kill: epoch 1 is committed


def test_an_older_recipe_resumes_and_groups_as_the_same_run_and_keeps_its_step_counts(tmp_path):
    arm = tiny_config()
    run = tmp_path / "runs" / arm.dirname()
    with pytest.raises(KeyboardInterrupt):
        train(arm.config, run, extra_callbacks=[StopAtEpoch2()])
    text = (run / "recipe.toml").read_text()
    for dotted in ADDED_LATER:  # as an ablate from before these keys wrote it
        key = dotted.split(".")[1]
        assert f"{key} = " in text
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key} = "))
    (run / "recipe.toml").write_text(text)
    (run / "summary.json").unlink()  # lost with the kill: the checkpoint holds epoch 1's counts

    assert decide(run, arm.config) == "resume"
    summary = train(arm.config, run)
    assert summary["status"] == "complete" and summary["epochs_completed"] == 2
    assert (summary["steps"], summary["diverged_steps"]) == (8, 0)  # 4 steps of 25 images in each epoch
    assert [(e["epoch"], e["steps"], e["nonfinite_steps"]) for e in summary["gradflow"]["per_epoch"]] == [
        (1, 4, 0), (2, 4, 0)]

    other = make_run(tmp_path / "runs", seed=1)  # today's recipe, seed 1
    dump(tiny_config(seed=1).config, other / "recipe.toml")
    (run / "recipe.toml").write_text(text)  # the finished run rewrote it; an old copy again
    [row] = build_report([tmp_path / "runs"]).rows
    assert row["seeds"] == [0, 1]
    assert tiny_config().dirname() == run.name  # a sweep finds the same directory


# -- sweeps ---------------------------------------------------------------------------------------------------------


def test_sigterm_marks_the_runs_a_sweep_stopped_interrupted(tmp_path):
    recipe = recipe_file(tmp_path, "[sweep]\nseeds = [0, 1]\n", epochs=100)
    out = tmp_path / "sw"
    _, runs = load_sweep(recipe, {}, out)
    cmd = [sys.executable, "-m", "ablate", "sweep", str(recipe), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (runs[0].path / "metrics.csv").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "interrupted" in stdout
    states = [r["state"] for r in json.loads((out / "sweep.json").read_text())["runs"]]
    assert states == ["interrupted", "interrupted"]


def test_a_sweep_runs_every_arm_it_can_build_and_fails_the_others(cli, distribution, tmp_path):
    site = distribution("ablate-gn2", "ablate_gn2", GN2_PLUGIN, {"gn2": "ablate_gn2"})
    recipe = recipe_file(tmp_path, '[[arms]]\nname = "plain"\n\n[[arms]]\nname = "gn2"\nmodel = { norm = "gn2" }\n')
    out = tmp_path / "sw"
    result = cli("--disable-plugins", "gn2", "sweep", str(recipe), "--out", str(out), env={"PYTHONPATH": str(site)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    plain, gn2 = json.loads((out / "sweep.json").read_text())["runs"]
    assert (plain["name"], plain["state"]) == ("plain", "complete")
    assert (gn2["name"], gn2["state"], gn2["action"]) == ("gn2", "failed", "refuse")
    assert "model.norm = 'gn2'" in gn2["error"] and len(gn2["error"].splitlines()) == 1
    assert "1 complete (0 already), 0 diverged, 1 failed" in result.stdout
    assert "cannot build gn2: " in result.stdout and "failed runs (1):" in result.stdout
    assert not (out / gn2["dir"]).exists()
