"""The study's VGG family, composed from a norm factory and a shortcut factory.

Layout (Section 5 of the study): an entry conv (no bias) + BatchNorm + activation
(``entry_norm`` replaces that BatchNorm: another norm factory, e.g. the chosen one);
per stage, ``blocks_per_stage`` processing blocks (two 3x3 convs without bias) and a
downsampling block (conv with bias -> act -> 2x2 average pool -> conv with bias);
global average pooling; a linear classifier. A norm follows each conv, before the
activation; a shortcut is added before the block's last activation.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate.models.shortcuts import add_shortcut

NormFactory = Callable[[int], nn.Module]
ShortcutFactory = Callable[[int, int, int, NormFactory], "nn.Module | None"]


class ConvNormAct(nn.Module):
    """conv -> norm, with the activation applied by the owning block."""

    def __init__(self, cin: int, cout: int, norm: NormFactory, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)
        self.norm = norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Block(nn.Module):
    """Two convs; the shortcut (if any) is added before the last activation.

    A shortcut module may define ``merge(skip, residual)`` to combine the two paths
    itself (for gated or concatenating variants); otherwise they are summed. ``signal_block`` and
    ``residual_branch`` mark it for ``ablate.diagnose``.
    """

    signal_block = True

    def __init__(self, first: nn.Module, second: nn.Module, shortcut: nn.Module | None,
                 negative_slope: float, pool: bool) -> None:
        super().__init__()
        self.first = first
        self.act1 = nn.LeakyReLU(negative_slope)
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()
        self.second = second
        self.shortcut = shortcut
        self.act2 = nn.LeakyReLU(negative_slope)

    def residual_branch(self) -> nn.Module | None:
        """The module whose output is added to the shortcut; None without one."""
        return self.second if self.shortcut is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.second(self.pool(self.act1(self.first(x))))
        return self.act2(add_shortcut(self.shortcut, x, out))


def make_block(cin: int, cout: int, stride: int, norm: NormFactory, shortcut: ShortcutFactory,
               negative_slope: float) -> Block:
    """A processing block (stride 1, no conv bias) or a downsampling block (stride 2, conv bias)."""
    mid = cin if stride > 1 else cout
    return Block(ConvNormAct(cin, mid, norm, stride > 1), ConvNormAct(mid, cout, norm, stride > 1),
                 shortcut(cin, cout, stride, norm), negative_slope, pool=stride > 1)


def stem(in_channels: int, width: int, negative_slope: float, norm: NormFactory | None = None) -> nn.Sequential:
    """The entry block: conv (no bias) + norm + activation; the norm is BatchNorm, as in the study, unless given."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        (norm or nn.BatchNorm2d)(width),
        nn.LeakyReLU(negative_slope),
    )


def stage_widths(width: int | Sequence[int], stages: int) -> list[int]:
    """One width per stage from one int or a list of ``stages`` ints."""
    widths = [width] * stages if isinstance(width, int) else list(width)
    if len(widths) != stages or any(w <= 0 for w in widths):
        raise ValueError(f"width must be one positive int or {stages} of them, got {width!r}")
    return widths


def blocks_for(depth: int | None, stages: int) -> int:
    """Processing blocks per stage for ``depth`` = 2 + stages * (2 * blocks + 2) weight layers (None: VGG38's 5)."""
    if depth is None:
        return 5
    blocks, rest = divmod(depth - 2 - 2 * stages, 2 * stages)
    if rest or blocks < 0:
        valid = ", ".join(str(2 + stages * (2 * b + 2)) for b in range(5))
        raise ValueError(f"depth {depth} is not reachable with {stages} stages; valid: {valid}, ...")
    return blocks


class VGG(nn.Module):
    def __init__(self, norm: NormFactory, shortcut: ShortcutFactory, blocks_per_stage: int = 5,
                 stages: int = 3, width: int | Sequence[int] = 32, num_classes: int = 100,
                 in_channels: int = 3, negative_slope: float = 0.01, entry_norm: NormFactory | None = None) -> None:
        super().__init__()
        widths = stage_widths(width, stages)
        self.entry = stem(in_channels, widths[0], negative_slope, entry_norm)
        blocks: list[nn.Module] = []
        for i, w in enumerate(widths):
            blocks += [make_block(w, w, 1, norm, shortcut, negative_slope) for _ in range(blocks_per_stage)]
            blocks.append(make_block(w, widths[min(i + 1, stages - 1)], 2, norm, shortcut, negative_slope))
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.entry(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))
