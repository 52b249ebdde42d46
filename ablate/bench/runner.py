"""Run each arm in a fresh subprocess, so that one arm's allocator state cannot skew the next."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ablate.bench.arms import BenchArm
from ablate.bench.schema import empty_row


def run_arm(arm: BenchArm) -> dict[str, Any]:
    """Bench ``arm`` in ``python -m ablate.bench.worker``; a crash becomes a row with an error."""
    command = [sys.executable, "-m", "ablate.bench.worker", json.dumps(arm.as_dict())]
    done = subprocess.run(command, capture_output=True, text=True)
    row = _last_json_line(done.stdout)
    if row is not None:
        return row
    return _failed(arm, _crash_reason(done))


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
