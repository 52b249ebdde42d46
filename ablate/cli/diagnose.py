"""``ablate diagnose``: will each arm train? Forward statistics, gradient flow, Jacobian and a verdict at init."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ablate import rundir
from ablate.cli import options
from ablate.recipe import SEED_LIMIT
from ablate.registry import AblateError

console = Console(soft_wrap=True)
err_console = Console(stderr=True)
COLOURS = {"trainable": "green", "at risk": "yellow", "untrainable": "red"}
ARCH_DATA = {"dataset": "synthetic", "num_classes": 10, "train_size": 100, "val_size": 10, "test_size": 10}
"""The data of a bare architecture without --dataset: one batch of the offline synthetic set."""


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> ``[0, 1, 2]``."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= s < SEED_LIMIT for s in seeds):
        raise AblateError(f"--seeds {text!r}: expected integers from 0 to below 2**32 separated by commas, like 0,1,2")
    return list(dict.fromkeys(seeds))


def target_arms(target: str, overrides: dict[str, Any]) -> tuple[str, list[Any]]:
    """The name and arms of a recipe (all its arms) or of an architecture (one arm on ``ARCH_DATA``)."""
    from ablate.bundled import bundled_recipes
    from ablate.plugins import registry
    from ablate.recipe import load_recipe, read_toml, resolve

    if target.endswith(".toml") or Path(target).is_file() or (
            target not in registry("architectures") and not target.startswith("timm:") and target in bundled_recipes()):
        name = read_toml(target).get("name") or Path(target).stem
        return str(name), load_recipe(target, overrides)
    if overrides.get("model.arch", target) != target:
        raise AblateError(f"{target} is an architecture; --arch {overrides['model.arch']} applies to a recipe, "
                          f"or name the architecture once")
    data = {} if "data.dataset" in overrides else dict(ARCH_DATA)
    (arm,) = resolve({"model": {"arch": target}, "data": data}, "command line", overrides)
    arm.name = target
    return target.replace(":", "-"), [arm]


def _num(value: float | None, fmt: str = ".1e") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def results_table(rows: list[dict[str, Any]], seeds: bool) -> Table:
    table = Table("arm", *(["seed"] if seeds else []), "verdict", "grad ratio\nfirst/last", "signal dies at",
                  "variance at\nclassifier in", "Jacobian\nnorm", "effective\nrank",
                  title="Trainability at initialisation")
    for r in rows:
        colour = COLOURS.get(r["verdict"], "default")
        died = f"{r['died_at']} (depth {r['died_depth']})" if r["died_at"] else "-"
        table.add_row(escape(r["arm"]), *([str(r["seed"])] if seeds else []), f"[{colour}]{r['verdict']}[/]",
                      _num(r["grad_ratio"]), died, _num(r["head_variance"]), _num(r["jacobian_norm"]),
                      _num(r["effective_rank"], ".1f"))
    return table


def diagnose(
    target: str = typer.Argument(..., help="A recipe file or bundled recipe (all its arms), or an architecture."),
    norm: options.Norm = None, shortcut: options.Shortcut = None, arch: options.Arch = None,
    dataset: options.Dataset = None, data_dir: options.DataDir = None, set_: options.Sets = [],
    seeds: str = typer.Option("", "--seeds", metavar="0,1,2", help="Seeds to diagnose (default: the recipe's)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (one object per arm and seed)."),
    out: options.Out = None,
) -> None:
    """Diagnose every arm at initialisation: verdict, gradient ratio, where the signal dies, Jacobian norm,
    effective rank; writes the signal propagation and gradient-flow figures into --out."""
    from ablate.diagnose.arm import diagnose_config
    from ablate.diagnose.plots import plot_gradient_overlay, plot_signal_propagation
    from ablate.diagnose.verdict import RULE

    overrides = options.collect_overrides(locals())
    name, arms = target_arms(target, overrides)
    chosen = parse_seeds(seeds) if seeds else None
    folder = out or Path("runs") / "diagnose" / name
    rundir.ensure_writable(folder)  # before the arms are diagnosed, not after: the figures go there
    rows, signals, grads = [], [], []
    for arm in arms:
        for seed in chosen or [arm.config["train"]["seed"]]:
            config = {**arm.config, "train": {**arm.config["train"], "seed": seed}}
            start = time.perf_counter()
            with err_console.status(f"diagnosing {escape(arm.name)} seed {seed}"):
                diagnosis = diagnose_config(config)
            m = config["model"]
            rows.append({"arm": arm.name, "arch": m["arch"], "norm": m["norm"], "shortcut": m["shortcut"],
                         "seed": seed, "seconds": time.perf_counter() - start, **diagnosis.as_dict()})
            if seed == (chosen or [seed])[0]:
                signals.append((arm.name, diagnosis.profile))
                grads.append((arm.name, diagnosis.grad_profile))
    figures = plot_signal_propagation(signals, folder / rundir.SIGNAL_FIGURE,
                                      title=f"Signal propagation at initialisation: {name}")
    figures += plot_gradient_overlay(grads, folder / rundir.GRADFLOW_FIGURE, title=f"Gradient flow at initialisation: {name}")
    if as_json:
        typer.echo(json.dumps({"rule": RULE, "written": [str(p) for p in figures], "arms": rows}, indent=2))
        return
    from ablate.cli.bench import print_wide

    print_wide(results_table(rows, seeds=chosen is not None and len(chosen) > 1))
    for r in rows:
        which = f" seed {r['seed']}" if chosen and len(chosen) > 1 else ""
        console.print(f"{escape(r['arm'])}{which}: [{COLOURS.get(r['verdict'], 'default')}]{r['verdict']}[/]: "
                      f"{escape(r['reason'])}", highlight=False)
    console.print(f"figures: {escape(', '.join(str(p) for p in figures))}", highlight=False)
