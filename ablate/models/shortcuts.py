"""Shortcut modules used by the built-in shortcut strategies, and how a block adds a shortcut."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def add_shortcut(shortcut: nn.Module | None, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The residual branch combined with the shortcut of the block's input ``x``: their sum, or the
    shortcut's own ``merge(skip, residual)`` when it defines one; ``residual`` alone without a shortcut."""
    if shortcut is None:
        return residual
    skip = shortcut(x)
    merge = getattr(shortcut, "merge", None)
    return merge(skip, residual) if merge is not None else residual + skip


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut (He et al. 2016, option A): stride-2 subsampling, then
    zero channels appended up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"zeropad cannot shrink channels ({in_channels} -> {out_channels}); use proj")
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s > 1:
            h, w = x.shape[-2:]
            x = x[..., : h - h % s : s, : w - w % s : s]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra}"


def projection(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module:
    """He et al. 2016, option B: a strided 1x1 convolution followed by the chosen norm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        norm(out_channels),
    )
