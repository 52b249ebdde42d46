import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
REPO = Path(__file__).resolve().parents[1]


def make_distribution(root: Path, dist: str, module: str, source: str, entry_points: dict[str, str]) -> Path:
    """Write an installed-looking distribution (module + .dist-info) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ablate]\n{lines}\n")
    return root


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``ablate ARGS`` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def distribution(tmp_path):
    def make(dist: str, module: str, source: str, entry_points: dict[str, str]) -> Path:
        return make_distribution(tmp_path / "site", dist, module, source, entry_points)

    return make


@pytest.fixture(autouse=True)
def builtin_plugins_only(fresh_plugins):
    """In-process tests see only the built-in plugin, whatever else is installed."""
    yield fresh_plugins
