"""``ablate bench``: params, FLOPs, throughput, memory and gradient flow of every arm.

``--compile`` is a flag; a compile mode written after it (``--compile reduce-overhead``)
arrives as a positional word and is told apart from the recipe by ``split_targets``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Literal, Optional, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ablate.bench.arms import (
    COMPILE_MODES,
    BenchArm,
    check_names,
    expand_arms,
    split_list,
)
from ablate.bench.runner import run_arm
from ablate.build import dataset_spec, model_options
from ablate.config import Config
from ablate.recipe import Arm, load_recipe, resolve
from ablate.registry import AblateError

console = Console(soft_wrap=True)
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def split_targets(targets: list[str], compile_: bool) -> tuple[str | None, str | None]:
    """(recipe, compile mode) from the positional words: ``--compile MODE`` parses as a flag plus a word."""
    modes = [t for t in targets if t in COMPILE_MODES and not Path(t).exists()]
    recipes = [t for t in targets if t not in modes]
    if modes and not compile_:
        raise AblateError(f"'{modes[0]}' is a compile mode; write --compile {modes[0]}")
    if len(modes) > 1 or len(recipes) > 1:
        raise AblateError(f"expected at most one RECIPE and one --compile MODE, got: {' '.join(targets)}")
    mode = (modes[0] if modes else "default") if compile_ else None
    return (recipes[0] if recipes else None), mode


def recipe_arms(recipe: str | None, overrides: dict[str, Any] | None = None) -> list[Arm]:
    """The recipe's arms (else the defaults', vgg38/none/none) under ``overrides``."""
    if recipe is None:
        return resolve({"model": {"arch": "vgg38"}}, "defaults", overrides or {})
    return load_recipe(recipe, overrides)


def recipe_values(arms: list[Arm], key: Literal["arch", "norm", "shortcut"]) -> list[str]:
    """The distinct ``[model]`` values of ``key`` among ``arms``, in order."""
    return list(dict.fromkeys(arm.config["model"][key] for arm in arms))


def grid_arms(recipe: str | None, archs: list[str], norms: list[str] | None, shortcuts: list[str] | None,
              **settings: Any) -> list[BenchArm]:
    """Each architecture with the given norms and shortcuts; without them, with those the recipe's arms
    give that architecture (as ``ablate run RECIPE --arch ARCH`` would: ``keep`` for a timm model)."""
    arms = []
    for arch in dict.fromkeys(archs):
        own = recipe_arms(recipe, {"model.arch": arch}) if norms is None or shortcuts is None else []
        arms += expand_arms([arch], norms or recipe_values(own, "norm"), shortcuts or recipe_values(own, "shortcut"),
                            **settings)
    return arms


def recipe_compile(value: Any) -> str | None:
    return None if value in (False, None) else "default" if value is True else str(value)


def arm_settings(config: Config, device: str | None, amp: str | None, batch_size: int | None,
                 channels_last: bool | None, mode: str | None, warmup: int, steps: int,
                 graph: str | None = None) -> dict[str, Any]:
    """Settings shared by every arm: the command line's, else the recipe's."""
    from ablate.train.graph import MODES
    from ablate.train.setup import pick_channels_last, pick_device

    t, spec = config["train"], dataset_spec(config["data"])
    amp = amp or t["amp"]
    if amp not in AMP_CHOICES:
        raise AblateError(f"--amp {amp!r} is not valid; choose one of: {', '.join(AMP_CHOICES)}")
    if graph is not None and graph not in MODES:
        raise AblateError(f"--graph {graph!r} is not valid; choose one of: {', '.join(MODES)}")
    graph = graph or t["graph"]
    compile_mode = mode or recipe_compile(t["compile"])
    if graph == "step" and compile_mode is not None:
        raise AblateError(f"--graph step captures the whole training step; it cannot be combined with compile "
                          f"{compile_mode} (drop --compile, or set train.compile = false)")
    resolved = pick_device(device or t["device"])
    if channels_last is None:
        channels_last = pick_channels_last(t["channels_last"])
    return {
        "device": str(resolved), "amp": amp, "batch_size": batch_size or t["batch_size"],
        "channels_last": channels_last, "compile": compile_mode, "graph": graph, "warmup": warmup,
        "steps": steps, "threads": t["threads"], "seed": t["seed"], "num_classes": spec.num_classes,
        "in_channels": spec.input_shape[0], "image_size": spec.input_shape[1],
        "train": {k: t[k] for k in ("optimizer", "lr", "weight_decay")}, "options": model_options(config),
    }


def _num(value: float | None, fmt: str = ",.0f", scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, fmt)


def results_table(rows: list[dict[str, Any]]) -> Table:
    compiled = any(r["compile"] or r.get("graph") == "step" for r in rows)
    failed = any(r["error"] for r in rows)
    utilised = any(r.get("mfu") is not None for r in rows)
    table = Table("arch", "norm", "shortcut", "params", "MFLOP/img\nforward", "MFLOP/img\ntrain step",
                  "train\nimg/s", "IQR\n%", "infer\nimg/s", "peak\nMiB", "|g| first\n/ last", "gradient\nflow",
                  "signal\ndies at", "eff.\nrank", "trainability")
    for name in ("MFU\n%",) * utilised + ("compile\ns",) * compiled + ("error",) * failed:
        table.add_column(name)
    for r in rows:
        iqr = None if r["train_step_ms_median"] is None else r["train_step_ms_iqr"] / r["train_step_ms_median"]
        cells = [r["arch"], r["norm"], r["shortcut"], _num(r["params"]), _num(r["flops_forward"], ",.1f", 1e-6),
                 _num(r["flops_train_step"], ",.1f", 1e-6), _num(r["train_images_per_s"]), _num(iqr, ".0f", 100),
                 _num(r["infer_images_per_s"]), _num(r["peak_memory_bytes"], ",.0f", 2 ** -20),
                 _num(r["grad_ratio"], ".1e"), r["gradflow_verdict"] or "-", r["signal_died_at"] or "-",
                 _num(r["effective_rank"], ".1f"), r["trainability"] or "-"]
        cells += [_num(r.get("mfu"), ".1f", 100)] * utilised + [_num(r["compile_seconds"], ".1f")] * compiled
        cells += [f"[red]{escape(r['error'] or '')}[/]"] * failed
        table.add_row(*cells)
    return table


def environment_line(rows: list[dict[str, Any]]) -> str:
    env = next((r["environment"] for r in rows if r["environment"]), None)
    if not env:
        return ""
    return (f"ablate {env['ablate']}, torch {env['torch']}, {env['device']} ({env['device_name']}), "
            f"amp {env['amp']}, channels_last {env['channels_last']}, compile {env['compile'] or 'off'}, "
            f"graph {env.get('graph', 'none')}, "
            f"{env['threads'] or '-'} threads")


def print_wide(table: Table) -> None:
    """Print the table; unsqueezed when the output is not a terminal (a file or a pipe)."""
    if not console.is_terminal:
        wide = console.options.update_width(1000)
        console.width = max(console.width, Measurement.get(console, wide, table).maximum)
    console.print(table)


def bench(
    targets: Optional[list[str]] = typer.Argument(
        None, metavar="RECIPE", help="A recipe TOML giving the defaults (else vgg38/none/none)."),
    arch: Optional[str] = typer.Option(
        None, help="Architectures, comma-separated (ablate list architectures; timm:NAME)."),
    norm: Optional[str] = typer.Option(None, help="Norms, comma-separated (ablate list norms)."),
    shortcut: Optional[str] = typer.Option(None, help="Shortcuts, comma-separated (ablate list shortcuts)."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per step (recipe's by default)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N or auto."),
    amp: Optional[str] = typer.Option(None, help="bf16, fp16 or off (default: bf16 on CUDA, off on CPU)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last",
                                                 help="Channels-last memory format (default: the recipe's, auto = on, as in the trainer)."),
    compile_: bool = typer.Option(
        False, "--compile", help="torch.compile; may be followed by a MODE: default, reduce-overhead, max-autotune."),
    graph: Optional[str] = typer.Option(
        None, help="step: the training step as one CUDA graph (CUDA, Adam/AdamW, no --compile); none (recipe's)."),
    warmup: int = typer.Option(2, min=0, help="Untimed steps before timing."),
    steps: int = typer.Option(20, min=1, help="Timed steps (median and IQR reported)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write one JSON line per arm to this file."),
) -> None:
    """Bench every combination of --arch, --norm and --shortcut, each in a fresh subprocess.

    Per arm: params, FLOPs/image, train and inference img/s (median, IQR), peak memory, MFU on known GPUs,
    gradient flow at init, where the signal dies, the features' effective rank and the trainability verdict
    (ablate diagnose, no Jacobian).
    """
    recipe, mode = split_targets(targets or [], compile_)
    base = recipe_arms(recipe)
    archs, norms, shortcuts = split_list(arch) or recipe_values(base, "arch"), split_list(norm), split_list(shortcut)
    check_names(archs, norms or [], shortcuts or [])
    settings = arm_settings(base[0].config, device, amp, batch_size, channels_last, mode, warmup, steps, graph)
    arms = grid_arms(recipe, archs, norms, shortcuts, **settings)
    rows = run_all(arms, json_out)
    console.print(environment_line(rows), highlight=False)
    print_wide(results_table(rows))
    if json_out is not None:
        console.print(f"{len(rows)} rows written to {escape(str(json_out))}")


def run_all(arms: list[BenchArm], json_out: Path | None) -> list[dict[str, Any]]:
    """Bench each arm, writing its JSON line as soon as it is done."""
    rows = []
    with _open(json_out) if json_out is not None else contextlib.nullcontext() as sink:
        for i, arm in enumerate(arms, 1):
            with console.status(f"[{i}/{len(arms)}] {escape(arm.label)}"):
                row = run_arm(arm)
            rows.append(row)
            console.print(f"[{i}/{len(arms)}] {escape(arm.label)}: {_outcome(row)}", highlight=False)
            if sink is not None:
                sink.write(json.dumps(row, default=str) + "\n")
                sink.flush()
    return rows


def _outcome(row: dict[str, Any]) -> str:
    seconds = f"({row['worker_seconds'] or 0:.1f} s)"
    if row["error"]:
        return f"[red]{escape(row['error'])}[/] {seconds}"
    return f"{row['train_images_per_s']:,.0f} train img/s {seconds}"


def _open(path: Path) -> TextIO:
    try:
        return path.open("w")
    except OSError as exc:
        raise AblateError(f"cannot write --json {path}: {exc.strerror or exc}; choose another file") from None
