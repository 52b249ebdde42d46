"""Built-in shortcuts: ``factory(in_channels, out_channels, stride, norm) -> nn.Module | None``.

A block with stride 1 and equal channels is a processing block; any other block is a
downsampling block.
"""

from __future__ import annotations

from torch import nn

from ablate.hookspecs import Register, hookimpl
from ablate.models.shortcuts import ZeroPadShortcut, projection


def _is_processing(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride == 1 and in_channels == out_channels


def no_shortcut(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """No shortcuts anywhere (the study's plain VGG)."""
    return None


def identity(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skip around processing blocks, none across downsampling (the study's RC)."""
    return nn.Identity() if _is_processing(in_channels, out_channels, stride) else None


def zeropad(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skips, plus subsampling with zero-padded channels across downsampling (option A)."""
    if _is_processing(in_channels, out_channels, stride):
        return nn.Identity()
    return ZeroPadShortcut(in_channels, out_channels, stride)


def proj(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skips, plus a strided 1x1 conv and the norm across downsampling (option B)."""
    if _is_processing(in_channels, out_channels, stride):
        return nn.Identity()
    return projection(in_channels, out_channels, stride, norm)


@hookimpl
def register_shortcuts(register: Register) -> None:
    register("none", no_shortcut, label="")
    register("identity", identity, label="RC")
    register("zeropad", zeropad, label="RC(pad)")
    register("proj", proj, label="RC(proj)")
