"""From a recipe (or a bare architecture name) to a model and its input shape."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torch import nn

from ablate.bundled import bundled_recipes
from ablate.models import build_model
from ablate.plugins import registry
from ablate.recipe import DEFAULTS, RESERVED, Arm, load_recipe, resolve


def arm_from_target(target: str, overrides: dict[str, Any]) -> Arm:
    """A recipe file gives its first arm, then a registered architecture name, then a bundled recipe name."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if target.endswith(".toml") or Path(target).is_file() or (target not in registry("architectures") and target in bundled_recipes()):
        return load_recipe(target, overrides)[0]
    return resolve({"model": {"arch": target}}, "command line", overrides)[0]


def num_classes(data: dict[str, Any]) -> int:
    """Classes of the recipe's dataset, without loading it."""
    if "num_classes" in data:
        return int(data["num_classes"])
    factory = registry("datasets").factory(data["dataset"])
    param = inspect.signature(factory).parameters.get("num_classes")
    if param is not None and param.default is not inspect.Parameter.empty:
        return int(param.default)
    return int(getattr(factory, "num_classes", 100))


def model_options(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config["model"].items() if k not in DEFAULTS["model"] and k not in RESERVED["model"]}


def model_for(config: dict[str, Any], classes: int | None = None) -> tuple[nn.Module, tuple[int, int, int]]:
    """The model a resolved config describes, and the (C, H, W) input it expects."""
    m, data = config["model"], config["data"]
    channels = int(data.get("channels", 3))
    size = int(data.get("image_size", 32))
    model = build_model(m["arch"], norm=m["norm"], shortcut=m["shortcut"],
                        num_classes=classes or num_classes(data), in_channels=channels, **model_options(config))
    return model, (channels, size, size)
