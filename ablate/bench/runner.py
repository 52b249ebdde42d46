"""Run each arm in a fresh subprocess, so that one arm's allocator state cannot skew the next."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterable

from ablate.bench.arms import BenchArm
from ablate.bench.schema import empty_row


def run_arm(arm: BenchArm, timeout: float | None = None) -> dict[str, Any]:
    """Bench ``arm`` in ``python -m ablate.bench.worker``; a crash or timeout becomes a row with an error."""
    command = [sys.executable, "-m", "ablate.bench.worker", json.dumps(arm.as_dict())]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(arm, f"timed out after {timeout:g} s; use fewer --steps or a smaller --batch-size")
    row = _last_json_line(done.stdout)
    if row is not None:
        return row
    return _failed(arm, _crash_reason(done))


def run_arms(arms: Iterable[BenchArm], timeout: float | None = None) -> list[dict[str, Any]]:
    """Bench the arms one after another (never concurrently: they would share the device)."""
    return [run_arm(arm, timeout) for arm in arms]


def _last_json_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _crash_reason(done: subprocess.CompletedProcess) -> str:
    if done.returncode < 0:
        hint = " (out of memory?)" if done.returncode == -9 else ""
        return f"worker killed by signal {-done.returncode}{hint}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return f"worker exited with code {done.returncode}: {lines[-1].strip() if lines else 'no output'}"


def _failed(arm: BenchArm, error: str) -> dict[str, Any]:
    row = empty_row(arm)
    row["error"] = error
    return row
