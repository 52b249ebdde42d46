"""ablate plugin: ``dense-vgg``, the study's VGG with DenseNet-style connectivity in each stage.

The hooks live here and import nothing heavy; the model is in ``ablate_dense.model``,
imported when one is built (so that ``ablate --help`` and ``ablate plugins`` stay fast).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from ablate.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"


def dense_vgg(*, norm: Any, shortcut: Any, num_classes: int = 100, in_channels: int = 3,
              blocks_per_stage: int | None = None, depth: int | None = None, stages: int = 3,
              width: int | list[int] = 32, negative_slope: float = 0.01, mode: str = "concat",
              entry_norm: Any = None) -> nn.Module:
    """VGG (default: VGG38's shape) whose blocks see all earlier outputs of their stage, joined by 1x1 convs.

    ``entry_norm`` is the entry block's norm factory (``model.entry_norm``); None keeps BatchNorm.
    """
    from ablate.models.vgg import blocks_for
    from ablate_dense.model import DenseVGG

    if blocks_per_stage is None:
        blocks_per_stage = blocks_for(depth, stages)
    return DenseVGG(norm, shortcut, blocks_per_stage=blocks_per_stage, stages=stages, width=width,
                    num_classes=num_classes, in_channels=in_channels, negative_slope=negative_slope, mode=mode,
                    entry_norm=entry_norm)


@hookimpl
def register_architectures(register: Register) -> None:
    register("dense-vgg", dense_vgg)
    register("dense-vgg-sum", partial(dense_vgg, mode="sum"),
             help="dense-vgg joining by summation: no parameters beyond the VGG's")
