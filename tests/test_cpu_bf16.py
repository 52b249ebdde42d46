"""bf16 autocast on the CPU: used where the CPU has native bf16, refused in one line where it would be emulated."""

import csv

import pytest

from ablate import rundir
from ablate.recipe import resolve
from ablate.registry import AblateError
from ablate.train import setup
from ablate.train.trainer import train


def tiny_config(amp):
    raw = {"model": {"arch": "vgg08", "norm": "bn", "width": 4},
           "data": {"dataset": "synthetic", "train_size": 100, "val_size": 50, "test_size": 50, "num_classes": 5},
           "train": {"epochs": 1, "batch_size": 25, "threads": 1, "device": "cpu", "amp": amp}}
    return resolve(raw, "test", {})[0].config


def test_bf16_on_a_cpu_without_native_bf16_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: False)
    out = tmp_path / "run"
    with pytest.raises(AblateError, match=r"train.amp = 'bf16' needs a CPU with native bf16 .*use --amp off") as err:
        train(tiny_config("bf16"), out)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_auto_stays_fp32_on_the_cpu(tmp_path):
    assert setup.precision_name("auto", setup.pick_device("cpu")) == "off"


@pytest.mark.skipif(not setup.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_on_a_cpu_with_native_bf16_trains_and_says_so(tmp_path):
    summary = train(tiny_config("bf16"), tmp_path / "run")
    assert summary["amp"] == "bf16" and summary["status"] == "complete"
    with (tmp_path / "run" / rundir.METRICS).open() as fh:
        assert [(row["device"], row["amp"]) for row in csv.DictReader(fh)] == [("cpu", "bf16")]
    assert summary["gradflow"]["verdict"] is not None
