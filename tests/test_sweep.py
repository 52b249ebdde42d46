"""``ablate sweep``: grid expansion, --dry-run, resume after a kill, failing runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.models import build_model, count_params
from ablate.recipe import RecipeError, dump, load_recipe
from ablate.sweep.grid import expand, load_sweep
from ablate.sweep.runner import plan

REPO = Path(__file__).resolve().parents[1]
TABLE1 = [  # name, arch, norm, shortcut, lr, params (the study's Table 1, in order)
    ("VGG08 1e-3", "vgg08", "none", "none", 1e-3, 59_716),
    ("VGG38 1e-3", "vgg38", "none", "none", 1e-3, 336_196),
    ("VGG38 BN 1e-3", "vgg38", "bn", "none", 1e-3, 338_500),
    ("VGG38 RC 1e-3", "vgg38", "none", "identity", 1e-3, 336_196),
    ("VGG38 BN+RC 1e-3", "vgg38", "bn", "identity", 1e-3, 338_500),
    ("VGG38 BN 1e-2", "vgg38", "bn", "none", 1e-2, 338_500),
    ("VGG38 BN+RC 1e-2", "vgg38", "bn", "identity", 1e-2, 338_500),
]
TINY = """
name = "tiny"
[model]
arch = "vgg08"
width = 8
[data]
dataset = "synthetic"
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 1
batch_size = 50
"""


def tiny_recipe(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY + extra)
    return path


def manifest(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "sweep.json").read_text())["runs"]


def test_table1_is_the_studys_seven_rows_in_order():
    sweep_dir, runs = load_sweep(REPO / "recipes/table1.toml", {})
    assert sweep_dir == Path("runs/table1")
    got = []
    for run in runs:
        m, t = run.config["model"], run.config["train"]
        params = count_params(build_model(m["arch"], norm=m["norm"], shortcut=m["shortcut"], width=m["width"]))
        got.append((run.name, m["arch"], m["norm"], m["shortcut"], t["lr"], params))
        assert (t["seed"], t["epochs"], t["batch_size"], t["optimizer"], t["schedule"], t["augment"]) == (
            0, 100, 100, "adam", "cosine", True)
        assert run.config["data"]["dataset"] == "cifar100"
        assert run.path == sweep_dir / run.arm.dirname()
    assert got == TABLE1


def test_grid_is_arms_x_keys_x_seeds_with_seeds_fastest():
    raw = {"model": {"arch": "vgg08"},
           "arms": [{"name": "a", "train": {"batch_size": 10}}, {"name": "b", "train": {"batch_size": 20}}],
           "sweep": {"seeds": [0, 1, 2], "norm": ["none", "bn"], "train.min_lr": [0.0, 1e-5]}}
    runs = expand(raw, "grid.toml", {})
    assert len(runs) == 2 * 2 * 2 * 3
    cells = [(a.config["train"]["batch_size"], a.config["model"]["norm"], a.config["train"]["min_lr"],
              a.config["train"]["seed"]) for _, a in runs]
    assert cells == [(bs, n, m, s) for bs in (10, 20) for n in ("none", "bn") for m in (0.0, 1e-5) for s in (0, 1, 2)]
    assert [name for name, _ in runs[:3]] == ["a norm=none train.min_lr=0"] * 3
    assert len({a.dirname() for _, a in runs}) == len(runs)


def test_nested_dotted_keys_and_overrides_replace_an_axis():
    raw = {"model": {"arch": "vgg08"}, "sweep": {"lr": [1e-3, 1e-2], "train": {"batch_size": [10, 20]}}}
    assert len(expand(raw, "grid.toml", {})) == 4
    runs = expand(raw, "grid.toml", {"train.lr": 0.5})
    assert [(a.config["train"]["lr"], a.config["train"]["batch_size"]) for _, a in runs] == [(0.5, 10), (0.5, 20)]
    assert [name for name, _ in runs] == ["train.batch_size=10", "train.batch_size=20"]


def test_set_sweep_keys_add_or_replace_grid_axes(tmp_path):
    path = tiny_recipe(tmp_path, "[sweep]\nseeds = [0]\nlr = [1e-3]\n")
    _, runs = load_sweep(path, {"sweep.seeds": [0, 1, 2], "sweep.norm": ["none", "bn"], "train.epochs": 2}, tmp_path)
    assert [(r.config["model"]["norm"], r.seed, r.config["train"]["epochs"]) for r in runs] == [
        (norm, seed, 2) for norm in ("none", "bn") for seed in (0, 1, 2)]
    _, runs = load_sweep(REPO / "recipes/quickstart.toml", {"sweep.seeds": [0, 1]})  # a recipe without [sweep]
    assert [(r.name, r.seed) for r in runs[:3]] == [("VGG08", 0), ("VGG08", 1), ("VGG38", 0)] and len(runs) == 10
    with pytest.raises(RecipeError, match="must be a non-empty list"):
        load_sweep(path, {"sweep.seeds": 3})


def test_a_single_run_refuses_sweep_keys():
    with pytest.raises(RecipeError, match="--set sweep.seeds: sweep.\\* keys apply to `ablate sweep` only"):
        load_recipe(REPO / "recipes/vgg08.toml", {"sweep.seeds": [0, 1]})


def test_identical_cells_are_trained_once():
    raw = {"arms": [{"name": "x", "model": {"norm": "bn"}}, {"name": "y", "model": {"norm": "none"}}]}
    assert [name for name, _ in expand(raw, "r.toml", {"model.norm": "bn"})] == ["x"]


@pytest.mark.parametrize("sweep,message", [
    ({"depth": [1, 2]}, "unknown [sweep] key 'depth'"),
    ({"lr": 0.1}, "[sweep] lr = 0.1 must be a non-empty list"),
    ({"seeds": []}, "must be a non-empty list"),
    ({"norm": ["none", "nope"]}, "model.norm = 'nope'"),
])
def test_bad_sweep_tables_are_one_line_errors(sweep, message):
    with pytest.raises(RecipeError) as info:
        expand({"sweep": sweep}, "bad.toml", {})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_arm_may_not_set_what_the_grid_varies():
    raw = {"arms": [{"name": "fast", "train": {"lr": 0.1}}], "sweep": {"lr": [1e-3, 1e-2]}}
    with pytest.raises(RecipeError, match="arm 'fast' sets train.lr, which \\[sweep\\] also varies"):
        expand(raw, "r.toml", {})


def test_plan_refuses_a_directory_holding_another_recipe(tmp_path):
    _, runs = load_sweep(tiny_recipe(tmp_path, "[sweep]\nseeds = [0, 1]\n"), {}, tmp_path / "sw")
    runs[1].path.mkdir(parents=True)
    dump(runs[0].config, runs[1].path / "recipe.toml")
    entries = plan(runs)
    assert [(e.action, e.state) for e in entries] == [("start", "pending"), ("refuse", "failed")]
    assert "different recipe" in entries[1].error


def test_dry_run_lists_the_runs_and_trains_nothing(cli, tmp_path):
    out = tmp_path / "sw"
    result = cli("sweep", "recipes/table1.toml", "--dry-run", "--dataset", "synthetic", "--epochs", "1",
                 "--set", "data.train_size=2000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    _, runs = load_sweep(REPO / "recipes/table1.toml",
                         {"data.dataset": "synthetic", "train.epochs": 1, "data.train_size": 2000}, out)
    lines = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 7
    for line, run in zip(lines, runs):
        assert run.name in line and run.path.name in line and " new " in line
    assert "7 runs" in result.stdout and "synthetic, 1 epochs" in result.stdout
    assert not out.exists()


def test_a_killed_sweep_resumes_without_rerunning_finished_runs(tmp_path):
    recipe = tiny_recipe(tmp_path, "[sweep]\nseeds = [0, 1, 2]\n")
    out = tmp_path / "sw"
    _, runs = load_sweep(recipe, {}, out)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "ablate", "sweep", str(recipe), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = runs[0].path / "summary.json"
    deadline = time.time() + 240
    while not (first.exists() and json.loads(first.read_text())["status"] == "complete"):
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before its first run finished"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = first.stat().st_mtime_ns

    result = subprocess.run([*cmd[:-1], "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    records = manifest(out)
    assert [r["dir"] for r in records] == [r.path.name for r in runs]
    assert records[0]["action"] == "skip" and records[1]["action"] in ("start", "resume")
    assert records[2]["action"] == "start"
    assert [r["state"] for r in records] == ["complete"] * 3
    assert first.stat().st_mtime_ns == finished  # --jobs changes neither the run directories nor their results
    assert "1 already complete" in result.stdout or "(1 already)" in result.stdout


def test_a_failing_run_does_not_stop_the_others(cli, tmp_path):
    recipe = tiny_recipe(tmp_path, '[[arms]]\nname = "ok"\n\n[[arms]]\nname = "boom"\ntrain = { lr = 1e6 }\n')
    out = tmp_path / "sw"
    result = cli("sweep", str(recipe), "--out", str(out), "--jobs", "2")
    assert result.returncode == 3, result.stdout + result.stderr  # 3: a run diverged, none failed
    ok, boom = manifest(out)
    assert (ok["name"], ok["state"], ok["error"]) == ("ok", "complete", None)
    assert (boom["name"], boom["state"]) == ("boom", "diverged") and "loss became nan" in boom["error"]
    assert "diverged runs (1)" in result.stdout and "boom (seed 0): loss became nan" in result.stdout
    assert "loss became nan" in (out / boom["dir"] / "sweep.log").read_text()
    summary = json.loads((out / ok["dir"] / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["environment"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    again = cli("sweep", str(recipe), "--out", str(out), "--jobs", "2")  # a diverged run has ended: not retrained
    assert again.returncode == 3 and "boom (seed 0): diverged earlier" in again.stdout, again.stdout + again.stderr
    assert "(1 complete, 1 diverged)" in again.stdout, again.stdout
    assert [(r["action"], r["state"]) for r in manifest(out)] == [("skip", "complete"), ("skip", "diverged")]


def test_status_shows_a_sweep_without_training_or_submitting(cli, tmp_path):
    out = tmp_path / "sw"
    result = cli("sweep", "recipes/table1.toml", "--status", "--dataset", "synthetic", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "7 runs" in result.stdout and "(7 not started); no sweep is running there" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert len(rows) == 7 and {tuple(r[-6:-1]) for r in rows} == {("started", "0/100", "-", "-", "-")}
    assert not out.exists()
    both = cli("sweep", "recipes/table1.toml", "--status", "--dry-run")
    assert both.returncode == 2 and "--status and --dry-run exclude each other" in both.stderr
