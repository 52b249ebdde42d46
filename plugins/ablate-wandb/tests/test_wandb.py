"""ablate-wandb: what W&B writes offline for a run (and a resume, and a sweep), read back from its
offline run directories, against the run directory."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("wandb", reason="pip install -e plugins/ablate-wandb")
ablate_wandb = pytest.importorskip("ablate_wandb", reason="pip install -e plugins/ablate-wandb")

from wandb.proto import wandb_internal_pb2  # noqa: E402

from ablate import rundir  # noqa: E402
from ablate.recipe import Arm, load_recipe  # noqa: E402
from ablate.registry import AblateError  # noqa: E402
from ablate.testing import TINY_RECIPE  # noqa: E402

RECIPE = TINY_RECIPE
BLOCK, HEADER = 32768, 7  # the .wandb file: a 7-byte header, then LevelDB-log records in 32 KiB blocks


def records(path: Path):
    """The protobuf records of an offline run's ``run-<id>.wandb`` file."""
    data, pos, chunks = path.read_bytes(), HEADER, b""
    assert data[:4] == b":W&B"
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER]) if left >= HEADER else (0, 0, 0)
        if kind == 0:  # the padding at a block's end
            pos += left
            continue
        chunks, pos = chunks + data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def values(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def offline_run(folder: Path, run_id: str) -> dict:
    """Everything the offline directories of one W&B run id hold: run records, history rows by step, summary."""
    out: dict = {"dirs": sorted(folder.glob(f"wandb/offline-run-*-{run_id}")), "runs": [], "history": {}, "summary": {}}
    for run_dir in out["dirs"]:
        for record in records(run_dir / f"run-{run_id}.wandb"):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                out["runs"].append(record.run)
            elif kind == "history":
                row = values(record.history.item)
                out["history"].setdefault(row["_step"], []).append(row)
            elif kind == "summary":
                out["summary"].update(values(record.summary.update))
    return out


def assert_mirrors(run: dict, run_dir: Path, name: str, group: str) -> None:
    """Config, names, tags, every metrics.csv row, the figures and the final values are the run directory's."""
    for record in run["runs"]:
        config = {k: v for k, v in values(record.config.update).items() if k != "_wandb"}
        assert config == rundir.read_recipe(run_dir)
        assert (record.display_name, record.run_group, record.project) == (name, group, "ablate")
        assert f"seed:{config['train']['seed']}" in record.tags
    rows = rundir.read_metrics(run_dir)
    assert sorted(run["history"]) == [int(r["epoch"]) for r in rows]
    for row in rows:
        (logged,) = run["history"][int(row["epoch"])]  # each epoch exactly once
        assert {k: logged[k] for k in row} == row
    images = {k.split("/")[0]: logged[k] for k in logged if k.endswith("/_type")}
    assert images == {p.stem: "image-file" for p in (run_dir / rundir.FIGURES).glob("*.png")}
    assert "gradient_heatmap" in images and any((d / "files" / logged["gradient_heatmap/path"]).exists() for d in run["dirs"])
    summary = rundir.read_summary(run_dir)
    assert run["summary"]["test_acc"] == summary["test_acc"] and run["summary"]["test_loss"] == summary["test_loss"]
    assert run["summary"]["gradflow_verdict"] == summary["gradflow"]["verdict"]
    assert run["summary"]["gradflow_ratio"] == summary["gradflow"]["ratio"]


class Stop(Exception):
    pass


class StopAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, state):
        if state.epoch == self.epoch:
            raise Stop


@pytest.fixture
def plugin(register_plugin, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    register_plugin(ablate_wandb, name="wandb")


def write_recipe(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE + extra)
    return path


def test_a_resumed_run_continues_its_wandb_run(tmp_path, plugin):
    from ablate.train.trainer import train

    path = write_recipe(tmp_path, f'[[callbacks]]\nname = "wandb"\nmode = "offline"\ndir = "{tmp_path}"\n')
    config = load_recipe(path)[0].config
    run_dir = tmp_path / "run"
    with pytest.raises(Stop):
        train(config, run_dir, extra_callbacks=[StopAt(3)])
    train(config, run_dir)
    run_id = rundir.read_trackers(run_dir)["wandb"]["run_id"]
    run = offline_run(tmp_path, run_id)
    assert len(run["dirs"]) == 2 and [r.run_id for r in run["runs"]] == [run_id, run_id]  # one run, two attempts
    assert f"run_hash:{Arm('', config).digest()}" in run["runs"][0].tags
    assert_mirrors(run, run_dir, "VGG08", "")


def test_a_bad_mode_is_one_line():
    with pytest.raises(AblateError, match="^callback wandb: mode = 'offlne': choose one of online, offline, disabled$"):
        ablate_wandb.WandbLogger(mode="offlne")


def test_a_sweeps_runs_share_its_group(tmp_path):
    path = write_recipe(tmp_path, f'[sweep]\nseeds = [0, 1]\n[[callbacks]]\nname = "wandb"\ndir = "{tmp_path}"\n')
    out = tmp_path / "sw"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "ablate", "sweep", str(path), "--out", str(out), "--jobs", "2"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads((out / "sweep.json").read_text())["runs"]
    assert len(records) == 2
    for record in records:
        run_dir = out / record["dir"]
        run = offline_run(tmp_path, rundir.read_trackers(run_dir)["wandb"]["run_id"])
        assert len(run["dirs"]) == 1
        assert_mirrors(run, run_dir, record["name"], "sw")
