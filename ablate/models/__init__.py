"""Build a model from component names: registered architectures or ``timm:<name>``."""

from __future__ import annotations

from typing import Any

from torch import nn

from ablate.plugins import registry
from ablate.registry import AblateError

TIMM_PREFIX = "timm:"


def build_model(arch: str, *, norm: str = "none", shortcut: str = "none", num_classes: int = 100,
                in_channels: int = 3, **options: Any) -> nn.Module:
    """Instantiate ``arch`` composed with ``norm`` and ``shortcut``."""
    if arch.startswith(TIMM_PREFIX):
        return _timm_model(arch[len(TIMM_PREFIX):], num_classes, in_channels, **options)
    norms, shortcuts = registry("norms"), registry("shortcuts")
    norms.get(norm)
    shortcuts.get(shortcut)
    try:
        return registry("architectures").factory(arch)(
            norm=norm, shortcut=shortcut, num_classes=num_classes, in_channels=in_channels, **options
        )
    except (ValueError, TypeError) as exc:
        raise AblateError(f"model {arch}: {exc}") from None


def _timm_model(name: str, num_classes: int, in_channels: int, **options: Any) -> nn.Module:
    import timm

    if not timm.list_models(name):
        raise AblateError(f"unknown timm model '{name}'; see `timm.list_models('*{name[:4]}*')`")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **options)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
