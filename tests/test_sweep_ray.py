"""``ablate sweep --executor ray`` on a local Ray instance (CPU): same runs, same results as local."""

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' to test the Ray executor")

RECIPE = """
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
threads = 1
device = "cpu"
[sweep]
seeds = [0, 1]
"""
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def results(sweep_dir: Path) -> dict[str, dict]:
    runs = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
    assert [r["state"] for r in runs] == ["complete"] * len(runs)
    return {r["dir"]: json.loads((sweep_dir / r["dir"] / "summary.json").read_text()) for r in runs}


def test_ray_executor_matches_the_local_executor(cli, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    local = cli("sweep", str(recipe), "--out", str(tmp_path / "local"), "--jobs", "2")
    assert local.returncode == 0, local.stdout + local.stderr
    remote = cli("sweep", str(recipe), "--out", str(tmp_path / "ray"), "--executor", "ray", "--jobs", "2")
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert json.loads((tmp_path / "ray" / "sweep.json").read_text())["executor"] == "ray"
    by_local, by_ray = results(tmp_path / "local"), results(tmp_path / "ray")
    assert sorted(by_ray) == sorted(by_local) and len(by_ray) == 2
    for name, summary in by_ray.items():
        assert {k: summary[k] for k in METRICS} == {k: by_local[name][k] for k in METRICS}
