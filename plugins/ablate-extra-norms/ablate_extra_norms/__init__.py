"""ablate plugin: the norms ``gn`` and ``ln``, and the normalisation-free shortcut ``rezero``.

torch is imported when a component is built, so that loading the plugin stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ablate.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"
MAX_GROUPS = 32


def groups_for(num_channels: int, max_groups: int = MAX_GROUPS) -> int:
    """The largest divisor of ``num_channels`` that is at most ``max_groups``."""
    return next(g for g in range(min(max_groups, num_channels), 0, -1) if num_channels % g == 0)


def group_norm(num_channels: int) -> nn.Module:
    """GroupNorm with 32 groups, or the largest divisor of the channels below 32 (Wu & He 2018)."""
    from torch import nn

    return nn.GroupNorm(groups_for(num_channels), num_channels)


def layer_norm(num_channels: int) -> nn.Module:
    """LayerNorm over (C, H, W) per image with a per-channel affine, as GroupNorm(1, C)."""
    from torch import nn

    return nn.GroupNorm(1, num_channels)


def rezero(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """ReZero skips (x + alpha * F(x), alpha = 0 at start) on processing blocks, none across downsampling."""
    from ablate_extra_norms.skip import ReZero

    if stride == 1 and in_channels == out_channels:
        return ReZero()
    return None


@hookimpl
def register_norms(register: Register) -> None:
    register("gn", group_norm, label="GN")
    register("ln", layer_norm, label="LN")


@hookimpl
def register_shortcuts(register: Register) -> None:
    register("rezero", rezero, label="ReZero")
