"""ablate plugin: ``dense-vgg``, the study's VGG with DenseNet-style connectivity in each stage.

The layout is the VGG family's (entry conv + BatchNorm, stages of processing blocks and
a downsampling block, global average pooling, linear classifier), built from the same
``Block`` and ``ConvNormAct``. Inside a stage, each processing block and the stage's
downsampling block receive the stage input and the outputs of all earlier blocks of the
stage (Huang et al. 2017), joined either by concatenation and a 1x1 convolution back to
the stage width (``mode="concat"``) or by summation (``mode="sum"``, no parameters).
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate.hookspecs import Register, hookimpl
from ablate.models.vgg import Block, ConvNormAct, NormFactory, ShortcutFactory
from ablate.plugins import registry

__version__ = "0.1.0"
MODES = ("concat", "sum")


def extra_params(blocks_per_stage: int, widths: Sequence[int], mode: str = "concat") -> int:
    """Parameters the 1x1 joins add to the VGG of the same shape: per stage of width w,
    convs from k*w to w channels for k = 2 .. B+1, i.e. w^2 * ((B+1)(B+2)/2 - 1)."""
    if mode == "sum":
        return 0
    b = blocks_per_stage
    return sum(w * w * ((b + 1) * (b + 2) // 2 - 1) for w in widths)


class DenseStage(nn.Module):
    """Processing blocks, then the downsampling block, each fed every earlier feature map of the stage."""

    def __init__(self, blocks: list[Block], down: Block, width: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.blocks = nn.ModuleList(blocks)
        joins = range(2, len(blocks) + 2) if mode == "concat" else range(0)
        self.joins = nn.ModuleList(nn.Conv2d(k * width, width, 1, bias=False) for k in joins)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "sum":
            for block in self.blocks:
                x = x + block(x)
            return self.down(x)
        features = [x]
        for block in self.blocks:
            features.append(block(self._join(features)))
        return self.down(self._join(features))

    def _join(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) == 1:
            return features[0]
        return self.joins[len(features) - 2](torch.cat(features, 1))


class DenseVGG(nn.Module):
    def __init__(self, norm: NormFactory, shortcut: ShortcutFactory, blocks_per_stage: int = 5,
                 stages: int = 3, width: int | Sequence[int] = 32, num_classes: int = 100,
                 in_channels: int = 3, negative_slope: float = 0.01, mode: str = "concat") -> None:
        super().__init__()
        widths = [width] * stages if isinstance(width, int) else list(width)
        if len(widths) != stages or any(w <= 0 for w in widths):
            raise ValueError(f"width must be one positive int or {stages} of them, got {width!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.entry = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.LeakyReLU(negative_slope),
        )

        def block(cin: int, cout: int, stride: int) -> Block:
            mid = cin if stride > 1 else cout
            return Block(ConvNormAct(cin, mid, norm, stride > 1), ConvNormAct(mid, cout, norm, stride > 1),
                         shortcut(cin, cout, stride, norm), negative_slope, pool=stride > 1)

        self.stages = nn.Sequential(*(
            DenseStage([block(w, w, 1) for _ in range(blocks_per_stage)],
                       block(w, widths[min(i + 1, stages - 1)], 2), w, mode)
            for i, w in enumerate(widths)
        ))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.entry(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def blocks_for(depth: int, stages: int) -> int:
    """Processing blocks per stage for ``depth`` = 2 + stages * (2 * blocks + 2) (joins not counted)."""
    blocks, rest = divmod(depth - 2 - 2 * stages, 2 * stages)
    if rest or blocks < 0:
        valid = ", ".join(str(2 + stages * (2 * b + 2)) for b in range(5))
        raise ValueError(f"depth {depth} is not reachable with {stages} stages; valid: {valid}, ...")
    return blocks


def dense_vgg(*, norm: str = "none", shortcut: str = "none", num_classes: int = 100, in_channels: int = 3,
              blocks_per_stage: int | None = None, depth: int | None = None, stages: int = 3,
              width: int | list[int] = 32, negative_slope: float = 0.01, mode: str = "concat") -> nn.Module:
    """VGG (default: VGG38's shape) whose blocks see all earlier outputs of their stage, joined by 1x1 convs."""
    if blocks_per_stage is None:
        blocks_per_stage = 5 if depth is None else blocks_for(depth, stages)
    return DenseVGG(
        registry("norms").factory(norm), registry("shortcuts").factory(shortcut),
        blocks_per_stage=blocks_per_stage, stages=stages, width=width, num_classes=num_classes,
        in_channels=in_channels, negative_slope=negative_slope, mode=mode,
    )


@hookimpl
def register_architectures(register: Register) -> None:
    register("dense-vgg", dense_vgg)
    register("dense-vgg-sum", partial(dense_vgg, mode="sum"),
             help="dense-vgg joining by summation: no parameters beyond the VGG's")
