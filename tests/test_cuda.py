"""Checks that need an NVIDIA GPU: ``python -m pytest -m cuda tests/test_cuda.py`` (skipped without one)."""

import copy
import json

import pytest
import torch

from ablate.bench import BenchArm, run_arm
from ablate.bench.schema import row_problems
from ablate.models import build_model
from ablate.train.setup import configure_cuda, make_optimizer, pick_precision
from ablate.train.step import train_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]
TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}


def test_bf16_channels_last_training_step_has_finite_loss():
    configure_cuda()
    device = torch.device("cuda")
    model = build_model("vgg38", norm="bn", shortcut="identity").to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TRAIN, device)
    assert optimizer.defaults.get("fused") is True
    precision = pick_precision("bf16", device)
    x = torch.randn(32, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (32,), device=device)
    for _ in range(3):
        loss_sum, correct = train_step(model, optimizer, x, y, precision)
    assert loss_sum.device.type == "cuda" and torch.isfinite(loss_sum).item()
    assert 0 <= correct.item() <= 32


@pytest.mark.parametrize("compile_mode", [None, "reduce-overhead"])
def test_bench_worker_on_cuda_reports_throughput(compile_mode):
    arm = BenchArm("vgg08", "bn", "identity", device="cuda", amp="bf16", channels_last=True, batch_size=64,
                   warmup=2, steps=5, compile=compile_mode)
    row = run_arm(arm)
    assert row["error"] is None, row["error"]
    assert row_problems(row) == []
    assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
    assert row["peak_memory_kind"] == "cuda_max_allocated" and row["peak_memory_bytes"] > 0
    assert row["amp"] == "bf16" and row["environment"]["device_name"]
    assert (row["compile_seconds"] is None) == (compile_mode is None)


def test_short_run_on_cuda(cli, tmp_path):
    out = tmp_path / "run"
    done = cli("run", "recipes/vgg08.toml", "--dataset", "synthetic", "--epochs", "1", "--device", "cuda",
               "--set", "data.train_size=2000", "--set", "data.val_size=500", "--set", "data.test_size=500",
               "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["amp"] == "bf16" and summary["channels_last"] is True
    assert summary["environment"]["device"].startswith("cuda")


def _twins(tmp_path):
    """Two identical VGG08 BN+RC models, each with its fused Adam and gradient-flow recorder (every 2nd step)."""
    from types import SimpleNamespace

    from ablate.gradflow import GradFlowRecorder

    device = torch.device("cuda")
    torch.manual_seed(0)
    base = build_model("vgg08", norm="bn", shortcut="identity").to(device, memory_format=torch.channels_last)
    twins = []
    for name in ("eager", "graphed"):
        model = copy.deepcopy(base)
        recorder = GradFlowRecorder(every=2)
        state = SimpleNamespace(model=model, run_dir=tmp_path / name, epoch=1, step=0)
        state.run_dir.mkdir()
        recorder.on_run_start(state)
        recorder.on_epoch_start(state)
        twins.append((model, make_optimizer(model, TRAIN, device), recorder, state))
    return twins, base


def test_the_whole_step_graph_gives_the_eager_losses_and_gradient_statistics(tmp_path):
    from ablate.train.graph import GraphedStep
    from ablate.train.setup import set_lr

    configure_cuda(deterministic=True)
    device, precision = torch.device("cuda"), pick_precision("bf16", torch.device("cuda"))
    gen = torch.Generator(device=device).manual_seed(1)
    batches = [(torch.randn(64, 3, 32, 32, device=device, generator=gen).contiguous(memory_format=torch.channels_last),
                torch.randint(0, 100, (64,), device=device, generator=gen)) for _ in range(20)]
    ((eager, eager_opt, eager_rec, eager_state), (model, optimizer, recorder, state)), initial = _twins(tmp_path)
    step = GraphedStep(model, optimizer, precision, device, recorder.record_on_device)
    set_lr(optimizer, 5e-4)
    set_lr(eager_opt, 5e-4)
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor) and optimizer.param_groups[0]["capturable"]
    eager_losses, graphed_losses = [], []
    for x, y in batches:
        loss, _ = train_step(eager, eager_opt, x, y, precision, lambda: eager_rec.on_after_backward(eager_state))
        eager_state.step += 1
        eager_losses.append(loss.item() / len(y))
        loss, _ = step(x, y)
        graphed_losses.append(loss.item() / len(y))
    assert graphed_losses == pytest.approx(eager_losses, rel=2e-2, abs=1e-3)  # bf16 autocast, 20 Adam steps
    moved = sum((a - b).float().norm().item() for a, b in zip(eager.parameters(), initial.parameters()))
    apart = sum((a - b).float().norm().item() for a, b in zip(model.parameters(), eager.parameters()))
    assert moved > 0 and apart < 0.05 * moved  # the replays stepped the optimiser as the eager steps did
    for rec, st in ((eager_rec, eager_state), (recorder, state)):
        rec.on_epoch_end(st)
    assert eager_rec.epoch_info[1] == recorder.epoch_info[1] == {"steps": 10, "nonfinite_steps": 0}
    for key, values in eager_rec.table.values.items():
        assert recorder.table.values[key] == pytest.approx(values, rel=5e-2, abs=1e-7), key


def test_a_run_with_the_whole_step_graph_trains_resumes_and_records(cli, tmp_path):
    out = tmp_path / "run"
    args = ["run", "recipes/vgg08.toml", "--dataset", "synthetic", "--device", "cuda", "--set", "train.graph=step",
            "--set", "data.train_size=1000", "--set", "data.val_size=200", "--set", "data.test_size=200",
            "--out", str(out), "-q"]
    first = cli(*args, "--epochs", "1")
    assert first.returncode == 0 and "not applied" not in first.stderr, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary["status"] = "running"  # as if killed after epoch 1: the next call resumes from the checkpoint
    (out / "summary.json").write_text(json.dumps(summary))
    second = cli(*args, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["graph"] == "step" and summary["status"] == "complete" and summary["epochs_completed"] == 2
    assert summary["gradflow"]["per_epoch"][-1]["steps"] == 10  # 1,000 images in batches of 100
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3 and "compile_seconds" in metrics[0]
