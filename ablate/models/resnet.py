"""He et al. (2016)'s CIFAR ResNets, composed from a norm factory and a shortcut factory.

Layout (Section 4.2 of the paper): a 3x3 conv + norm + activation; three stages of
``n`` basic blocks (widths 16, 32, 64; the first block of stages 2 and 3 has stride 2);
global average pooling; a linear classifier: 6n + 2 weight layers. A basic block is
conv3x3 -> norm -> act -> conv3x3 -> norm, its shortcut added (``add_shortcut``), then act.
Convolutions have no bias. They keep PyTorch's default initialisation, as the VGG family does,
so that arms differ only in layout and components; He et al.'s fan-out initialisation makes the
residual nets without a norm diverge (logits with a std of about 800 at initialisation for
resnet56 with identity shortcuts, against 0.08 with the default).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate.models.shortcuts import add_shortcut
from ablate.models.vgg import NormFactory, ShortcutFactory

ACTIVATIONS = ("relu", "leaky_relu")
LEAKY_SLOPE = 0.01
"""The VGG study's LeakyReLU slope, for ``activation = "leaky_relu"``."""


def activation(name: str) -> nn.Module:
    """A fresh ``relu`` or ``leaky_relu`` (slope 0.01) module."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not valid; choose one of: {', '.join(ACTIVATIONS)}")
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(LEAKY_SLOPE)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3 -> norm -> act -> conv3x3 -> norm; the shortcut (if any) is added before the last act."""

    signal_block = True  # a block for ablate.diagnose

    def __init__(self, cin: int, cout: int, stride: int, norm: NormFactory, shortcut: ShortcutFactory, act: str) -> None:
        super().__init__()
        self.conv1, self.norm1, self.act1 = conv3x3(cin, cout, stride), norm(cout), activation(act)
        self.conv2, self.norm2 = conv3x3(cout, cout), norm(cout)
        self.shortcut = shortcut(cin, cout, stride, norm)
        self.act2 = activation(act)

    def residual_branch(self) -> nn.Module | None:
        """The module whose output is added to the shortcut; None without one."""
        return self.norm2 if self.shortcut is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act2(add_shortcut(self.shortcut, x, out))


def blocks_for(depth: int) -> int:
    """Blocks per stage ``n`` for ``depth`` = 6n + 2 weight layers."""
    blocks, rest = divmod(depth - 2, 6)
    if rest or blocks < 1:
        raise ValueError(f"depth {depth} is not 6n + 2; valid: 8, 14, 20, 32, 44, 56, 110, ...")
    return blocks


def stage_widths(width: int | Sequence[int]) -> list[int]:
    """Three stage widths: a list of three, or one int ``w`` giving ``w, 2w, 4w`` (16 -> He et al.'s 16, 32, 64)."""
    widths = [width, 2 * width, 4 * width] if isinstance(width, int) else list(width)
    if len(widths) != 3 or any(not isinstance(w, int) or w <= 0 for w in widths):
        raise ValueError(f"width must be one positive int (doubled per stage) or 3 of them, got {width!r}")
    return widths


class ResNet(nn.Module):
    def __init__(self, norm: NormFactory, shortcut: ShortcutFactory, blocks_per_stage: int = 3,
                 width: int | Sequence[int] = 16, num_classes: int = 10, in_channels: int = 3,
                 activation_name: str = "relu") -> None:
        super().__init__()
        widths = stage_widths(width)
        self.entry = nn.Sequential(conv3x3(in_channels, widths[0]), norm(widths[0]), activation(activation_name))
        blocks: list[nn.Module] = []
        cin = widths[0]
        for stage, w in enumerate(widths):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, w, stride, norm, shortcut, activation_name))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.entry(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))
