"""The one adapter for ``timm:<name>`` architectures: any timm model, built untrained.

The norm and shortcut factories are not applied to timm models (yet): timm builds
them with its own layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablate.registry import AblateError, Component

if TYPE_CHECKING:
    from torch import nn

PREFIX = "timm:"


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def component(arch: str) -> Component:
    """A registry-style component for ``timm:<name>``; the model name is checked when it is built."""
    name = arch[len(PREFIX):]

    def factory(*, norm: Any = None, shortcut: Any = None, num_classes: int = 100, in_channels: int = 3,
                **options: Any) -> nn.Module:
        return create(name, num_classes=num_classes, in_channels=in_channels, **options)

    return Component(arch, factory, "timm", f"timm's {name}, untrained")


def check(arch: str) -> None:
    """Fail with one line when timm has no model of that name."""
    import timm

    name = arch[len(PREFIX):]
    if not timm.list_models(name):
        raise AblateError(f"unknown timm model '{name}'; see `timm.list_models('*{name[:4]}*')`")


def create(name: str, *, num_classes: int, in_channels: int, **options: Any) -> nn.Module:
    import timm

    check(PREFIX + name)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **options)
