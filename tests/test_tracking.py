"""``ablate.tracking``, what tracker plugins share: names and tags, the tracker run id kept in the run
directory, every epoch sent once, one parent run per sweep however many runs start together."""

import threading
from pathlib import Path

from ablate import rundir
from ablate.recipe import load_recipe
from ablate.sweep.grid import load_sweep
from ablate.sweep.runner import plan, write_manifest
from ablate.tracking import Mirror, describe, final_values, flatten, metric_rows, shared_run_id

REPO = Path(__file__).resolve().parents[1]
ROW = {"epoch": 1.0, "lr": 1e-3, "train_loss": 2.3, "train_acc": 0.1, "val_loss": 2.3, "val_acc": 0.1,
       "epoch_seconds": 1.0, "images_per_second": 100.0}


def test_flatten_gives_dotted_keys_and_json_values():
    config = {"name": "x", "train": {"lr": 0.001, "augment": True}, "callbacks": [{"name": "mlflow"}], "required_plugins": []}
    assert flatten(config) == {"name": "x", "train.lr": "0.001", "train.augment": "true",
                               "callbacks": '[{"name": "mlflow"}]', "required_plugins": "[]"}


def test_a_run_outside_a_sweep_is_named_after_its_model(tmp_path):
    config = load_recipe(REPO / "recipes/vgg38.toml", {"model.norm": "bn", "model.shortcut": "identity"})[0].config
    info = describe(tmp_path / "run", config)
    assert info.name == "VGG38 BN+RC" and info.sweep is None
    assert {k: info.tags[k] for k in ("arm", "norm", "shortcut", "seed")} == {
        "arm": "VGG38 BN+RC", "norm": "bn", "shortcut": "identity", "seed": "0"}
    assert info.params["train.lr"] == "0.001" and info.params["model.arch"] == "vgg38"


def test_a_run_of_a_sweep_is_named_as_in_sweep_json(tmp_path):
    sweep_dir, runs = load_sweep(REPO / "recipes/table1.toml", {}, tmp_path / "t1")
    sweep_dir.mkdir()
    write_manifest(sweep_dir, "table1", "local", plan(runs))
    info = describe(runs[5].path, runs[5].config)
    assert (info.name, info.sweep) == ("VGG38 BN 1e-2", sweep_dir.resolve())
    assert info.tags["run_hash"] == runs[5].path.name.rsplit("-", 1)[1]


def test_the_tracker_run_is_created_once_and_every_epoch_is_sent_once(tmp_path):
    created = []
    mirror = Mirror(tmp_path, "t", "store-a")
    assert not mirror.resumed and mirror.run_id(lambda: created.append(1) or "r1") == "r1"
    rundir.write_metrics(tmp_path, [ROW, {**ROW, "epoch": 2.0}])
    mirror.sent(mirror.unsent()[:1])
    again = Mirror(tmp_path, "t", "store-a")  # the resumed run
    assert again.resumed and again.run_id(lambda: "r2") == "r1" and created == [1]
    assert [row["epoch"] for row in again.unsent()] == [2.0]
    elsewhere = Mirror(tmp_path, "t", "store-b")  # another store: a new run there, every epoch sent to it
    assert not elsewhere.resumed and len(elsewhere.unsent()) == 2
    rundir.clear(tmp_path)  # --restart starts a new tracker run too
    assert not Mirror(tmp_path, "t", "store-a").resumed


def test_runs_starting_together_share_one_parent(tmp_path):
    created, ids = [], []

    def create():
        created.append(1)
        return f"parent{len(created)}"

    threads = [threading.Thread(target=lambda: ids.append(shared_run_id(tmp_path, "t", "s", create))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ids == ["parent1"] * 8 and created == [1]


def test_rows_and_final_values_for_a_tracker():
    assert metric_rows([{**ROW, "grad_ratio": float("nan")}]) == [(1, {k: v for k, v in ROW.items() if k != "epoch"})]
    summary = {"test_loss": 2.3, "test_acc": 0.1, "best_val_acc": 0.2, "status": "complete",
               "gradflow": {"verdict": "vanishing", "ratio": 1e-14, "at_init": {"verdict": "healthy", "ratio": 0.05}}}
    assert final_values(summary) == (
        {"test_loss": 2.3, "test_acc": 0.1, "best_val_acc": 0.2, "gradflow_ratio": 1e-14, "gradflow_ratio_at_init": 0.05},
        {"gradflow_verdict": "vanishing", "gradflow_verdict_at_init": "healthy"})
