"""The one adapter for ``timm:<name>`` architectures: any timm model, built untrained, with surgery.

Unlike ablate's own architectures, the adapter receives the chosen norm and shortcut as
resolved ``Component``s (names and factories), or ``None`` for ``keep``: timm's own layers,
the default of a timm model. A chosen norm replaces every normalisation layer of the model,
a chosen shortcut rewires the blocks of timm's ResNet family (``ablate.models.surgery``);
what cannot apply is a one-line error. What was done is recorded on the model
(``surgery_of``), for ``ablate describe`` and the run's summary.
"""

from __future__ import annotations

import inspect
import re
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ablate.registry import AblateError, Component

if TYPE_CHECKING:
    from torch import nn

PREFIX = "timm:"
KEEP = "keep"
"""The norm or shortcut that leaves a timm model's own layers as timm builds them."""
SURGERY = "ablate_surgery"
NAME = re.compile(r"[A-Za-z0-9_.-]+")
OPTIONS = ("drop_rate", "drop_path_rate", "drop_block_rate", "global_pool", "output_stride", "zero_init_last",
           "stem_type", "stem_width", "avg_down", "down_kernel_size", "width_multiplier", "channel_multiplier")
"""The ``[model]`` options passed on to ``timm.create_model``: architectural keywords only. Keys that load
files (``checkpoint_path``, ``pretrained``, ``pretrained_cfg*``, ``*_overlay``, ...) never reach timm, so a
recipe cannot make ablate read, let alone unpickle, anything."""


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def component(arch: str) -> Component:
    """A registry-style component for ``timm:<name>``, whose signature lists the allowed options (recipes are
    checked against it); whether timm has the model is checked when it is built."""
    name = arch[len(PREFIX):]
    if not NAME.fullmatch(name):
        raise AblateError(f"timm model name {name!r} may hold only letters, digits, '_', '.' and '-', "
                          f"like timm:resnet18")
    factory: Any = partial(build, arch)
    keyword = inspect.Parameter.KEYWORD_ONLY
    factory.__signature__ = inspect.Signature(
        [inspect.Parameter(p, keyword, default=None) for p in ("norm", "shortcut", "num_classes", "in_channels")]
        + [inspect.Parameter(p, keyword, default=None) for p in OPTIONS])
    return Component(arch, factory, "timm", f"timm's {name}, untrained")


def check_options(options: dict[str, Any]) -> None:
    """Fail with one line for an option outside ``OPTIONS`` (nothing that loads a file reaches timm)."""
    for key in options:
        if key not in OPTIONS:
            raise AblateError(f"timm option {key!r} is not allowed (ablate builds timm models untrained and loads no "
                              f"files); allowed: {', '.join(OPTIONS)}")


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

    check_options(options)
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
