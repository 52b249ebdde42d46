"""Bench arms: every combination of architecture, norm and shortcut, with shared settings."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ablate.models import KEEP, build_model, check_keep, timm
from ablate.plugins import registry
from ablate.registry import AblateError

if TYPE_CHECKING:
    from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class BenchArm:
    """One model to bench and how; travels to the worker as JSON."""

    arch: str
    norm: str = "none"
    shortcut: str = "none"
    batch_size: int = 100
    device: str = "cpu"
    amp: str = "auto"
    channels_last: bool = False
    compile: str | None = None
    graph: str = "none"  # "step": the training step as one CUDA graph (ablate.train.graph)
    warmup: int = 2
    steps: int = 20
    threads: int = 0
    seed: int = 0
    num_classes: int = 100
    in_channels: int = 3
    image_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)  # model options, e.g. width (not for timm models)
    train: dict[str, Any] = field(default_factory=lambda: {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0})

    @property
    def is_timm(self) -> bool:
        return timm.is_timm(self.arch)

    @property
    def label(self) -> str:
        return f"{self.arch} norm={self.norm} shortcut={self.shortcut}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build(self) -> nn.Module:
        options = {} if self.is_timm else self.options
        return build_model(self.arch, norm=self.norm, shortcut=self.shortcut, num_classes=self.num_classes,
                           in_channels=self.in_channels, **options)


def expand_arms(archs: list[str], norms: list[str], shortcuts: list[str], **settings: Any) -> list[BenchArm]:
    """The cartesian product, in order, without repeats."""
    seen: set[tuple[str, str, str]] = set()
    arms = []
    for arch, norm, shortcut in itertools.product(archs, norms, shortcuts):
        if (arch, norm, shortcut) not in seen:
            seen.add((arch, norm, shortcut))
            arms.append(BenchArm(arch, norm, shortcut, **settings))
    return arms


def check_names(archs: list[str], norms: list[str], shortcuts: list[str]) -> None:
    """Raise the registry's one-line error (listing the choices) for any unknown name, and for ``keep``
    with an architecture that is not a timm model."""
    for kind, names in (("norm", norms), ("shortcut", shortcuts)):
        for name in names:
            if name == KEEP:
                for arch in archs:
                    check_keep(arch, kind, name)
            else:
                registry(kind + "s").get(name)
    for name in archs:
        if timm.is_timm(name):
            timm.check(name)
        else:
            registry("architectures").get(name)


def split_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None stays None."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise AblateError(f"empty list {text!r}; give names separated by commas, e.g. none,bn")
    return items
