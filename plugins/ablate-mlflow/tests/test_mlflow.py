"""ablate-mlflow: what MLflow holds after a run (and a resume, and a sweep), read back through MlflowClient
from a local file store, against the run directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="pip install -e plugins/ablate-mlflow")
ablate_mlflow = pytest.importorskip("ablate_mlflow", reason="pip install -e plugins/ablate-mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from ablate import rundir  # noqa: E402
from ablate.recipe import Arm, load_recipe  # noqa: E402
from ablate.registry import AblateError  # noqa: E402
from ablate.testing import TINY_RECIPE, train_state  # noqa: E402
from ablate.tracking import flatten  # noqa: E402

RECIPE = TINY_RECIPE


class Stop(Exception):
    pass


class StopAt:
    """Stops training as a crash would, as ``epoch`` starts (its predecessor is saved)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, state):
        if state.epoch == self.epoch:
            raise Stop


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


@pytest.fixture
def plugin(register_plugin):
    register_plugin(ablate_mlflow, name="mlflow")


def write_recipe(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE + extra)
    return path


def runs_of(client: MlflowClient, experiment: str = "ablate") -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time"]) if found else []


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def assert_mirrors(client: MlflowClient, run, run_dir: Path) -> None:
    """Params, every metrics.csv column's history, and the artifacts are those of the run directory."""
    rows = rundir.read_metrics(run_dir)
    assert run.data.params == flatten(rundir.read_recipe(run_dir))
    for key in rows[0]:
        if key != "epoch":
            assert history(client, run.info.run_id, key) == [(int(r["epoch"]), r[key]) for r in rows], key
    summary = rundir.read_summary(run_dir)
    assert run.data.metrics["test_acc"] == summary["test_acc"] and run.data.metrics["test_loss"] == summary["test_loss"]
    assert run.data.tags["gradflow_verdict"] == summary["gradflow"]["verdict"]
    assert run.data.metrics["gradflow_ratio"] == summary["gradflow"]["ratio"]
    assert run.data.tags["gradflow_verdict_at_init"] == summary["gradflow"]["at_init"]["verdict"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {rundir.SUMMARY, rundir.RECIPE, rundir.FIGURES}
    figures = sorted(a.path for a in client.list_artifacts(run.info.run_id, rundir.FIGURES))
    assert figures and figures == sorted(f"{rundir.FIGURES}/{p.name}" for p in (run_dir / rundir.FIGURES).glob("*.png"))
    local = Path(client.download_artifacts(run.info.run_id, "", str(run_dir.parent / "downloaded")))
    for name in (rundir.SUMMARY, rundir.RECIPE, *figures):
        assert (local / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_a_run_and_its_resume_are_one_mlflow_run_mirroring_the_run_directory(tmp_path, store, plugin):
    from ablate.train.trainer import train

    config = load_recipe(write_recipe(tmp_path, f'[[callbacks]]\nname = "mlflow"\ntracking_uri = "{store}"\n'))[0].config
    run_dir = tmp_path / "run"
    with pytest.raises(Stop):
        train(config, run_dir, extra_callbacks=[StopAt(3)])
    client = MlflowClient(store)
    (first,) = runs_of(client)
    assert first.info.status == "RUNNING" and first.info.run_name == "VGG08"
    assert history(client, first.info.run_id, "val_acc") == [(1, rundir.read_metrics(run_dir)[0]["val_acc"])]

    summary = train(config, run_dir)  # resumes at epoch 3 and sends epoch 2 first
    (run,) = runs_of(client)
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert summary["epochs_completed"] == 3
    tags = run.data.tags
    assert {k: tags[k] for k in ("arm", "arch", "norm", "shortcut", "seed")} == {
        "arm": "VGG08", "arch": "vgg08", "norm": "none", "shortcut": "none", "seed": "0"}
    assert tags["run_hash"] == Arm("", config).digest() and tags["run_dir"] == str(run_dir.resolve())
    assert "mlflow.parentRunId" not in tags
    assert_mirrors(client, run, run_dir)


def test_a_tracker_does_not_change_the_runs_identity(tmp_path, store, plugin):
    path = write_recipe(tmp_path, "")
    plain, tracked = load_recipe(path)[0], load_recipe(path, {"callbacks": [{"name": "mlflow", "tracking_uri": store}]})[0]
    assert tracked.config["callbacks"] and plain.dirname() == tracked.dirname()


def test_an_unusable_store_is_one_line(tmp_path, plugin):
    import torch

    logger = ablate_mlflow.MlflowLogger(tracking_uri="nosuchscheme://nowhere")
    with pytest.raises(AblateError, match=r"^callback mlflow: cannot use the tracking store nosuchscheme://nowhere: [^\n]+$"):
        logger.on_run_start(train_state(torch.nn.Linear(2, 2), run_dir=tmp_path))


def test_a_sweep_is_a_parent_run_with_one_child_per_run(tmp_path, store):
    path = write_recipe(tmp_path, "[sweep]\nseeds = [0, 1]\n")
    out = tmp_path / "sw"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "ablate", "sweep", str(path), "--out", str(out), "--jobs", "2",
                             "--callback", "mlflow"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(store)
    runs = runs_of(client)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["run_dir"]: r for r in runs if r is not parent}
    assert parent.info.run_name == "sw" and parent.data.tags["sweep_dir"] == str(out.resolve())
    records = json.loads((out / "sweep.json").read_text())["runs"]
    assert sorted(children) == sorted(str((out / r["dir"]).resolve()) for r in records)
    for record in records:
        child = children[str((out / record["dir"]).resolve())]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (child.info.run_name, child.data.tags["seed"]) == (record["name"], str(record["seed"]))
        assert child.data.tags["run_hash"] == record["dir"].rsplit("-", 1)[1]
        assert_mirrors(client, child, out / record["dir"])
