"""Built-in norms: ``factory(num_channels) -> nn.Module``. torch is imported when a norm is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ablate.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torch import nn


def batch_norm(num_channels: int) -> nn.Module:
    """BatchNorm2d after each conv, before the activation (Ioffe & Szegedy 2015)."""
    from torch import nn

    return nn.BatchNorm2d(num_channels)


def no_norm(num_channels: int) -> nn.Module:
    """No normalisation (the study's plain VGG)."""
    from torch import nn

    return nn.Identity()


@hookimpl
def register_norms(register: Register) -> None:
    register("bn", batch_norm, label="BN")
    register("none", no_norm, label="")
