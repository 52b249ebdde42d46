"""TOML recipes: the study's protocol as defaults, overrides, validation, arms.

A recipe has the tables ``[model]``, ``[data]``, ``[train]``, ``[gradflow]`` and
``[[callbacks]]``; each key missing from the file takes its default below. A recipe
may list several ``[[arms]]``, each a name plus tables that override the base.
``[sweep]`` and ``[executor]`` describe a sweep (``ablate.sweep``), not a run: they
are not part of any arm.
Every error is one line naming the file, the key, the value and the valid choices.
The module is longer than most (~350 lines) because the defaults, the identity and the
validation are one schema: split, the list of keys would be spelt in several places.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, cast

from ablate.config import Config
from ablate.files import atomic_write_text
from ablate.models import ENTRY_NORM, KEEP, SAME, check_keep, default_components
from ablate.plugins import registry
from ablate.registry import AblateError, RecipeError, UnknownComponentError
from ablate.requirements import KIND_OF, check_required, component, plugin_requirements

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"arch": "vgg38", "norm": "none", "shortcut": "none"},
    "data": {"dataset": "cifar100", "dir": "data", "download": False},
    "train": {
        "epochs": 100, "batch_size": 100, "eval_batch_size": 1000, "optimizer": "adam", "lr": 1e-3,
        "weight_decay": 0.0, "schedule": "cosine", "min_lr": 2e-5, "augment": True, "seed": 0,
        "device": "auto", "amp": "auto", "channels_last": "auto", "compile": False, "threads": 0,
        "deterministic": True, "graph": "none",
    },
    "gradflow": {"every": 1, "signal": False},
}
DATA_KEYS = tuple(DEFAULTS["data"])
"""The ``[data]`` keys that are not options of the dataset factory."""
CHOICES = {
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": ("cosine", "constant"),
    "train.amp": ("auto", "off", "bf16", "fp16"),
    "train.channels_last": ("auto", True, False),
    "train.compile": (False, True, "default", "reduce-overhead", "max-autotune"),
    "train.graph": ("none", "step"),
}
TOP_LEVEL = ("name", "required_plugins", "callbacks", "arms", "sweep", "executor", *DEFAULTS, "recipe_source")
SWEEP_ONLY = ("sweep", "executor")
"""Top-level tables that belong to a sweep, not to its runs."""
AT_LEAST_ONE = ("train.epochs", "train.batch_size", "train.eval_batch_size")
COUNTS = ("num_classes", "image_size", "channels")
"""``[data]`` options that count something, like the split sizes ``*_size``: whole numbers of at least 1."""
MAX_DEPTH = 16
"""How deeply a recipe's tables and lists may nest (the bundled ones nest 3 levels)."""
SEED_LIMIT = 2**32
"""Seeds are below this: the trainer derives generator seeds as ``seed * 1_000_003 + epoch``, the synthetic
data as ``seed * 1000 + split``, and every such seed must fit the generator's 64 bits."""
NOT_IDENTITY: dict[str, tuple[str, ...] | None] = {"name": None, "gradflow": None, "recipe_source": None,
                                                   "required_plugins": None, "data": ("dir", "download"),
                                                   "train": ("device", "threads")}
RESERVED = {"model": ("norm", "shortcut", "num_classes", "in_channels"), "data": ("data_dir", "download")}
ADDED_LATER: dict[str, Any] = {"train.deterministic": True, "train.graph": "none", "gradflow.signal": False}
"""Keys added after 0.1.0, with their defaults. A run's identity holds such a key only when it is set
away from its default, so that a run recorded before the key existed keeps its directory and resumes."""
OVERRIDES = {"norm": "model.norm", "shortcut": "model.shortcut", "arch": "model.arch", "lr": "train.lr",
             "epochs": "train.epochs", "batch_size": "train.batch_size", "seed": "train.seed",
             "dataset": "data.dataset", "data_dir": "data.dir", "device": "train.device", "amp": "train.amp"}
"""Command-line option names (and ``[sweep]`` short keys) for recipe keys."""


@dataclass
class Arm:
    """One fully resolved configuration to train."""

    name: str
    config: Config

    def digest(self) -> str:
        """Short hash of the resolved configuration (seed included, recording options not).

        ``required_plugins`` is a record, not identity (the components' names are), but
        run directories were named with it hashed in, always ``[]`` without plugins; it is
        hashed as ``[]`` so that those names stay as they were.
        """
        text = json.dumps({**identity(self.config), "required_plugins": []}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def slug(self) -> str:
        m, t = self.config["model"], self.config["train"]
        return f"{m['arch']}-{m['norm']}-{m['shortcut']}-lr{t['lr']:.0e}-s{t['seed']}".replace("e-0", "e-")

    def dirname(self) -> str:
        return f"{self.slug()}-{self.digest()}"


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config that decides a run's results: not its name, how it is recorded
    (gradient-flow statistics, callbacks that only record, like trackers), which plugin versions it
    requires, where the data lies, or which device and how many threads train it."""
    out = {}
    for key, value in config.items():
        excluded = NOT_IDENTITY.get(key, ())
        if excluded is None:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in excluded and not _later_default(f"{key}.{k}", v)}
        if key == "callbacks" and isinstance(value, list):
            value = [c for c in value if not records_only(c)]
        out[key] = value
    return out


def _later_default(dotted: str, value: Any) -> bool:
    return dotted in ADDED_LATER and value == ADDED_LATER[dotted]


def records_only(callback: Any) -> bool:
    """Whether a ``[[callbacks]]`` entry names a callback whose factory says ``records_only = True``
    (it records the run, a tracker for instance, and cannot change its results)."""
    try:
        return getattr(registry("callbacks").factory(callback["name"]), "records_only", False) is True
    except (KeyError, TypeError, UnknownComponentError):
        return False


def read_toml(path: str | Path) -> dict[str, Any]:
    """A recipe file, or a bundled recipe by name (``ablate.bundled``), with where it came from."""
    from ablate.bundled import find_recipe, recipe_source

    source, path = recipe_source(path), find_recipe(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: a directory, not a recipe file") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a TOML text file (not UTF-8)") from None
    except RecursionError:
        raise RecipeError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    _check_depth(data, str(path))
    return {**data, **({"recipe_source": source} if source else {})}


def _check_depth(value: Any, source: str) -> None:
    """Recipes are a few tables deep; a deeper one would only exhaust the recursion of what reads it."""
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else item)
                 if isinstance(v, (dict, list))]
        if not level:
            return
    raise RecipeError(f"{source}: nested more than {MAX_DEPTH} levels deep")


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> list[Arm]:
    """The arms of a recipe file with CLI ``overrides`` ({"train.lr": 0.01, ...}) applied to each."""
    raw = read_toml(path)
    return resolve(raw, str(path), overrides or {})


def resolve(raw: dict[str, Any], source: str, overrides: dict[str, Any]) -> list[Arm]:
    """The recipe's arms, each merged over the base and under ``overrides``, then validated.

    A ``callbacks`` override (from ``--callback``) adds to the recipe's callbacks.
    """
    _check_top_level(raw, source)
    _check_name(raw.get("name"), source)
    check_required(_string_list(raw.get("required_plugins", []), source, "required_plugins"), source)
    overrides = dict(overrides)
    swept = next((key for key in overrides if key.startswith("sweep.")), None)
    if swept:
        raise RecipeError(f"{source}: --set {swept}: sweep.* keys apply to `ablate sweep` only; for one run use --seed")
    extra_callbacks = overrides.pop("callbacks", [])
    base = {k: v for k, v in raw.items() if k not in ("arms", *SWEEP_ONLY)}
    arms_raw = raw.get("arms") or [{}]
    if not isinstance(arms_raw, list) or not all(isinstance(a, dict) for a in arms_raw):
        raise RecipeError(f"{source}: arms must be a list of tables, like [[arms]] name = \"VGG38 BN\"")
    arms = []
    for i, arm_raw in enumerate(arms_raw):
        arm_raw = dict(arm_raw)
        name = str(arm_raw.pop("name", raw.get("name", Path(source).stem if not i else f"arm{i}")))
        label = f"{source} (arm '{name}')" if "arms" in raw else source
        if any(key in arm_raw for key in SWEEP_ONLY):
            raise RecipeError(f"{label}: [sweep] and [executor] belong to the whole recipe; move them out of the arm")
        config = merge(merge(base, arm_raw), unflatten(overrides))
        _check_top_level(config, label)
        config["callbacks"] = list(config.get("callbacks", [])) + list(extra_callbacks)
        arms.append(Arm(name, validate(config, label)))
    return arms


def _check_name(name: Any, source: str) -> None:
    """A recipe's ``name`` names a folder (``runs/<name>``): one plain folder name, never a path."""
    if name is None:
        return
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise RecipeError(f"{source}: name = {name!r} must be a plain folder name (no '/', '\\' or '..'): "
                          f"it names the folder runs/<name>")


def _check_top_level(config: dict[str, Any], source: str) -> None:
    for key in config:
        if key not in TOP_LEVEL:
            raise RecipeError(f"{source}: unknown table or key '{key}'; valid: {', '.join(TOP_LEVEL)}")


def _string_list(value: Any, source: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{source}: {key} must be a list of strings, like [\"ablate-extra-norms>=0.1\"]")
    return value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        section, _, key = dotted.partition(".")
        if not key:
            out[section] = value
        else:
            out.setdefault(section, {})[key] = value
    return out


def parse_set(item: str) -> tuple[str, Any]:
    """``section.key=value`` with the value read as TOML (bare words are strings)."""
    key, sep, text = item.partition("=")
    if not sep or "." not in key:
        raise RecipeError(f"--set {item!r}: expected section.key=value, e.g. train.lr=0.01")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except RecursionError:
        raise RecipeError(f"--set {key.strip()}: nested more than {MAX_DEPTH} levels deep") from None
    _check_depth([value], f"--set {key.strip()}")
    return key.strip(), value


def validate(config: dict[str, Any], source: str) -> Config:
    """Fill defaults, check keys, types and component names; return the resolved config."""
    out = {"name": config.get("name")} if config.get("name") else {}
    for section, defaults in DEFAULTS.items():
        given = config.get(section, {})
        if not isinstance(given, dict):
            raise RecipeError(f"{source}: '{section}' must be a table, got {given!r}")
        out[section] = {**defaults, **_arch_defaults(section, given), **given}
        for key, value in given.items():
            _check_value(source, section, key, value, defaults)
    for dotted, kind in KIND_OF.items():
        _check_component(source, dotted, out, kind)
    _check_options(source, out)
    _check_data_numbers(source, config.get("data", {}))
    _check_entry_norm(source, out)
    _check_graph(source, out)
    out["callbacks"] = _check_callbacks(source, config.get("callbacks", []))
    written = _string_list(config.get("required_plugins", []), source, "required_plugins")
    out["required_plugins"] = written + [r for r in plugin_requirements(out) if r not in written]
    if "recipe_source" in config:
        out["recipe_source"] = _check_recipe_source(source, config["recipe_source"])
    return cast(Config, out)


def _arch_defaults(section: str, given: dict[str, Any]) -> dict[str, Any]:
    """The chosen architecture's own norm and shortcut defaults (``keep`` for timm models)."""
    if section != "model" or not isinstance(given.get("arch", ""), str):
        return {}
    return default_components(given.get("arch", DEFAULTS["model"]["arch"]))


def _check_recipe_source(source: str, value: Any) -> dict[str, str]:
    """Where a bundled recipe came from (written by ``read_toml``, kept in the run's recipe.toml)."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RecipeError(f"{source}: recipe_source = {value!r} must be a table of strings, like "
                          f"{{ bundled = \"quickstart\", ablate = \"0.1.0\" }}")
    return dict(value)


def _check_value(source: str, section: str, key: str, value: Any, defaults: dict[str, Any]) -> None:
    dotted = f"{section}.{key}"
    if key not in defaults:
        if section in ("model", "data"):
            return  # component options, checked against the factory's signature
        raise RecipeError(f"{source}: unknown key '{dotted}'; valid keys in [{section}]: {', '.join(defaults)}")
    if dotted in CHOICES:
        if value not in CHOICES[dotted]:
            valid = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in CHOICES[dotted])
            raise RecipeError(f"{source}: {dotted} = {value!r} is not valid; choose one of: {valid}")
        return
    want = type(defaults[key])
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise RecipeError(f"{source}: {dotted} = {value!r} must be {want.__name__}, like {defaults[key]!r}")
    if want is float and not math.isfinite(value):
        raise RecipeError(f"{source}: {dotted} = {value!r} must be a finite number")
    if want in (int, float) and value < 0:
        raise RecipeError(f"{source}: {dotted} = {value!r} must not be negative")
    if dotted in AT_LEAST_ONE and value < 1:
        raise RecipeError(f"{source}: {dotted} = {value!r} must be at least 1")
    if dotted == "train.seed" and value >= SEED_LIMIT:
        raise RecipeError(f"{source}: {dotted} = {value!r} must be below 2**32 ({SEED_LIMIT})")


def _check_graph(source: str, config: dict[str, Any]) -> None:
    """``train.graph = "step"`` captures the whole step itself: ``train.compile`` on top cannot apply."""
    train = config["train"]
    if train["graph"] == "step" and train["compile"] is not False:
        raise RecipeError(f"{source}: train.graph = 'step' cannot be combined with train.compile = "
                          f"{train['compile']!r} (the graph captures the whole step); set train.compile = false, "
                          f"or train.graph = 'none' to let compile graph the model")


def _check_component(source: str, dotted: str, config: dict[str, Any], kind: str) -> None:
    section, key = dotted.split(".")
    name = config[section][key]
    try:
        if name == KEEP and kind in ("norms", "shortcuts"):
            return check_keep(config["model"]["arch"], kind[:-1], name)
        component(kind, name)
    except AblateError as exc:
        raise RecipeError(f"{source}: {dotted} = {name!r}: {exc}") from None


def _check_entry_norm(source: str, config: dict[str, Any]) -> None:
    """``model.entry_norm``, where the architecture takes it: a registered norm or ``same``."""
    name = config["model"].get(ENTRY_NORM, SAME)
    if not isinstance(name, str) or (name != SAME and name not in registry("norms")):
        raise RecipeError(f"{source}: model.{ENTRY_NORM} = {name!r}: choose '{SAME}' (follow model.norm) or a norm: "
                          f"{registry('norms').describe_choices()}")


def _check_options(source: str, config: dict[str, Any]) -> None:
    """Extra keys in [model] and [data] must be parameters of the chosen factory."""
    for section, key, kind in (("model", "arch", "architectures"), ("data", "dataset", "datasets")):
        params = inspect.signature(component(kind, config[section][key]).factory).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        valid = [p for p in params if p not in RESERVED[section]]
        for extra in config[section]:
            if extra not in DEFAULTS[section] and extra not in valid:
                raise RecipeError(
                    f"{source}: unknown key '{section}.{extra}' for {kind[:-1]} '{config[section][key]}'; "
                    f"valid: {', '.join(list(DEFAULTS[section]) + valid)}"
                )


def _check_data_numbers(source: str, data: dict[str, Any]) -> None:
    """Dataset options that count (``COUNTS``, split sizes ``*_size``) are at least 1; seeds fit ``SEED_LIMIT``."""
    for key, value in data.items():
        whole = isinstance(value, int) and not isinstance(value, bool)
        if key in COUNTS or key.endswith("_size"):
            if not whole or value < 1:
                raise RecipeError(f"{source}: data.{key} = {value!r} must be a whole number of at least 1")
        elif (key == "seed" or key.endswith("_seed")) and (not whole or not 0 <= value < SEED_LIMIT):
            raise RecipeError(f"{source}: data.{key} = {value!r} must be a whole number from 0 to below 2**32")


def _check_callbacks(source: str, callbacks: Any) -> list[dict[str, Any]]:
    if not isinstance(callbacks, list) or not all(isinstance(c, dict) and "name" in c for c in callbacks):
        raise RecipeError(f"{source}: callbacks must be a list of tables with a 'name', like [[callbacks]] name = \"...\"")
    for cb in callbacks:
        try:
            registry("callbacks").get(cb["name"])
        except UnknownComponentError as exc:
            raise RecipeError(f"{source}: callbacks.name = {cb['name']!r}: {exc}") from None
        params = inspect.signature(registry("callbacks").factory(cb["name"])).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            for key in cb:
                if key != "name" and key not in params:
                    raise RecipeError(f"{source}: unknown option 'callbacks.{key}' for callback "
                                      f"'{cb['name']}'; valid: {', '.join(params)}")
    return [dict(c) for c in callbacks]


def to_toml(config: Mapping[str, Any]) -> str:
    """A resolved config as TOML text (round-trips through ``load_recipe``)."""
    import tomli_w  # imported here: only writing a recipe needs it

    return tomli_w.dumps(plain(config))


def dump(config: Mapping[str, Any], path: str | Path) -> None:
    """Write a resolved config as TOML, atomically."""
    atomic_write_text(Path(path), to_toml(config))


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
