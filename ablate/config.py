"""The shape of a resolved recipe: what ``ablate.recipe.load_recipe`` returns for each arm.

TypedDicts, so that the recipe stays the plain dict that TOML and JSON read and write,
while the type checker (mypy, run in CI) catches a misspelt key or a write to a
resolved recipe: every item is ``ReadOnly``. ``[model]`` and ``[data]`` also hold the
options of the chosen architecture or dataset, which are read only through
``ablate.build`` (``model_options``, ``dataset_spec``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired, ReadOnly


class ModelConfig(TypedDict):
    arch: ReadOnly[str]
    norm: ReadOnly[str]
    shortcut: ReadOnly[str]


class DataConfig(TypedDict):
    dataset: ReadOnly[str]
    dir: ReadOnly[str]
    download: ReadOnly[bool]


class TrainConfig(TypedDict):
    epochs: ReadOnly[int]
    batch_size: ReadOnly[int]
    eval_batch_size: ReadOnly[int]
    optimizer: ReadOnly[Literal["adam", "adamw", "sgd"]]
    lr: ReadOnly[float]
    weight_decay: ReadOnly[float]
    schedule: ReadOnly[Literal["cosine", "constant"]]
    min_lr: ReadOnly[float]
    augment: ReadOnly[bool]
    seed: ReadOnly[int]
    device: ReadOnly[str]
    amp: ReadOnly[Literal["auto", "off", "bf16", "fp16"]]
    channels_last: ReadOnly[bool | Literal["auto"]]
    compile: ReadOnly[bool | str]
    threads: ReadOnly[int]
    deterministic: ReadOnly[bool]
    graph: ReadOnly[Literal["none", "step"]]


class GradflowConfig(TypedDict):
    every: ReadOnly[int]
    signal: ReadOnly[bool]


class Config(TypedDict):
    """One arm's resolved recipe."""

    name: NotRequired[ReadOnly[str]]
    model: ReadOnly[ModelConfig]
    data: ReadOnly[DataConfig]
    train: ReadOnly[TrainConfig]
    gradflow: ReadOnly[GradflowConfig]
    callbacks: ReadOnly[list[dict[str, Any]]]
    required_plugins: ReadOnly[list[str]]
