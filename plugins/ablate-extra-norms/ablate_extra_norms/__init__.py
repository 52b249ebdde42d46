"""ablate plugin: the norms ``gn`` and ``ln``, and the normalisation-free shortcut ``rezero``."""

from __future__ import annotations

import torch
from torch import nn

from ablate.hookspecs import Register, hookimpl

__version__ = "0.1.0"
MAX_GROUPS = 32


def groups_for(num_channels: int, max_groups: int = MAX_GROUPS) -> int:
    """The largest divisor of ``num_channels`` that is at most ``max_groups``."""
    return next(g for g in range(min(max_groups, num_channels), 0, -1) if num_channels % g == 0)


def group_norm(num_channels: int) -> nn.Module:
    """GroupNorm with 32 groups, or the largest divisor of the channels below 32 (Wu & He 2018)."""
    return nn.GroupNorm(groups_for(num_channels), num_channels)


def layer_norm(num_channels: int) -> nn.Module:
    """LayerNorm over (C, H, W) per image with a per-channel affine, as GroupNorm(1, C)."""
    return nn.GroupNorm(1, num_channels)


class ReZero(nn.Module):
    """Identity skip whose residual branch is scaled by a learnable scalar, initially 0."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def merge(self, skip: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``skip + alpha * residual``."""
        return skip + self.alpha * residual


def rezero(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """ReZero skips (x + alpha * F(x), alpha = 0 at start) on processing blocks, none across downsampling."""
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
