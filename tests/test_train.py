"""Training end to end: run directory, determinism, kill and resume, NaN, checkpoints."""

import csv
import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from ablate.models import build_model
from ablate.recipe import resolve
from ablate.registry import AblateError
from ablate.train.checkpoint import load_checkpoint, save_checkpoint
from ablate.train.trainer import NonFiniteLossError, lr_at, train

TINY = ["--dataset", "synthetic", "--set", "data.train_size=300", "--set", "data.val_size=100",
        "--set", "data.test_size=100", "--set", "model.width=8", "--set", "train.threads=1", "--batch-size", "50"]
METRICS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc"]


def tiny_config(**train):
    raw = {"model": {"arch": "vgg08", "norm": "bn", "width": 8},
           "data": {"dataset": "synthetic", "train_size": 200, "val_size": 100, "test_size": 100, "num_classes": 10},
           "train": {"epochs": 2, "batch_size": 50, "threads": 1, **train}, "gradflow": {"every": 0}}
    return resolve(raw, "test", {})[0].config


def metric_rows(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        return [{k: row[k] for k in METRICS} for row in csv.DictReader(fh)]


def test_run_writes_a_complete_run_directory(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "recipes/vgg38.toml", "--norm", "bn", "--shortcut", "proj", "--epochs", "2", "--out", str(out), "-q", *TINY)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {"recipe.toml", "metrics.csv", "checkpoint.safetensors", "best.safetensors", "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("params", "epochs_completed", "best_val_epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert summary[key] is not None, key
    assert summary["status"] == "complete" and summary["epochs_completed"] == 2
    assert 0 <= summary["test_acc"] <= 1 and summary["environment"]["torch"] == torch.__version__
    assert "ablate" in summary["environment"]["plugins"]
    assert [r["epoch"] for r in metric_rows(out)] == ["1", "2"]
    assert "epoch   2" in result.stdout and "done: 2 epochs" in result.stdout
    again = cli("run", "recipes/vgg38.toml", "--norm", "bn", "--shortcut", "proj", "--epochs", "2", "--out", str(out), "-q", *TINY)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_same_seed_gives_the_same_metrics_on_cpu(tmp_path):
    a = train(tiny_config(), tmp_path / "a")
    b = train(tiny_config(), tmp_path / "b")
    train(tiny_config(seed=1), tmp_path / "c")
    assert metric_rows(tmp_path / "a") == metric_rows(tmp_path / "b")
    assert (a["test_loss"], a["test_acc"]) == (b["test_loss"], b["test_acc"])
    assert metric_rows(tmp_path / "a") != metric_rows(tmp_path / "c")


def test_killed_run_resumes_to_identical_metrics(tmp_path):
    args = ["run", "recipes/vgg38.toml", "--norm", "bn", "--shortcut", "proj", "--epochs", "3", "-q", *TINY]
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = subprocess.run([sys.executable, "-m", "ablate", *args, "--out", str(full)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([sys.executable, "-m", "ablate", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "metrics.csv").exists() and time.time() < deadline:  # written after the checkpoint
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(metric_rows(killed)) < 3
    resumed = subprocess.run([sys.executable, "-m", "ablate", *args, "--out", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "(resuming)" in resumed.stdout
    assert metric_rows(killed) == metric_rows(full)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, killed))
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "best_val_epoch"):
        assert a[key] == b[key], key


def test_changed_recipe_in_the_same_directory_is_refused(tmp_path):
    train(tiny_config(), tmp_path)
    from ablate.train.resume import decide
    with pytest.raises(AblateError, match=r"holds a run of a different recipe \(train.lr: 0.001 -> 0.01\)"):
        decide(tmp_path, tiny_config(lr=0.01))
    assert decide(tmp_path, tiny_config()) == "complete"
    assert decide(tmp_path, tiny_config(lr=0.01), mode="restart") == "start"
    assert not (tmp_path / "summary.json").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(epochs=3)

    class PoisonSecondEpoch:
        def on_after_backward(self, state):
            if state.epoch == 2:
                for p in state.model.parameters():
                    p.grad.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match="loss became nan in epoch 2 .* keeping the checkpoint of epoch 1"):
        train(config, tmp_path, extra_callbacks=[PoisonSecondEpoch()])
    assert len(metric_rows(tmp_path)) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 1 and summary["diverged"]["epoch"] == 2


def test_checkpoint_round_trip_restores_model_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    model = build_model("vgg08", norm="bn", width=8, num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", model, opt, {"epoch": 4, "best": {"epoch": 3}})
    expected_draw = torch.rand(3)
    other = build_model("vgg08", norm="bn", width=8, num_classes=10)
    other_opt = torch.optim.Adam(other.parameters(), lr=5.0)
    state = load_checkpoint(tmp_path / "c.safetensors", other, other_opt, torch.device("cpu"))
    assert state == {"epoch": 4, "best": {"epoch": 3}}
    assert torch.equal(torch.rand(3), expected_draw)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict(), other_opt.state_dict()
    assert sb["param_groups"][0]["lr"] == 1e-3
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(sa["state"][0][key], sb["state"][0][key])


def test_cosine_schedule_per_epoch():
    t = {"schedule": "cosine", "lr": 1e-3, "min_lr": 2e-5, "epochs": 100}
    assert lr_at(1, t) == pytest.approx(1e-3)
    assert lr_at(51, t) == pytest.approx((1e-3 + 2e-5) / 2)
    assert lr_at(100, t) > 2e-5 and lr_at(100, t) == pytest.approx(2e-5 + 0.98e-3 * (1 + math.cos(math.pi * 0.99)) / 2)


def test_unwritable_output_is_one_clear_error(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("run", "recipes/vgg08.toml", "--epochs", "1", "--out", str(blocker / "run"), *TINY)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot write the run directory {blocker / 'run'}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_dataset_is_one_clear_error_and_leaves_no_run(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "recipes/vgg38.toml", "--data-dir", str(tmp_path / "none"), "--out", str(out))
    assert result.returncode == 2 and "cifar100: no valid copy in" in result.stderr
    assert not out.exists()


def test_resume_into_a_different_model_is_one_line_and_keeps_the_run(tmp_path):
    train(tiny_config(epochs=1), tmp_path)
    before = (tmp_path / "recipe.toml").read_text()
    (tmp_path / "summary.json").unlink()  # an unfinished run, as after a kill
    other = resolve({**{k: tiny_config()[k] for k in ("data", "train")}, "model": {"arch": "vgg08", "width": 8}},
                    "test", {})[0].config
    with pytest.raises(AblateError, match="its checkpoint does not fit this recipe's model or optimiser"):
        train(other, tmp_path)
    assert (tmp_path / "recipe.toml").read_text() == before


def test_resume_flag_does_not_relabel_a_complete_run(tmp_path):
    from ablate.train.resume import decide

    train(tiny_config(epochs=1), tmp_path)
    with pytest.raises(AblateError, match="holds a complete run of a different recipe"):
        decide(tmp_path, tiny_config(epochs=1, lr=0.5), mode="resume")


def test_a_diverging_arm_does_not_stop_the_others_and_the_run_exits_3(cli, tmp_path):
    recipe = tmp_path / "arms.toml"
    recipe.write_text(
        'name = "arms"\n[model]\narch = "vgg08"\nwidth = 8\n[data]\ndataset = "synthetic"\ntrain_size = 100\n'
        'val_size = 50\ntest_size = 50\nnum_classes = 10\n[train]\nepochs = 1\nbatch_size = 50\n'
        '[[arms]]\nname = "diverges"\ntrain = { lr = 1e6 }\n[[arms]]\nname = "fine"\n')
    result = cli("run", str(recipe), "--out", str(tmp_path / "runs"), "-q")
    assert result.returncode == 3  # EXIT_DIVERGED, as for one arm (2 when an arm failed otherwise)
    assert "error: arm 'diverges': loss became nan in epoch 1" in result.stdout
    assert result.stderr.strip().endswith("error: 1 of 2 arms diverged: diverges")
    assert (tmp_path / "runs" / "report.md").exists()


def test_every_epoch_trains_in_training_mode_whatever_a_callback_left(tmp_path):
    class EvalAfterEpoch:  # e.g. a callback that evaluates the model and forgets to switch back
        modes: list[bool] = []

        def on_step_end(self, state):
            self.modes.append(state.model.training)

        def on_epoch_end(self, state):
            state.model.eval()
            return {}

    train(tiny_config(epochs=2), tmp_path / "run", extra_callbacks=[EvalAfterEpoch()])
    assert EvalAfterEpoch.modes and all(EvalAfterEpoch.modes)
