"""Expand a recipe into sweep runs: each ``[[arms]]`` variant x the ``[sweep]`` grid x seeds.

The ``[sweep]`` table maps a short name (``norm``, ``shortcut``, ``lr``, ``arch``,
``seeds``, ... as on the command line) or a dotted key (``"train.batch_size"``) to
a list of values. Seeds vary fastest, then the grid keys in the order written, then
the arms. A run's name is its arm and grid values without the seed, so that the
seeds of one configuration share a name; its directory is ``Arm.dirname()``.
A cell that cannot be built (its plugin is disabled, a component unknown) does not stop the
others: it becomes a run with an ``error`` (the sweep reports it failed), unless no cell can be built.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ablate.config import Config
from ablate.recipe import DEFAULTS, OVERRIDES, SWEEP_ONLY, Arm, RecipeError, merge, read_toml, resolve, unflatten
from ablate.registry import AblateError

SHORT = {**OVERRIDES, "seeds": "train.seed"}
SEED = "train.seed"
SWEEP = "sweep."


@dataclass
class SweepRun:
    """One cell of a sweep: a resolved arm and the directory it trains in."""

    name: str
    arm: Arm
    path: Path
    error: str | None = None
    """Why this cell cannot be built (its ``arm`` then holds the unvalidated settings, for display)."""

    @property
    def config(self) -> Config:
        return self.arm.config

    @property
    def seed(self) -> int:
        return self.arm.config["train"]["seed"]


def load_sweep(path: str | Path, overrides: dict[str, Any], out: Path | None = None) -> tuple[Path, list[SweepRun]]:
    """The sweep directory (``--out``, default runs/<recipe name>) and the runs of a recipe file."""
    raw, overrides = with_sweep_sets(read_toml(path), overrides)
    sweep_dir = out or Path("runs") / str(raw.get("name") or Path(path).stem)
    built, unbuilt = expand_cells(raw, str(path), overrides)
    runs = [SweepRun(name, arm, sweep_dir / arm.dirname()) for name, arm in built]
    return sweep_dir, runs + [SweepRun(arm.name, arm, sweep_dir / _dirname(arm), error) for arm, error in unbuilt]


def _dirname(arm: Arm) -> str:
    """The directory a cell would train in; a plain name where its settings are not even well typed."""
    try:
        return arm.dirname()
    except (TypeError, ValueError, KeyError):
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in arm.name)


def with_sweep_sets(raw: dict[str, Any], overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set sweep.seeds=[0,1,2]`` moved from the overrides into the recipe's ``[sweep]`` table (replacing that key)."""
    sets = {key.removeprefix(SWEEP): value for key, value in overrides.items() if key.startswith(SWEEP)}
    if not sets:
        return raw, overrides
    table = raw.get("sweep", {})
    return {**raw, "sweep": {**table, **sets} if isinstance(table, dict) else table}, {
        key: value for key, value in overrides.items() if not key.startswith(SWEEP)}


def expand(raw: dict[str, Any], source: str, overrides: dict[str, Any]) -> list[tuple[str, Arm]]:
    """(name, arm) of every distinct cell; ``overrides`` replace the grid keys they set; any cell that
    cannot be built is an error."""
    built, unbuilt = expand_cells(raw, source, overrides)
    if unbuilt:
        raise RecipeError(unbuilt[0][1])
    return built


def expand_cells(raw: dict[str, Any], source: str, overrides: dict[str, Any]
                 ) -> tuple[list[tuple[str, Arm]], list[tuple[Arm, str]]]:
    """The distinct cells that resolve, as (name, arm), and those that do not, as (settings, one-line error);
    when none resolves, the first error is raised."""
    built: list[Arm] = []
    unbuilt: list[tuple[Arm, str]] = []
    errors: list[AblateError] = []
    for variant in _variants(raw, source, overrides):
        try:
            built += resolve({**raw, "arms": [variant]}, source, overrides)
        except AblateError as exc:
            errors.append(exc)
            unbuilt.append((Arm(variant["name"], _settings(raw, variant, overrides)), str(exc)))
    if not built and errors:
        raise errors[0]
    unique: dict[str, Arm] = {}
    for arm in built:
        unique.setdefault(arm.dirname(), arm)
    return [(arm.name, arm) for arm in unique.values()], unbuilt


def _variants(raw: dict[str, Any], source: str, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Each arm x grid cell as an arm table with its name."""
    grid = [axis for axis in axes(raw.get("sweep", {}), source) if axis[1] not in overrides]
    variants = []
    for i, arm_raw in enumerate(raw.get("arms") or [{}]):
        arm_raw = dict(arm_raw)
        arm_name = str(arm_raw.pop("name", f"arm{i}")) if raw.get("arms") else ""
        clash = next((dotted for _, dotted, _ in grid if _sets(arm_raw, dotted)), None)
        if clash:
            raise RecipeError(f"{source}: arm '{arm_name}' sets {clash}, which [sweep] also varies; remove one")
        for values in itertools.product(*(vals for _, _, vals in grid)):
            cell = {dotted: v for (_, dotted, _), v in zip(grid, values)}
            label = " ".join(f"{lab}={_text(v)}" for (lab, dotted, _), v in zip(grid, values) if dotted != SEED)
            name = " ".join(filter(None, [arm_name, label])) or str(raw.get("name") or Path(source).stem)
            variants.append({**arm_raw, **_merge_cell(arm_raw, cell), "name": name})
    return variants


def _settings(raw: dict[str, Any], variant: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """A cell's settings over the defaults, unvalidated: what ``sweep.json`` shows of a cell that cannot be built."""
    config: dict[str, Any] = {section: dict(values) for section, values in DEFAULTS.items()}
    base = {k: v for k, v in raw.items() if k not in ("arms", *SWEEP_ONLY)}
    for layer in (base, {k: v for k, v in variant.items() if k != "name"}, unflatten(overrides)):
        config = merge(config, {k: v for k, v in layer.items() if isinstance(v, dict) == isinstance(config.get(k), dict)})
    return cast(Config, config)


def axes(sweep: Any, source: str) -> list[tuple[str, str, list[Any]]]:
    """(label, dotted key, values) of each ``[sweep]`` key, seeds last."""
    if not isinstance(sweep, dict):
        raise RecipeError(f"{source}: [sweep] must be a table of lists, like seeds = [0, 1, 2]")
    flat: dict[str, Any] = {}
    for key, value in sweep.items():
        if isinstance(value, dict):  # train.batch_size = [...] written without quotes
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    out, seen = [], set()
    for label, values in flat.items():
        dotted = SHORT.get(label, label)
        if dotted.partition(".")[0] not in DEFAULTS or not dotted.partition(".")[2]:
            raise RecipeError(f"{source}: unknown [sweep] key '{label}'; use one of {', '.join(SHORT)} "
                              f"or a dotted key like \"train.batch_size\"")
        if not isinstance(values, list) or not values:
            raise RecipeError(f"{source}: [sweep] {label} = {values!r} must be a non-empty list, like {label} = [...]")
        if dotted in seen:
            raise RecipeError(f"{source}: [sweep] sets {dotted} twice")
        seen.add(dotted)
        out.append((label, dotted, values))
    return sorted(out, key=lambda axis: axis[1] == SEED)


def _sets(arm_raw: dict[str, Any], dotted: str) -> bool:
    section, _, key = dotted.partition(".")
    return isinstance(arm_raw.get(section), dict) and key in arm_raw[section]


def _merge_cell(arm_raw: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    """The arm's tables with the cell's values added."""
    out = {}
    for section, values in unflatten(cell).items():
        out[section] = {**arm_raw.get(section, {}), **values}
    return out


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
