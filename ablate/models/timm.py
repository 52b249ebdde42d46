"""The one adapter for ``timm:<name>`` architectures: any timm model, built untrained, with surgery.

Unlike ablate's own architectures, the adapter receives the chosen norm and shortcut as
resolved ``Component``s (names and factories), or ``None`` for ``keep``: timm's own layers,
the default of a timm model. A chosen norm replaces every normalisation layer of the model,
a chosen shortcut rewires the blocks of timm's ResNet family (``ablate.models.surgery``);
what cannot apply is a one-line error. What was done is recorded on the model
(``surgery_of``), for ``ablate describe`` and the run's summary.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ablate.registry import AblateError, Component

if TYPE_CHECKING:
    from torch import nn

PREFIX = "timm:"
KEEP = "keep"
"""The norm or shortcut that leaves a timm model's own layers as timm builds them."""
SURGERY = "ablate_surgery"


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def component(arch: str) -> Component:
    """A registry-style component for ``timm:<name>``; the model name is checked when it is built."""
    return Component(arch, partial(build, arch), "timm", f"timm's {arch[len(PREFIX):]}, untrained")


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


def build(arch: str, *, norm: Component | None = None, shortcut: Component | None = None, num_classes: int = 100,
          in_channels: int = 3, **options: Any) -> nn.Module:
    """timm's ``arch``, untrained, with ``norm`` and ``shortcut`` swapped in (None: keep timm's)."""
    from ablate.models import surgery

    model = create(arch[len(PREFIX):], num_classes=num_classes, in_channels=in_channels, **options)
    done = []
    if norm is not None:
        done.append(_operate(arch, "norm", norm.name, lambda: surgery.replace_norms(model, norm.factory)))
    if shortcut is not None:
        chosen_norm = norm.factory if norm is not None else None
        done.append(_operate(arch, "shortcut", shortcut.name, lambda: surgery.rewire_shortcuts(
            model, shortcut.factory, chosen_norm, shortcut.name, in_channels)))
    if done:
        setattr(model, SURGERY, "; ".join(done))
    return model


def _operate(arch: str, kind: str, name: str, surgery: Callable[[], str]) -> str:
    """``kind: what surgery() did``; its refusal, prefixed with the model, the kind and the name."""
    from ablate.models.surgery import SurgeryRefused

    try:
        return f"{kind}: {surgery()}"
    except SurgeryRefused as exc:
        raise SurgeryRefused(f"{arch}: {kind} '{name}' cannot apply: {exc}") from None


def surgery_of(model: nn.Module) -> str | None:
    """What the adapter changed in ``model`` ("norm: 20 BatchNorm2d -> GroupNorm; ..."), None if nothing."""
    return getattr(model, SURGERY, None)
