import contextlib
import io
import json
import os

import pytest

from ablate.bench import BenchArm, check_names, expand_arms, worker
from ablate.bench.schema import FIELDS, row_problems
from ablate.cli import main
from ablate.cli.bench import grid_arms, split_targets
from ablate.cli.inspect import describe
from ablate.models import build_model, count_params
from ablate.registry import AblateError

TINY = dict(device="cpu", batch_size=4, warmup=0, steps=2, num_classes=10)


def test_arms_are_the_cartesian_product_in_order():
    arms = expand_arms(["vgg08", "vgg38"], ["none", "bn"], ["none"])
    assert [(a.arch, a.norm, a.shortcut) for a in arms] == [
        ("vgg08", "none", "none"), ("vgg08", "bn", "none"), ("vgg38", "none", "none"), ("vgg38", "bn", "none")]


def test_repeats_are_dropped():
    arms = expand_arms(["vgg08", "vgg08"], ["none", "bn", "bn"], ["none", "proj"], steps=3)
    assert [(a.arch, a.norm, a.shortcut) for a in arms] == [("vgg08", n, s) for n in ("none", "bn") for s in ("none", "proj")]
    assert all(a.steps == 3 for a in arms)


def test_timm_models_take_every_norm_and_shortcut_of_the_grid_and_keep_their_own_by_default():
    arms = grid_arms(None, ["resnet20", "resnet56", "timm:resnet18"], ["bn", "gn"], ["none", "proj"])
    cells = [(a.arch, a.norm, a.shortcut) for a in arms]
    assert len(cells) == 12 and cells[-4:] == [("timm:resnet18", n, s) for n in ("bn", "gn") for s in ("none", "proj")]
    defaults = grid_arms(None, ["timm:resnet18", "vgg08", "timm:resnet18"], None, ["proj"])
    assert [(a.arch, a.norm, a.shortcut) for a in defaults] == [("timm:resnet18", "keep", "proj"), ("vgg08", "none", "proj")]
    with pytest.raises(AblateError, match="norm 'keep' .* applies only to timm:<name> architectures, not vgg08"):
        check_names(["timm:resnet18", "vgg08"], ["keep"], ["none"])


def test_a_timm_arm_with_surgery_is_benched():
    row = worker.run(BenchArm("timm:resnet10t", "none", "none", **TINY))
    operated = build_model("timm:resnet10t", norm="none", shortcut="none", num_classes=10)
    assert row["error"] is None and row["params"] == count_params(operated)
    assert row["params"] < count_params(build_model("timm:resnet10t", num_classes=10))


def test_compile_mode_may_follow_the_flag():
    assert split_targets([], True) == (None, "default")
    assert split_targets(["reduce-overhead", "r.toml"], True) == ("r.toml", "reduce-overhead")
    assert split_targets(["r.toml"], False) == ("r.toml", None)
    with pytest.raises(AblateError, match="--compile max-autotune"):
        split_targets(["max-autotune"], False)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """``ablate bench`` run in this process (its arms in worker subprocesses): (exit code, stdout, rows)."""
    out = tmp_path_factory.mktemp("bench") / "out.jsonl"
    args = ["bench", "--arch", "vgg08", "--norm", "none,bn", "--shortcut", "none", "--device", "cpu",
            "--steps", "2", "--warmup", "1", "--batch-size", "8", "--json", str(out)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exited:
        main(args)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return exited.value.code, stdout.getvalue(), rows


def test_bench_end_to_end(bench_run, capsys):
    code, stdout, rows = bench_run
    assert code == 0
    assert "vgg08" in stdout and "img/s" in stdout and "2 rows written" in stdout
    assert [(r["arch"], r["norm"], r["shortcut"]) for r in rows] == [("vgg08", "none", "none"), ("vgg08", "bn", "none")]
    for row in rows:
        assert row["error"] is None
        describe("vgg08", norm=row["norm"], shortcut="none", as_json=True)
        assert row["params"] == json.loads(capsys.readouterr().out)["params"]
    plain, bn = rows
    assert bn["flops_forward"] == pytest.approx(plain["flops_forward"], rel=0.05)
    assert bn["flops_train_step"] == pytest.approx(plain["flops_train_step"], rel=0.05)


def test_row_has_every_field_with_its_type(bench_run):
    row = bench_run[2][0]
    assert row_problems(row) == [] and set(row) >= set(FIELDS)
    assert row["params"] == 59_716 and row["batch_size"] == 8 and row["steps"] == 2 and row["compile"] is None
    assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0 and row["peak_memory_bytes"] > 0
    assert row["train_step_ms_iqr"] >= 0 and row["peak_memory_kind"] == "cpu_max_rss"
    assert row["flops_train_step"] > row["flops_forward"] > 0
    assert row["gradflow_verdict"] in ("vanishing", "exploding", "healthy") and row["grad_ratio"] > 0
    assert row["trainability"] in ("trainable", "at risk", "untrainable") and row["effective_rank"] >= 1
    assert bench_run[2][1]["trainability"] == "trainable" and bench_run[2][1]["signal_died_at"] is None  # VGG08 BN
    assert "trainability" in bench_run[1]
    assert {"ablate", "torch", "cuda", "cudnn", "device_name", "amp", "channels_last", "compile", "threads"} <= set(
        row["environment"])


def test_each_arm_runs_in_its_own_process(bench_run):
    pids = [r["worker_pid"] for r in bench_run[2]]
    assert len(pids) == 2 and len(set(pids)) == 2
    assert os.getpid() not in pids


def test_a_failing_arm_is_a_row_with_an_error():
    failed = worker.run(BenchArm("vgg", options={"depth": 7}, **TINY))
    assert "depth 7 is not reachable" in failed["error"] and "\n" not in failed["error"]
    assert failed["params"] is None and row_problems(failed) == []


def test_bad_arm_name_fails_before_spawning(cli):
    done = cli("bench", "--norm", "none,bnn", "--device", "cpu")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown norm 'bnn'" in lines[0] and "bn (ablate)" in lines[0]
    assert "[1/" not in done.stdout
