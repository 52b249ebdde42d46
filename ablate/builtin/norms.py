"""Built-in norms: ``factory(num_channels) -> nn.Module``."""

from __future__ import annotations

from torch import nn

from ablate.hookspecs import Register, hookimpl


def batch_norm(num_channels: int) -> nn.Module:
    """BatchNorm2d after each conv, before the activation (Ioffe & Szegedy 2015)."""
    return nn.BatchNorm2d(num_channels)


def no_norm(num_channels: int) -> nn.Module:
    """No normalisation (the study's plain VGG)."""
    return nn.Identity()


@hookimpl
def register_norms(register: Register) -> None:
    register("bn", batch_norm, label="BN")
    register("none", no_norm, label="")
