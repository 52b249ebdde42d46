"""How the report names and orders components: from the labels and order they were registered with.

A component's label is the one its plugin registered (``register("bn", ..., label="BN")``);
a component that is not installed shows its raw name. The order is ``none`` first, then
registration order (the built-ins load first), then names that are not installed.
"""

from __future__ import annotations

import re
from typing import Any

from ablate import plugins
from ablate.models import KEEP, timm

UPPER = {r"vgg\d*": str.upper, r"resnet\d*": lambda name: "ResNet" + name[len("resnet"):]}
"""How ablate's own architectures are written in labels: VGG38, ResNet56."""


def component_label(kind: str, name: str) -> str:
    """The label ``name`` was registered with under ``kind`` (``"norms"``), or ``name`` if it is not installed
    (``none`` then shows as nothing, as the built-in plugin registers it)."""
    registry = plugins.registry(kind)
    if name not in registry:
        return "" if name == "none" else name
    label = registry.get(name).label
    return name if label is None else label


def component_rank(kind: str, name: Any) -> int:
    """Sort position of ``name`` among the components of ``kind``: ``none`` and ``keep``, registered, not installed."""
    if name in ("none", KEEP):
        return 0
    registered = [n for n in plugins.registry(kind).components if n != "none"]
    return registered.index(name) + 1 if name in registered else len(registered) + 1


def model_label(arch: str, norm: str = "none", shortcut: str = "none") -> str:
    """``vgg38, bn, identity`` -> ``VGG38 BN+RC``; names that are not installed are shown verbatim.

    A timm model shows ``keep`` as nothing and ``none`` as ``no-norm`` / ``no-shortcut``: its baseline has both.
    """
    name = next((spell(arch) for pattern, spell in UPPER.items() if re.fullmatch(pattern, arch, re.IGNORECASE)), arch)
    parts = [_part("norm", norm, arch), _part("shortcut", shortcut, arch)]
    extras = "+".join(p for p in parts if p)
    return f"{name} {extras}" if extras else name


def _part(kind: str, name: str, arch: str) -> str:
    if name == KEEP:
        return ""
    label = component_label(kind + "s", name)
    return f"no-{kind}" if not label and name == "none" and timm.is_timm(arch) else label
