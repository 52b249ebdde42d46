"""Build a model from component names: names are resolved to factories here, once.

An architecture factory receives the norm and shortcut *factories* (see
``ablate.hookspecs.register_architectures``), so models never look anything up.
``timm:<name>`` architectures go through the adapter in ``ablate.models.timm``.
The ``[model]`` option ``entry_norm`` (of the VGG family, and of any architecture that
declares that keyword) names a norm too, or ``same`` for the chosen ``norm``; it is
resolved here like ``norm``, so the architecture receives a factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablate.models import timm as timm_adapter
from ablate.plugins import registry
from ablate.registry import AblateError, Component

ENTRY_NORM = "entry_norm"
SAME = "same"

if TYPE_CHECKING:
    from torch import nn


def architecture(name: str) -> Component:
    """The registered architecture ``name``, or the adapter's component for ``timm:<model>``."""
    if timm_adapter.is_timm(name):
        return timm_adapter.component(name)
    return registry("architectures").get(name)


def build_model(arch: str, *, norm: str = "none", shortcut: str = "none", num_classes: int = 100,
                in_channels: int = 3, **options: Any) -> nn.Module:
    """Instantiate ``arch`` composed with the norm and shortcut registered as ``norm`` and ``shortcut``
    (and ``entry_norm``, if given, resolved to a norm factory)."""
    factory = architecture(arch).factory
    norm_factory, shortcut_factory = registry("norms").factory(norm), registry("shortcuts").factory(shortcut)
    if isinstance(options.get(ENTRY_NORM), str):
        options[ENTRY_NORM] = norm_factory if options[ENTRY_NORM] == SAME else registry("norms").factory(options[ENTRY_NORM])
    try:
        return factory(norm=norm_factory, shortcut=shortcut_factory, num_classes=num_classes,
                       in_channels=in_channels, **options)
    except (ValueError, TypeError) as exc:
        raise AblateError(f"model {arch}: {exc}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
