"""Checks that need an NVIDIA GPU: ``python -m pytest -m cuda tests/test_cuda.py`` (skipped without one)."""

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
    row = run_arm(arm, timeout=300)
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
