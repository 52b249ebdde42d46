"""Resume is honest about devices: deterministic mode recorded, device and precision checked, compile time apart."""

import csv

import pytest
import torch

from ablate.recipe import resolve
from ablate.registry import AblateError
from ablate.train import trainer
from ablate.train.trainer import train


def tiny_config(**train_options):
    raw = {"model": {"arch": "vgg08", "norm": "bn", "width": 4},
           "data": {"dataset": "synthetic", "train_size": 100, "val_size": 50, "test_size": 50, "num_classes": 5},
           "train": {"epochs": 2, "batch_size": 25, "threads": 1, "device": "cpu", **train_options},
           "gradflow": {"every": 0}}
    return resolve(raw, "test", {})[0]


def pretend_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_deterministic_is_on_by_default_recorded_and_keeps_old_run_identities(tmp_path):
    arm = tiny_config()
    assert arm.config["train"]["deterministic"] is True
    from ablate.recipe import identity

    assert "deterministic" not in identity(arm.config)["train"]  # a run recorded before the key keeps its hash
    fast = tiny_config(deterministic=False)
    assert identity(fast.config)["train"]["deterministic"] is False and fast.digest() != arm.digest()
    summary = train(arm.config, tmp_path / "run")
    assert summary["deterministic"] is True


def test_rows_record_device_and_precision(tmp_path):
    train(tiny_config(epochs=1).config, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv") as fh:
        row = next(csv.DictReader(fh))
    assert (row["device"], row["amp"]) == ("cpu", "off")


def test_a_cpu_run_refuses_to_resume_on_cuda_unless_forced(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_config(epochs=1).config, run)
    moved = tiny_config(epochs=2, device="cuda").config
    pretend_cuda(monkeypatch)
    with pytest.raises(AblateError, match=r"trained on cpu with amp off; continuing on cuda with amp bf16.*--resume"):
        train(moved, run)
    with pytest.raises(AblateError, match="continuing on cuda with amp off"):  # same precision, other device
        trainer._check_device(run, tiny_config(epochs=2, device="cuda", amp="off").config, allow_change=False)
    trainer._check_device(run, moved, allow_change=True)  # --resume lets it through


def test_the_cli_refuses_a_device_change_in_one_line(tmp_path, monkeypatch, capsys):
    from ablate.cli import main

    args = ["run", "recipes/vgg08.toml", "--dataset", "synthetic", "--set", "data.train_size=100",
            "--set", "data.val_size=50", "--set", "data.test_size=50", "--set", "model.width=4",
            "--set", "train.threads=1", "--out", str(tmp_path / "run"), "-q", "--epochs", "1"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    summary = tmp_path / "run" / "summary.json"  # as if it had been killed before its summary said complete
    summary.write_text(summary.read_text().replace('"status": "complete"', '"status": "running"'))
    pretend_cuda(monkeypatch)  # the same command, device auto, on a machine with a GPU
    with pytest.raises(SystemExit) as refused:
        main(args)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "trained on cpu with amp off; continuing on cuda with amp bf16" in err and "Traceback" not in err


def test_compile_time_is_reported_apart_from_throughput(tmp_path, monkeypatch):
    class Compiled(torch.nn.Module):  # stands in for torch.compile's wrapper: a different module object
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)

    monkeypatch.setattr(trainer, "maybe_compile", lambda model, option: Compiled(model))
    train(tiny_config(epochs=2).config, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[0]["compile_seconds"]) > 0 and rows[1]["compile_seconds"] == ""
    first = rows[0]
    assert float(first["epoch_seconds"]) > float(first["compile_seconds"])
    timed = float(first["epoch_seconds"]) - float(first["compile_seconds"])
    assert float(first["images_per_second"]) == pytest.approx(75 / timed, rel=0.05)  # the first batch of 25 is not counted
