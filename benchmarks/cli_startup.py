"""How long `ablate ARGS` takes to start and answer, for two source trees, interleaved.

    python benchmarks/cli_startup.py --tree before=/path/to/old/checkout --tree after=. --rounds 10
    python benchmarks/cli_startup.py --tree now=. --args "list norms"

Each round runs `python -m ablate ARGS` once per tree, in turn (A B A B ...), so that other load
on the machine hits every tree alike. A tree's first-party plugins (`TREE/plugins/*/`) go on
PYTHONPATH after the tree itself, so each tree runs with its own plugin code. Prints, per tree, the
median and interquartile range of the wall time, whether torch was imported, and each tree's
median relative to the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROBE = ("import runpy, sys\nsys.argv = ['ablate', *sys.argv[1:]]\ntry:\n    runpy.run_module('ablate', run_name='__main__')\n"
         "except SystemExit:\n    pass\nsys.stderr.write('TORCH %s\\n' % ('torch' in sys.modules))\n")


def environment(tree: Path) -> dict[str, str]:
    plugins = sorted(str(p) for p in (tree / "plugins").glob("*/") if (p / "pyproject.toml").exists())
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *plugins])}


def once(tree: Path, args: list[str]) -> tuple[float, bool]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=environment(tree), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "TORCH" not in done.stderr:
        raise SystemExit(f"{tree}: ablate {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, "TORCH True" in done.stderr


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--args", default="--help", help="the ablate command line to time (default: --help)")
    parser.add_argument("--rounds", type=int, default=10)
    opts = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in opts.tree)}
    args = opts.args.split()
    for tree in trees.values():
        once(tree, args)  # warm the file cache and byte-compile, untimed
    times: dict[str, list[float]] = {name: [] for name in trees}
    torch_loaded: dict[str, bool] = {}
    for _ in range(opts.rounds):
        for name, tree in trees.items():
            seconds, torch_loaded[name] = once(tree, args)
            times[name].append(seconds)
    first = statistics.median(next(iter(times.values())))
    print(f"ablate {opts.args}: {opts.rounds} interleaved rounds, {os.cpu_count()} CPUs")
    for name, values in times.items():
        q1, median, q3 = quartiles(values)
        print(f"  {name:<10} median {median:.3f} s  IQR {q1:.3f}-{q3:.3f} s  imports torch: {torch_loaded[name]}"
              f"  x{median / first:.2f} of the first")


if __name__ == "__main__":
    main()
