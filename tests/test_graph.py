"""The whole-step CUDA graph's CPU-testable parts: recipe key, fallbacks, static buffers, lr tensor, state restore.

The capture itself needs a GPU: tests/test_cuda.py compares the graphed step with the eager one.
"""

import copy
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ablate.bench import BenchArm, worker
from ablate.bench.measure import mfu, peak_flops
from ablate.cli import main
from ablate.gradflow import GradFlowRecorder
from ablate.recipe import identity, resolve
from ablate.registry import AblateError, RecipeError
from ablate.train import graph
from ablate.train.checkpoint import load_checkpoint, save_checkpoint
from ablate.train.setup import Precision, make_optimizer, set_lr, uses_cudagraphs
from ablate.train.step import train_step
from ablate.train.trainer import lr_at, train

CUDA = torch.device("cuda")  # a device object only: nothing here runs on a GPU
BF16, OFF = Precision(torch.bfloat16, None), Precision(None, None)


def config(**train_options):
    raw = {"model": {"arch": "vgg08", "norm": "bn", "width": 4},
           "data": {"dataset": "synthetic", "train_size": 100, "val_size": 50, "test_size": 50, "num_classes": 5},
           "train": {"epochs": 2, "batch_size": 25, "threads": 1, "device": "cpu", **train_options}}
    return resolve(raw, "test.toml", {})[0]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def batch(seed=1, n=6):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 4, generator=gen), torch.randint(0, 3, (n,), generator=gen)


# -- the recipe key ---------------------------------------------------------------------------------

def test_graph_is_a_recipe_key_with_choices_and_keeps_old_run_identities():
    plain = config()
    assert plain.config["train"]["graph"] == "none" and "graph" not in identity(plain.config)["train"]
    stepped = config(graph="step")
    assert identity(stepped.config)["train"]["graph"] == "step" and stepped.digest() != plain.digest()
    with pytest.raises(RecipeError) as bad:
        config(graph="whole")
    assert str(bad.value) == "test.toml: train.graph = 'whole' is not valid; choose one of: none, step"


@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_graph_step_with_compile_is_a_one_line_error(mode):
    with pytest.raises(RecipeError) as both:
        config(graph="step", compile=mode)
    message = str(both.value)
    assert "\n" not in message and f"train.compile = {mode!r}" in message and "train.compile = false" in message


# -- where it cannot apply ------------------------------------------------------------------------------

def test_unsupported_says_why_for_each_combination():
    assert graph.unsupported(torch.device("cpu"), BF16, "adam") == "CUDA graphs need a CUDA device, this run is on cpu"
    assert "GradScaler" in graph.unsupported(CUDA, Precision(torch.float16, torch.amp.GradScaler("cpu")), "adam")
    assert graph.unsupported(CUDA, BF16, "sgd") == "only a fused adam or adamw is captured, not sgd"
    assert graph.unsupported(CUDA, BF16, "adamw", ["GradAmp"]) == "callback GradAmp runs Python after every backward"
    assert graph.unsupported(CUDA, BF16, "adam") is None and graph.unsupported(CUDA, OFF, "adamw") is None


def test_only_callbacks_with_python_after_backward_block_the_graph():
    from ablate_gradamp import GradAmp

    recorder, amp = GradFlowRecorder(), GradAmp()
    tracker = SimpleNamespace(on_epoch_end=lambda state: {})
    assert graph.per_step_callbacks([recorder, tracker, amp], [recorder]) == ["GradAmp"]
    assert graph.per_step_callbacks([recorder], [recorder]) == []


def test_graph_step_reports_one_line_and_leaves_the_optimiser_eager():
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    said = []
    for device, per_step in ((torch.device("cpu"), ()), (CUDA, ["GradAmp"])):
        assert graph.graph_step("step", model, optimizer, BF16, device, "adam", per_step=per_step, report=said.append) is None
    assert graph.graph_step("none", model, optimizer, BF16, CUDA, "adam", report=said.append) is None
    assert said == ["train.graph = 'step' not applied: CUDA graphs need a CUDA device, this run is on cpu; "
                    "training with the eager step",
                    "train.graph = 'step' not applied: callback GradAmp runs Python after every backward; "
                    "training with the eager step"]
    assert optimizer.param_groups[0]["lr"] == 1e-3 and optimizer.param_groups[0]["capturable"] is False


def test_a_cpu_run_with_graph_step_trains_eagerly_and_says_so_once(tmp_path, capsys):
    summary = train(config(graph="step", epochs=1).config, tmp_path / "run")
    err = capsys.readouterr().err
    assert err.splitlines() == ["ablate: train.graph = 'step' not applied: CUDA graphs need a CUDA device, this run "
                                "is on cpu; training with the eager step"]
    assert summary["graph"] == "none" and summary["status"] == "complete"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["graph"] == "none"


def test_bench_graph_option_is_checked_and_falls_back_on_the_cpu(capsys):
    for args, expected in ((["--graph", "whole"], "--graph 'whole' is not valid; choose one of: none, step"),
                           (["--graph", "step", "--compile", "reduce-overhead"], "cannot be combined with compile")):
        with pytest.raises(SystemExit) as refused:
            main(["bench", "--arch", "vgg08", "--device", "cpu", *args])
        err = capsys.readouterr().err
        assert refused.value.code == 2 and expected in err and "Traceback" not in err
    row = worker.run(BenchArm("vgg08", device="cpu", batch_size=4, warmup=0, steps=1, num_classes=10, graph="step",
                              options={"width": 4}))
    assert row["error"] is None and row["graph"] == "none" and row["compile_seconds"] is None
    assert row["environment"]["graph"] == "none (CUDA graphs need a CUDA device, this run is on cpu)"
    assert row["mfu"] is None
    both = worker.run(BenchArm("vgg08", device="cpu", graph="step", compile="default"))
    assert both["error"] == "graph 'step' captures the whole training step; it cannot be combined with compile"


# -- the pieces of the captured step, on the CPU ---------------------------------------------------------

def test_static_batch_copies_in_place_keeps_channels_last_and_refuses_other_shapes():
    x, y = batch()
    x = x.contiguous(memory_format=torch.channels_last)
    static = graph.StaticBatch(x, y)
    pointers = static.x.data_ptr(), static.y.data_ptr()
    assert static.x.is_contiguous(memory_format=torch.channels_last)
    x2, y2 = batch(seed=2)
    static.load(x2, y2)
    assert (static.x.data_ptr(), static.y.data_ptr()) == pointers
    assert torch.equal(static.x, x2) and torch.equal(static.y, y2)
    with pytest.raises(AblateError, match=r"captured batches of shape \(6, 3, 4, 4\), got \(5, 3, 4, 4\)"):
        static.load(*batch(n=5))


def test_the_lr_tensor_is_filled_in_place_and_follows_the_schedule():
    model = tiny_model()
    optimizer = make_optimizer(model, {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}, torch.device("cpu"))
    graph.capturable_lr(optimizer, torch.device("cpu"))
    lr = optimizer.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and optimizer.param_groups[0]["capturable"] is True
    schedule = {"schedule": "cosine", "lr": 1e-3, "min_lr": 2e-5, "epochs": 5}
    for epoch in range(1, 6):
        set_lr(optimizer, lr_at(epoch, schedule))
        assert optimizer.param_groups[0]["lr"] is lr
        assert lr.item() == pytest.approx(lr_at(epoch, schedule), rel=1e-6)
    assert lr_at(5, schedule) < lr_at(1, schedule)


def test_a_checkpoint_saves_the_lr_tensor_as_a_number_and_leaves_capturable_to_the_resumed_run(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    graph.capturable_lr(optimizer, torch.device("cpu"))
    set_lr(optimizer, 5e-4)
    save_checkpoint(tmp_path / "ckpt", model, optimizer, {"epoch": 1})
    fresh = torch.optim.Adam(model.parameters(), lr=1.0)
    load_checkpoint(tmp_path / "ckpt", model, fresh, torch.device("cpu"))
    assert fresh.param_groups[0]["lr"] == pytest.approx(5e-4) and fresh.param_groups[0]["capturable"] is False


def eager_steps(model, optimizer, batches):
    return [train_step(model, optimizer, x, y, OFF)[0].item() for x, y in batches]


@pytest.mark.parametrize("steps_before", [0, 2])
def test_warm_up_leaves_weights_buffers_optimiser_and_rng_as_they_were(steps_before):
    batches = [batch(seed) for seed in range(4)]
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    eager_steps(model, optimizer, batches[:steps_before])  # a resumed run has optimiser state already
    twin = copy.deepcopy(model)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2)
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))

    def body():
        torch.rand(3)  # a random op: its draws are undone too
        train_step(model, optimizer, *batches[3], OFF)

    torch.manual_seed(7)
    graph.warm_up(body, 3, model, optimizer, torch.device("cpu"))
    after = torch.rand(2)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(2))
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
    assert eager_steps(model, optimizer, batches[:3]) == eager_steps(twin, twin_optimizer, batches[:3])


def test_the_recorder_accumulates_in_place_with_every_applied_on_the_device(tmp_path):
    """``record_on_device`` (what a captured step runs every step) records what ``on_after_backward`` does."""
    tables = []
    for graphed in (False, True):
        model, batches = tiny_model(), [batch(seed) for seed in range(5)]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        recorder = GradFlowRecorder(every=2)
        state = SimpleNamespace(model=model, run_dir=tmp_path / str(graphed), epoch=0, step=0)
        state.run_dir.mkdir()
        recorder.on_run_start(state)
        buffers = [b.data_ptr() for b in recorder._buffers()]
        for epoch in (1, 2):
            state.epoch = epoch
            recorder.on_epoch_start(state)
            for x, y in batches:
                after = recorder.record_on_device if graphed else (lambda: recorder.on_after_backward(state))
                train_step(model, optimizer, x, y, OFF, after)
                state.step += 1
            recorder.on_epoch_end(state)
        assert [b.data_ptr() for b in recorder._buffers()] == buffers  # never reallocated
        tables.append((recorder.table.values, recorder.epoch_info))
    (eager, eager_info), (device, device_info) = tables
    assert eager_info == device_info == {1: {"steps": 3, "nonfinite_steps": 0}, 2: {"steps": 2, "nonfinite_steps": 0}}
    assert eager.keys() == device.keys()
    for key in eager:
        assert eager[key] == pytest.approx(device[key], rel=1e-6), key


# -- compile's CUDA graphs, fused SGD, MFU -----------------------------------------------------------

def test_compiled_cudagraph_steps_mark_their_start(monkeypatch):
    assert uses_cudagraphs("reduce-overhead", CUDA) and uses_cudagraphs("max-autotune", CUDA)
    assert not uses_cudagraphs("default", CUDA) and not uses_cudagraphs(False, CUDA)
    assert not uses_cudagraphs("reduce-overhead", torch.device("cpu"))
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters())
    train_step(model, optimizer, *batch(), OFF)
    train_step(model, optimizer, *batch(), OFF, mark_step=True)
    assert marks == [1]


def test_sgd_is_fused_on_cuda():
    model = tiny_model()
    sgd = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0}
    assert make_optimizer(model, sgd, CUDA).defaults["fused"] is True
    assert not make_optimizer(model, sgd, torch.device("cpu")).defaults["fused"]


def test_mfu_uses_the_device_peak_table():
    assert peak_flops("NVIDIA H200", "bf16") == pytest.approx(989.4e12)
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.4e12)
    assert peak_flops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756e12)
    assert peak_flops("NVIDIA H200", "off") == pytest.approx(494.7e12)
    assert peak_flops("x86_64", "off") is None and mfu(10, 5.0, "Tesla T4", "bf16") is None
    assert mfu(840_000_000, 50_000.0, "NVIDIA H200", "bf16") == pytest.approx(840e6 * 5e4 / 989.4e12)
