"""benchmarks/compare.py: the side-by-side speed harness runs end to end and judges its ratios honestly."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare", ROOT / "benchmarks" / "compare.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def test_a_steady_ratio_is_judged_against_its_goal_and_a_noisy_one_is_not():
    steady = compare.summarise("vgg08", {"ablate": [130, 131, 129, 130], "coursework": [100, 100, 100, 100],
                                         "limit": [140, 140, 139, 141]}, "ablate")
    assert steady["ratios"]["ablate/coursework"]["median"] == pytest.approx(1.3)
    assert steady["ratios"]["ablate/coursework"]["met"] is True
    assert steady["ratios"]["ablate/limit"]["met"] is False  # 0.93 < 0.95
    noisy = compare.summarise("vgg38", {"ablate": [100, 150, 80, 120], "lightning": [100, 100, 100, 100]}, "ablate")
    assert noisy["ratios"]["ablate/lightning"]["noisy"] and noisy["ratios"]["ablate/lightning"]["met"] is None
    assert "NOISY" in compare.report(noisy, steps=50)
    assert "smoke test, not a result" in compare.report(noisy, steps=5)


def test_rounds_interleave_the_contenders_after_one_warm_up_each():
    calls = []
    epochs = {name: (lambda name=name: calls.append(name) or 1.0) for name in "abc"}
    speeds = compare.run_rounds(epochs, rounds=3)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert all(len(v) == 3 for v in speeds.values())


def test_rounds_last_long_enough_unless_steps_are_given():
    from argparse import Namespace

    args = Namespace(arch="vgg08", norm="bn", shortcut="identity", width=4, num_classes=5, batch_size=10, steps=0,
                     round_seconds=0.001, amp="off", compile=None)
    device = compare.torch.device("cpu")
    assert compare.steps_per_round(args, device) == compare.MIN_STEPS  # never fewer than 50 steps
    args.round_seconds = 60.0
    assert compare.steps_per_round(args, device) > 10 * compare.MIN_STEPS  # a tiny model's step is far below 0.1 s
    args.steps = 7
    assert compare.steps_per_round(args, device) == 7


def test_each_contender_reports_its_page_faults_per_step():
    speeds, faults = {"ablate": [130.0, 131.0], "limit": [140.0, 141.0]}, {"ablate": [9000, 50, 70], "limit": [9000, 0, 2]}
    result = compare.summarise("vgg38", speeds, "ablate", faults, steps=10)
    assert result["contenders"]["ablate"]["page_faults_per_step"] == 6  # the warm-up's 9,000 left out
    assert "6 page faults/step" in compare.report(result, steps=10)


def test_compare_runs_all_four_contenders_end_to_end(tmp_path):
    pytest.importorskip("lightning")
    out = tmp_path / "compare.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--arch", "vgg08", "--width",
                             "4", "--num-classes", "5", "--steps", "2", "--batch-size", "10", "--rounds", "2",
                             "--json", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    for name in ("limit", "ablate", "coursework", "lightning", "ablate/limit", "ablate/coursework", "ablate/lightning"):
        assert any(line.startswith(f"{name}:") for line in lines), name
    assert "smoke test, not a result" in result.stdout
    saved = json.loads(out.read_text())["results"][0]
    assert saved["arch"] == "vgg08" and all(v["median"] > 0 for v in saved["contenders"].values())
    assert saved["steps"] == 2 and all(v["page_faults_per_step"] >= 0 for v in saved["contenders"].values())
    assert "vgg08: 2 steps per round" in lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.json"]  # no run directories left behind


def test_a_baseline_that_is_no_contender_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--contenders", "limit,ablate",
                             "--baseline", "lightning"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--baseline 'lightning' is not one of --contenders: limit, ablate" in result.stderr


def test_round_seconds_with_steps_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--steps", "5",
                             "--round-seconds", "3"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "--round-seconds 3 cannot apply with --steps 5: give one of them"
