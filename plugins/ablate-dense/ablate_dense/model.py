"""``DenseVGG``: the study's VGG with DenseNet-style connectivity in each stage.

The layout is the VGG family's (entry conv + BatchNorm or ``entry_norm``, stages of processing blocks and
a downsampling block, global average pooling, linear classifier), built from the same
``Block`` and ``ConvNormAct``. Inside a stage, each processing block and the stage's
downsampling block receive the stage input and the outputs of all earlier blocks of the
stage (Huang et al. 2017), joined either by concatenation and a 1x1 convolution back to
the stage width (``mode="concat"``) or by summation (``mode="sum"``, no parameters).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate.models.vgg import Block, NormFactory, ShortcutFactory, make_block, stage_widths, stem

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
                 in_channels: int = 3, negative_slope: float = 0.01, mode: str = "concat",
                 entry_norm: NormFactory | None = None) -> None:
        super().__init__()
        widths = stage_widths(width, stages)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.entry = stem(in_channels, widths[0], negative_slope, entry_norm)

        def block(cin: int, cout: int, stride: int) -> Block:
            return make_block(cin, cout, stride, norm, shortcut, negative_slope)

        self.stages = nn.Sequential(*(
            DenseStage([block(w, w, 1) for _ in range(blocks_per_stage)],
                       block(w, widths[min(i + 1, stages - 1)], 2), w, mode)
            for i, w in enumerate(widths)
        ))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.entry(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))

