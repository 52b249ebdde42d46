"""Built-in shortcuts: ``factory(in_channels, out_channels, stride, norm) -> nn.Module | None``.

A block with stride 1 and equal channels is a processing block; any other block is a
downsampling block. torch is imported when a shortcut is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ablate.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torch import nn


def _is_processing(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride == 1 and in_channels == out_channels


def _identity() -> nn.Module:
    from torch import nn

    return nn.Identity()


def no_shortcut(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """No shortcuts anywhere (the study's plain VGG)."""
    return None


def identity(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skip around processing blocks, none across downsampling (the study's RC)."""
    return _identity() if _is_processing(in_channels, out_channels, stride) else None


def zeropad(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skips, plus subsampling with zero-padded channels across downsampling (option A)."""
    from ablate.models.shortcuts import ZeroPadShortcut

    if _is_processing(in_channels, out_channels, stride):
        return _identity()
    return ZeroPadShortcut(in_channels, out_channels, stride)


def proj(in_channels: int, out_channels: int, stride: int, norm) -> nn.Module | None:
    """Identity skips, plus a strided 1x1 conv and the norm across downsampling (option B)."""
    from ablate.models.shortcuts import projection

    if _is_processing(in_channels, out_channels, stride):
        return _identity()
    return projection(in_channels, out_channels, stride, norm)


@hookimpl
def register_shortcuts(register: Register) -> None:
    register("none", no_shortcut, label="")
    register("identity", identity, label="RC")
    register("zeropad", zeropad, label="RC(pad)")
    register("proj", proj, label="RC(proj)")
