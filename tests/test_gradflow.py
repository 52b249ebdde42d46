"""Per-layer gradient statistics: hand computations, the recorder's epochs, CSV, resume, trainer wiring."""

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ablate.gradflow import (
    COLUMNS,
    STATISTICS,
    DeviceStatistics,
    GradFlowRecorder,
    gradient_stats_at_init,
    load_gradflow,
    weight_layers,
)


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))


G1 = torch.tensor([[1.0, -2.0], [3.0, -4.0]])           # mean|g| 2.5, L2 sqrt(30), max 4
G2 = torch.tensor([[0.5, 0.0], [0.0, -1.5], [1.0, 1.0]])  # mean|g| 4/6, L2 sqrt(4.5), max 1.5


def set_grads(model, scale: float = 1.0) -> None:
    model[0].weight.grad = G1 * scale
    model[2].weight.grad = G2 * scale
    for p in (model[0].bias, model[2].bias):
        p.grad = torch.full_like(p, 100.0)  # biases are not layers: must not leak into anything


def hand(g: torch.Tensor) -> list[float]:
    flat = [abs(v) for v in g.flatten().tolist()]
    return [sum(flat) / len(flat), math.sqrt(sum(v * v for v in flat)), max(flat)]


def state(model, run_dir: Path, epoch: int = 0, step: int = 0):
    return SimpleNamespace(model=model, run_dir=run_dir, epoch=epoch, step=step, metrics={})


def test_layers_are_weights_with_two_or_more_dims_in_order():
    model = tiny_model()
    assert [name for name, _ in weight_layers(model)] == ["0", "2"]


def test_statistics_match_a_hand_computation():
    model = tiny_model()
    set_grads(model)
    values = DeviceStatistics([p for _, p in weight_layers(model)])()
    assert values.shape == (2, len(STATISTICS))
    for row, grad, weight in ((0, G1, model[0].weight), (1, G2, model[2].weight)):
        expected = hand(grad) + hand(weight.detach())
        assert values[row].tolist() == pytest.approx(expected, rel=1e-6)
    assert values[0, 0].item() == pytest.approx(2.5)
    assert values[0, 1].item() == pytest.approx(math.sqrt(30))
    assert values[1, 2].item() == pytest.approx(1.5)


def test_a_missing_gradient_counts_as_zero():
    model = tiny_model()
    model[0].weight.grad = G1
    values = DeviceStatistics([p for _, p in weight_layers(model)])()
    assert values[1, :3].tolist() == [0.0, 0.0, 0.0]


def run_epoch(recorder, model, run_dir, epoch, scales, first_step):
    s = state(model, run_dir, epoch, first_step)
    recorder.on_epoch_start(s)
    for i, scale in enumerate(scales):
        s.step = first_step + i
        set_grads(model, scale)
        recorder.on_after_backward(s)
    return recorder.on_epoch_end(s)


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "gradflow.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_epoch_mean_and_last_and_the_tidy_csv(tmp_path):
    model = tiny_model()
    recorder = GradFlowRecorder(every=1)
    recorder.on_run_start(state(model, tmp_path))
    extra = run_epoch(recorder, model, tmp_path, 1, [1.0, 3.0], 0)
    table = load_gradflow(tmp_path)
    assert table.layers == ["0", "2"]
    assert table.profile(1, "grad_mean_abs", "mean") == pytest.approx([2.5 * 2, 4 / 6 * 2])
    assert table.profile(1, "grad_mean_abs", "last") == pytest.approx([2.5 * 3, 4 / 6 * 3])
    assert table.profile(1, "grad_max_abs", "mean") == pytest.approx([8.0, 3.0])
    assert extra == {"grad_ratio": pytest.approx(2.5 / (4 / 6)), "grad_steps": 2, "grad_nonfinite_steps": 0}
    rows = read_rows(tmp_path)
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 1 * 2 * 6 * 2  # epochs x layers x statistics x aggregates
    assert {(r["statistic"], r["aggregate"]) for r in rows} == {(s, a) for s in STATISTICS for a in ("mean", "last")}
    assert {r["layer"]: r["layer_index"] for r in rows} == {"0": "0", "2": "1"}


def test_every_n_records_every_nth_step_of_the_run(tmp_path):
    model = tiny_model()
    recorder = GradFlowRecorder(every=2)
    recorder.on_run_start(state(model, tmp_path))
    run_epoch(recorder, model, tmp_path, 1, [1.0, 100.0, 3.0], 0)  # steps 0 and 2 recorded
    assert load_gradflow(tmp_path).profile(1)[0] == pytest.approx(2.5 * 2)
    assert recorder.epoch_info[1] == {"steps": 2, "nonfinite_steps": 0}


def test_every_zero_records_nothing(tmp_path):
    model = tiny_model()
    recorder = GradFlowRecorder(every=0)
    recorder.on_run_start(state(model, tmp_path))
    assert run_epoch(recorder, model, tmp_path, 1, [1.0], 0) == {}
    assert not (tmp_path / "gradflow.csv").exists()


def test_non_finite_steps_are_left_out_of_the_mean_and_counted(tmp_path):
    model = tiny_model()
    recorder = GradFlowRecorder(every=1)
    recorder.on_run_start(state(model, tmp_path))
    run_epoch(recorder, model, tmp_path, 1, [1.0, math.inf, 3.0], 0)
    assert load_gradflow(tmp_path).profile(1)[0] == pytest.approx(2.5 * 2)
    epoch = recorder.summary()["per_epoch"][0]
    assert (epoch["steps"], epoch["nonfinite_steps"]) == (3, 1)
    assert epoch["verdict"] == "exploding"  # a third of the steps overflowed


def test_recording_never_reads_back_to_the_host(tmp_path, monkeypatch):
    model = tiny_model()
    recorder = GradFlowRecorder(every=1)
    recorder.on_run_start(state(model, tmp_path))
    recorder.on_epoch_start(state(model, tmp_path, 1))

    def sync(*args, **kwargs):
        raise AssertionError("host sync in on_after_backward")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    for step in range(3):
        set_grads(model)
        recorder.on_after_backward(state(model, tmp_path, 1, step))
    monkeypatch.undo()
    recorder.on_epoch_end(state(model, tmp_path, 1, 2))
    assert recorder.epoch_info[1]["steps"] == 3


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def test_stats_at_init_match_one_backward_and_leave_no_trace():
    model = small_cnn().eval()
    x, y = torch.randn(8, 3, 6, 6), torch.arange(8) % 5
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    stats = gradient_stats_at_init(model, x, y)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(buffers[k], v) for k, v in model.state_dict().items())
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert stats.layers == ["0", "6"]
    # the same measurement by hand, with the same dropout draw
    reference = small_cnn().train()
    torch.set_rng_state(rng)
    nn.functional.cross_entropy(reference(x), y).backward()
    for i, layer in enumerate((reference[0], reference[6])):
        assert stats.values[i][:3] == pytest.approx(hand(layer.weight.grad), rel=1e-5)
    assert stats.summary()["verdict"] in ("healthy", "vanishing", "exploding")


def test_at_init_rows_are_epoch_zero_and_a_resume_keeps_earlier_epochs(tmp_path):
    model = small_cnn()
    x, y = torch.randn(8, 3, 6, 6), torch.arange(8) % 5
    first = GradFlowRecorder(every=1, init_batch=lambda: (x, y))
    first.on_run_start(state(model, tmp_path))
    for epoch in (1, 2):
        s = state(model, tmp_path, epoch, epoch - 1)
        first.on_epoch_start(s)
        nn.functional.cross_entropy(model(x), y).backward()
        first.on_after_backward(s)
        first.on_epoch_end(s)
        model.zero_grad()
    before = load_gradflow(tmp_path)
    assert before.epochs == [0, 1, 2]
    assert before.profile(0, aggregate="mean") == before.profile(0, aggregate="last")

    # killed after epoch 1's checkpoint: the resumed recorder drops epoch 2 and records it again
    resumed = GradFlowRecorder(every=1, init_batch=lambda: pytest.fail("no init measurement on resume"))
    resumed.on_run_start(state(model, tmp_path, epoch=1, step=1))
    s = state(model, tmp_path, 2, 1)
    resumed.on_epoch_start(s)
    nn.functional.cross_entropy(model(x), y).backward()
    resumed.on_after_backward(s)
    resumed.on_epoch_end(s)
    after = load_gradflow(tmp_path)
    assert after.epochs == [0, 1, 2]
    assert after.profile(0) == before.profile(0) and after.profile(1) == before.profile(1)
    rows = read_rows(tmp_path)
    keys = [(r["epoch"], r["layer_index"], r["statistic"], r["aggregate"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * 2 * 6 * 2
    assert [e["epoch"] for e in resumed.summary()["per_epoch"]] == [1, 2]


def test_a_fresh_start_ignores_a_stale_file(tmp_path):
    (tmp_path / "gradflow.csv").write_text(
        "epoch,layer_index,layer,statistic,aggregate,value\n7,0,old,grad_mean_abs,mean,1.0\n")
    recorder = GradFlowRecorder(every=1)
    recorder.on_run_start(state(tiny_model(), tmp_path))
    assert load_gradflow(tmp_path).epochs == []


def tiny_config(**train):
    from ablate.recipe import load_recipe

    overrides = {"data.dataset": "synthetic", "data.train_size": 200, "data.val_size": 100, "data.test_size": 100,
                 "data.num_classes": 10, "model.width": 8, "train.epochs": 2, "train.device": "cpu",
                 "train.threads": 2, **{f"train.{k}": v for k, v in train.items() if k != "every"}}
    if "every" in train:
        overrides["gradflow.every"] = train["every"]
    return load_recipe(Path(__file__).parents[1] / "recipes" / "vgg08.toml", overrides)[0].config


def test_trainer_records_gradflow_without_changing_training(tmp_path):
    from ablate.rundir import read_metrics
    from ablate.train.trainer import train

    summary = train(tiny_config(every=1), tmp_path / "on")
    plain = train(tiny_config(every=0), tmp_path / "off")
    on, off = read_metrics(tmp_path / "on"), read_metrics(tmp_path / "off")
    for a, b in zip(on, off):
        assert (a["train_loss"], a["val_acc"]) == (b["train_loss"], b["val_acc"])
    assert summary["test_loss"] == plain["test_loss"]
    assert "gradflow" not in plain and not (tmp_path / "off" / "gradflow.csv").exists()
    gradflow = summary["gradflow"]
    assert gradflow["verdict"] in ("healthy", "vanishing", "exploding")
    assert gradflow["at_init"]["epoch"] == 0 and [e["epoch"] for e in gradflow["per_epoch"]] == [1, 2]
    assert gradflow["per_epoch"][0]["steps"] == 2  # 200 images, batch 100
    table = load_gradflow(tmp_path / "on")
    assert table.epochs == [0, 1, 2] and len(table.layers) == 8
    assert "grad_ratio" in on[0]


def test_trainer_resume_keeps_gradflow_rows(tmp_path):
    from ablate.train.trainer import train

    train(tiny_config(epochs=1), tmp_path)
    one = load_gradflow(tmp_path)
    summary = train(tiny_config(epochs=2), tmp_path)  # resumes after epoch 1
    two = load_gradflow(tmp_path)
    assert two.epochs == [0, 1, 2]
    assert two.profile(1) == one.profile(1) and two.profile(0) == one.profile(0)
    assert [e["epoch"] for e in summary["gradflow"]["per_epoch"]] == [1, 2]
    assert summary["gradflow"]["at_init"]["ratio"] == pytest.approx(one.profile(0)[0] / one.profile(0)[-1])


@pytest.mark.parametrize("text,every", [("every=5", 5), ("3", 3), ("off", 0), ("OFF", 0), ("0", 0)])
def test_gradflow_cli_option(text, every):
    from ablate.cli.options import parse_gradflow

    assert parse_gradflow(text) == every


@pytest.mark.parametrize("text", ["every=-1", "sometimes", "every=0.5"])
def test_gradflow_cli_option_rejects_nonsense(text):
    from ablate.cli.options import parse_gradflow
    from ablate.registry import AblateError

    with pytest.raises(AblateError, match="--gradflow"):
        parse_gradflow(text)


def test_tensorboard_logger(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard); "
                                              "the logger was checked by hand with it installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ablate.gradflow.tensorboard import TensorBoardLogger

    model = tiny_model()
    logger = TensorBoardLogger(tmp_path / "tb")
    s = state(model, tmp_path, 1)
    logger.on_run_start(s)
    set_grads(model)
    s.metrics = {"epoch": 1, "train_loss": 1.0, "val_acc": 0.5}
    logger.on_epoch_end(s)
    s.metrics = {"test_loss": 0.9, "test_acc": 0.6}
    logger.on_run_end(s)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"epoch/train_loss", "epoch/val_acc", "test/loss", "test/acc"} <= set(tags["scalars"])
    assert {"grad/00.0", "grad/01.2", "weight/00.0"} <= set(tags["histograms"])


def test_tensorboard_missing_is_one_clear_error(monkeypatch):
    import sys

    from ablate.gradflow.tensorboard import require_tensorboard
    from ablate.registry import AblateError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(AblateError, match="pip install tensorboard"):
        require_tensorboard()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_recording_on_cuda_never_synchronises(tmp_path):
    from ablate.models import build_model
    from ablate.train.setup import make_optimizer, pick_precision
    from ablate.train.step import train_step

    device = torch.device("cuda")
    model = build_model("vgg38", norm="bn", shortcut="identity").to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}, device)
    precision = pick_precision("bf16", device)
    x = torch.randn(32, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (32,), device=device)
    recorder = GradFlowRecorder(every=1, init_batch=(x, y), precision=precision)
    s = state(model, tmp_path, 0, 0)
    recorder.on_run_start(s)
    s.epoch = 1
    recorder.on_epoch_start(s)
    train_step(model, optimizer, x, y, precision, lambda: recorder.on_after_backward(s))  # warm up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 4):
            s.step = step
            recorder.on_after_backward(s)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    recorder.on_epoch_end(s)
    table = load_gradflow(tmp_path)
    assert table.epochs == [0, 1] and len(table.layers) == 38
    assert recorder.summary()["verdict"] == "healthy"
