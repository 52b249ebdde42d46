"""Which modules of a network are its blocks, and which submodule is a block's residual branch.

The convention, for any architecture (ablate's, a plugin's): a module is a *block* when it has
a true ``signal_block`` attribute (a class attribute, usually); its *residual branch* is the
module that its ``residual_branch()`` method returns: the module whose output is added to the
shortcut, or None when the block has no shortcut. A block without that method has no branch.
The classifier is ``model.get_classifier()`` (timm) or ``model.classifier``; its input is the
penultimate features.

timm models are not marked; their blocks are the children of their stages (``layer1`` ...,
``stages``, ``blocks``), and the residual branch of a block of timm's ResNet family is its last
norm (or its ``se``/``drop_path`` after it), unless shortcut surgery removed the skip.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ablate.registry import AblateError

MARK = "signal_block"
BRANCH = "residual_branch"


@dataclass
class BlockInfo:
    name: str
    module: nn.Module
    branch: nn.Module | None


def classifier(model: nn.Module) -> nn.Module:
    """The module whose input is the penultimate features."""
    getter = getattr(model, "get_classifier", None)
    head = getter() if callable(getter) else getattr(model, "classifier", None)
    if not isinstance(head, nn.Module):
        raise AblateError(f"{type(model).__name__} has no classifier (a `classifier` module or `get_classifier()`); "
                          f"the penultimate features cannot be found")
    return head


def blocks(model: nn.Module) -> list[BlockInfo]:
    """The blocks of ``model`` in ``named_modules()`` order, each with its residual branch (or None)."""
    marked = [(name, m) for name, m in model.named_modules() if getattr(m, MARK, False) is True]
    if marked:
        return [BlockInfo(name, m, _branch(m)) for name, m in marked]
    if type(model).__module__.startswith("timm."):
        return _timm_blocks(model)
    raise AblateError(f"{type(model).__name__} marks no blocks: set `{MARK} = True` on its block class "
                      f"(and define `{BRANCH}()` where a block has a shortcut), see ablate.diagnose.blocks")


def _branch(block: nn.Module) -> nn.Module | None:
    method = getattr(block, BRANCH, None)
    return method() if callable(method) else None


def _timm_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = [(name, m) for name, m in model.named_children() if name.startswith("layer") and name[5:].isdigit()]
    if layers:
        return layers
    for attr in ("stages", "blocks", "features"):
        container = getattr(model, attr, None)
        if isinstance(container, (nn.Sequential, nn.ModuleList)):
            return [(f"{attr}.{name}", m) for name, m in container.named_children()]
    return []


def _timm_blocks(model: nn.Module) -> list[BlockInfo]:
    out = []
    for stage_name, stage in _timm_stages(model):
        inner = getattr(stage, "blocks", None)
        prefix, container = (f"{stage_name}.blocks", inner) if isinstance(inner, nn.Sequential) else (stage_name, stage)
        if isinstance(container, (nn.Sequential, nn.ModuleList)):
            out += [BlockInfo(f"{prefix}.{name}", m, _timm_branch(m)) for name, m in container.named_children()]
        else:
            out.append(BlockInfo(stage_name, stage, _timm_branch(stage)))
    if not out:
        raise AblateError(f"timm model {type(model).__name__}: no stages found (layer1..., stages, blocks or features)")
    return out


def _timm_branch(block: nn.Module) -> nn.Module | None:
    """The last module of a timm ResNet-family block's residual branch; None without a skip (or another family)."""
    if not hasattr(block, "downsample") or type(block.downsample).__name__ == "NoShortcut":
        return None
    for name in ("drop_path", "se", "bn3", "bn2"):
        module = getattr(block, name, None)
        if isinstance(module, nn.Module):
            return module
    return None
