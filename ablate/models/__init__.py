"""Build a model from component names: names are resolved to factories here, once.

An architecture factory receives the norm and shortcut *factories* (see
``ablate.hookspecs.register_architectures``), so models never look anything up.
``timm:<name>`` architectures go through the adapter in ``ablate.models.timm``, which
receives the resolved components, or None for ``keep`` (timm's own layers).
The ``[model]`` option ``entry_norm`` (of the VGG family, and of any architecture that
declares that keyword) names a norm too, or ``same`` for the chosen ``norm``; it is
resolved here like ``norm``, so the architecture receives a factory.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ablate.models import timm as timm_adapter
from ablate.plugins import registry
from ablate.registry import AblateError, Component

ENTRY_NORM = "entry_norm"
SAME = "same"

if TYPE_CHECKING:
    from torch import nn

KEEP = timm_adapter.KEEP


def architecture(name: str) -> Component:
    """The registered architecture ``name``, or the adapter's component for ``timm:<model>``."""
    if timm_adapter.is_timm(name):
        return timm_adapter.component(name)
    return registry("architectures").get(name)


def default_components(arch: str) -> dict[str, str]:
    """The norm and shortcut of ``arch`` when none is chosen: ``keep`` (timm's own) for timm models, else ``none``."""
    default = KEEP if timm_adapter.is_timm(arch) else "none"
    return {"norm": default, "shortcut": default}


def check_keep(arch: str, kind: str, name: str) -> None:
    """``keep`` is only for timm models: elsewhere there is nothing of the model's own to keep."""
    if name == KEEP and not timm_adapter.is_timm(arch):
        raise AblateError(f"{kind} '{KEEP}' (timm's own layers) applies only to timm:<name> architectures, not {arch}; "
                          f"available: {registry(kind + 's').describe_choices()}")


def build_model(arch: str, *, norm: str | None = None, shortcut: str | None = None, num_classes: int = 100,
                in_channels: int = 3, **options: Any) -> nn.Module:
    """Instantiate ``arch`` composed with the norm and shortcut registered as ``norm`` and ``shortcut``
    (None: the architecture's default, see ``default_components``; ``entry_norm``, if given, is resolved
    to a norm factory)."""
    defaults = default_components(arch)
    norm, shortcut = norm or defaults["norm"], shortcut or defaults["shortcut"]
    build: Callable[..., nn.Module]
    if timm_adapter.is_timm(arch):
        build = partial(timm_adapter.build, arch, norm=_chosen("norms", norm), shortcut=_chosen("shortcuts", shortcut))
    else:
        factory = architecture(arch).factory
        check_keep(arch, "norm", norm)
        check_keep(arch, "shortcut", shortcut)
        norm_factory = registry("norms").factory(norm)
        if isinstance(options.get(ENTRY_NORM), str):
            entry = options[ENTRY_NORM]
            options[ENTRY_NORM] = norm_factory if entry == SAME else registry("norms").factory(entry)
        build = partial(factory, norm=norm_factory, shortcut=registry("shortcuts").factory(shortcut))
    try:
        return build(num_classes=num_classes, in_channels=in_channels, **options)
    except (ValueError, TypeError) as exc:
        raise AblateError(f"model {arch}: {exc}") from None


def _chosen(kind: str, name: str) -> Component | None:
    """The registered component ``name`` of ``kind``, or None for ``keep``."""
    return None if name == KEEP else registry(kind).get(name)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
