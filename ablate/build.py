"""From a resolved recipe (or a bare architecture name) to its data, its model and the model's input shape."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.bundled import bundled_recipes
from ablate.config import Config, DataConfig
from ablate.data import DataSpec, Splits, data_spec
from ablate.models import build_model
from ablate.plugins import registry
from ablate.recipe import DATA_KEYS, DEFAULTS, RESERVED, Arm, load_recipe, resolve
from ablate.registry import RecipeError

if TYPE_CHECKING:
    import torch
    from torch import nn


def arm_from_target(target: str, overrides: dict[str, Any]) -> Arm:
    """A recipe file gives its first arm, then a registered architecture name, then a bundled recipe name."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if target.endswith(".toml") or Path(target).is_file() or (target not in registry("architectures") and target in bundled_recipes()):
        return load_recipe(target, overrides)[0]
    if overrides.get("model.arch", target) != target:
        raise RecipeError(f"{target} is an architecture; --arch {overrides['model.arch']} applies to a recipe, "
                          f"or name the architecture once")
    return resolve({"model": {"arch": target}}, "command line", overrides)[0]


def dataset_spec(data: DataConfig) -> DataSpec:
    """Classes and input shape of the recipe's dataset, without loading it."""
    options = {k: v for k, v in data.items() if k not in DATA_KEYS}
    return data_spec(registry("datasets").factory(data["dataset"]), options)


def num_classes(data: DataConfig) -> int:
    """Classes of the recipe's dataset, without loading it."""
    return dataset_spec(data).num_classes


def load_data(config: Config, device: torch.device | str) -> Splits:
    """The recipe's dataset, on ``device``."""
    data = config["data"]
    options = {k: v for k, v in data.items() if k not in DATA_KEYS}
    factory = registry("datasets").factory(data["dataset"])
    return factory(data_dir=data["dir"], download=data["download"], **options).to(device)


def model_options(config: Config) -> dict[str, Any]:
    return {k: v for k, v in config["model"].items() if k not in DEFAULTS["model"] and k not in RESERVED["model"]}


def model_for(config: Config, classes: int | None = None) -> tuple[nn.Module, tuple[int, int, int]]:
    """The model a resolved config describes, and the (C, H, W) input it expects."""
    m = config["model"]
    spec = dataset_spec(config["data"])
    model = build_model(m["arch"], norm=m["norm"], shortcut=m["shortcut"], num_classes=classes or spec.num_classes,
                        in_channels=spec.input_shape[0], **model_options(config))
    return model, spec.input_shape
