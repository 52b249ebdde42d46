"""Built-in architectures: the study's VGG family and He et al.'s CIFAR ResNets.

``factory(*, norm, shortcut, num_classes, in_channels, **options) -> nn.Module``, where
``norm`` and ``shortcut`` are the chosen norm and shortcut factories; so is ``entry_norm``
when the recipe sets ``model.entry_norm`` (``ablate.models.build_model`` resolves it).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ablate.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torch import nn

    from ablate.models.vgg import NormFactory, ShortcutFactory


def vgg(*, norm: NormFactory, shortcut: ShortcutFactory, num_classes: int = 100, in_channels: int = 3,
        blocks_per_stage: int | None = None, depth: int | None = None, stages: int = 3,
        width: int | list[int] = 32, negative_slope: float = 0.01, entry_norm: NormFactory | None = None) -> nn.Module:
    """VGG of 2 + stages * (2 * blocks_per_stage + 2) weight layers (give blocks_per_stage or depth).

    ``entry_norm`` is the entry block's norm factory; None keeps the study's BatchNorm.
    """
    from ablate.models.vgg import VGG, blocks_for

    if depth is not None and blocks_per_stage is not None:
        raise ValueError(f"give depth or blocks_per_stage, not both (depth {depth}, blocks_per_stage "
                         f"{blocks_per_stage}); vgg08 and vgg38 fix the depth: use arch 'vgg' with depth")
    blocks = blocks_for(depth, stages) if blocks_per_stage is None else blocks_per_stage
    return VGG(norm, shortcut, blocks_per_stage=blocks, stages=stages, width=width, num_classes=num_classes,
               in_channels=in_channels, negative_slope=negative_slope, entry_norm=entry_norm)


def resnet(*, norm: NormFactory, shortcut: ShortcutFactory, num_classes: int = 100, in_channels: int = 3,
           blocks_per_stage: int | None = None, depth: int | None = None, width: int | list[int] = 16,
           activation: str = "relu") -> nn.Module:
    """He et al.'s CIFAR ResNet of 6n + 2 weight layers (depth, default 20; or n = blocks_per_stage)."""
    from ablate.models.resnet import ResNet, blocks_for

    if depth is not None and blocks_per_stage is not None:
        raise ValueError(f"give depth or blocks_per_stage, not both (depth {depth}, blocks_per_stage "
                         f"{blocks_per_stage}); resnet20 ... resnet110 fix the depth: use arch 'resnet' with depth")
    blocks = blocks_for(20 if depth is None else depth) if blocks_per_stage is None else blocks_per_stage
    return ResNet(norm, shortcut, blocks_per_stage=blocks, width=width, num_classes=num_classes,
                  in_channels=in_channels, activation_name=activation)


RESNETS = {20: "269,722", 32: "464,154", 44: "658,586", 56: "853,018", 110: "1,727,962"}
"""He et al.'s CIFAR depths, with their parameter counts (BN, option A shortcuts, 10 classes)."""


@hookimpl
def register_architectures(register: Register) -> None:
    register("vgg", vgg)
    register("vgg08", partial(vgg, blocks_per_stage=0), help="The study's VGG08: 3 stages of 0 blocks (59,716 params)")
    register("vgg38", partial(vgg, blocks_per_stage=5), help="The study's VGG38: 3 stages of 5 blocks (336,196 params)")
    register("resnet", resnet)
    for depth, params in RESNETS.items():
        register(f"resnet{depth}", partial(resnet, blocks_per_stage=(depth - 2) // 6),
                 help=f"He et al.'s CIFAR ResNet-{depth}: 3 stages of {(depth - 2) // 6} blocks ({params} params on CIFAR-10)")
