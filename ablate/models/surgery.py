"""Norm and shortcut surgery on a built timm model, for the adapter in ``ablate.models.timm``.

``replace_norms`` swaps every normalisation layer for the chosen norm factory's module;
``rewire_shortcuts`` sets the shortcut of every block of timm's ResNet family. Both
change the model in place and return one line saying what they did; what they cannot
do is a ``SurgeryRefused`` error, never a partial or silent change.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import torch
from timm.layers import norm as timm_norm
from timm.layers import norm_act as timm_norm_act
from timm.models import res2net, resnest, resnet, sknet
from torch import nn

from ablate.registry import AblateError

NormFactory = Callable[[int], nn.Module]
ShortcutFactory = Callable[[int, int, int, NormFactory], "nn.Module | None"]

PLAIN_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, timm_norm.GroupNorm, timm_norm.GroupNorm1,
               timm_norm.LayerNorm2d)
NORM_ACTS = (timm_norm_act.BatchNormAct2d, timm_norm_act.GroupNormAct, timm_norm_act.GroupNorm1Act,
             timm_norm_act.LayerNormAct2d)
"""The layers replaced, matched by exact type: all normalise (N, C, H, W) over C channels; the
second kind (timm's norm+act layers) also apply a dropout and an activation, which are kept."""
TIMM_NORM_MODULES = ("timm.layers.norm", "timm.layers.norm_act", "timm.layers.evo_norm",
                     "timm.layers.filter_response_norm", "timm.layers.split_batchnorm")
RESIDUAL_BLOCKS = (resnet.BasicBlock, resnet.Bottleneck, sknet.SelectiveKernelBasic, sknet.SelectiveKernelBottleneck,
                   res2net.Bottle2neck, resnest.ResNestBottleneck)
"""Blocks of timm's ResNet class that add ``downsample(x)`` (or ``x`` when it is None) to their branch."""
SHORTCUT_FAMILIES = "timm's ResNet family (resnet*, resnext*, seresnet*, seresnext*, wide_resnet*, ecaresnet*, " \
                    "skresnet*, res2net*, resnest*, ...)"


class SurgeryRefused(AblateError):
    """The surgery cannot apply to this model; the message says why and what can."""


class NormAct(nn.Module):
    """A norm followed by the dropout and activation of the timm norm+act layer it replaced."""

    def __init__(self, norm: nn.Module, drop: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.norm, self.drop, self.act = norm, drop, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(self.norm(x)))


class NoNorm(nn.Module):
    """Stands in for a removed norm (the factory returned ``nn.Identity``): a copy of its input, as a
    norm returns a new tensor. timm follows norms with in-place activations, which must not overwrite
    a tensor that another path still reads (the shortcut of a pre-activation block, a dense concat)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class NoShortcut(nn.Module):
    """A timm block's ``downsample`` that returns a zero, so that the block's ``x += shortcut``
    adds nothing: neither signal nor gradient passes the skip path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())


def is_norm(module: nn.Module) -> bool:
    """Any normalisation layer of torch or timm (replaceable or not)."""
    torch_norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.RMSNorm)
    return isinstance(module, torch_norms) or any(c.__module__ in TIMM_NORM_MODULES for c in type(module).__mro__)


def channels(module: nn.Module) -> int:
    """The channels a replaceable norm normalises."""
    for attribute in ("num_features", "num_channels"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    return int(getattr(module, "normalized_shape")[0])  # LayerNorm2d and LayerNormAct2d


def replacement(old: nn.Module, factory: NormFactory) -> nn.Module:
    """The factory's norm for ``old``'s channels, with ``old``'s affine parameters and running statistics
    where their shapes match (so timm's initialisation, e.g. zero-init of a block's last norm, carries over)."""
    new = factory(channels(old))
    new = NoNorm() if type(new) is nn.Identity else new
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            mine, theirs = getattr(new, name, None), getattr(old, name, None)
            if isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor) and mine.shape == theirs.shape:
                mine.copy_(theirs)
    return NormAct(new, old.drop, old.act) if type(old) in NORM_ACTS else new  # type: ignore[arg-type]


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def replace_norms(model: nn.Module, factory: NormFactory) -> str:
    """Replace every normalisation layer of ``model`` with ``factory``'s; e.g. ``20 BatchNorm2d -> GroupNorm``."""
    found = [(path, m) for path, m in model.named_modules(remove_duplicate=False) if is_norm(m)]
    if not found:
        raise SurgeryRefused("the model has no normalisation layers")
    others = Counter(type(m).__name__ for _, m in found if type(m) not in PLAIN_NORMS + NORM_ACTS)
    if others:
        kinds = ", ".join(f"{n} {name}" for name, n in others.items())
        replaced = ", ".join(t.__name__ for t in PLAIN_NORMS + NORM_ACTS)
        raise SurgeryRefused(f"the model has {kinds}, which norm surgery does not replace (it replaces {replaced})")
    new: dict[int, nn.Module] = {}
    done: Counter[str] = Counter()
    for path, old in found:
        if id(old) not in new:
            new[id(old)] = replacement(old, factory)
            done[_norm_change(old, new[id(old)])] += 1
        set_module(model, path, new[id(old)])
    return ", ".join(f"{n} {change}" for change, n in done.items())


def _norm_change(old: nn.Module, new: nn.Module) -> str:
    norm = new.norm if isinstance(new, NormAct) else new
    change = "removed" if isinstance(norm, NoNorm) else f"-> {type(norm).__name__}"
    return f"{type(old).__name__} {change}" + (" (activation kept)" if isinstance(new, NormAct) else "")


def block_shapes(model: nn.Module, blocks: list[nn.Module], in_channels: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each block, from one forward pass of a 64x64 image."""
    shapes: dict[nn.Module, tuple[int, int, int]] = {}

    def record(block: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        shapes[block] = (x.shape[1], output.shape[1], x.shape[-1] // output.shape[-1])

    handles = [b.register_forward_hook(record) for b in blocks]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, 64, 64))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [shapes[b] for b in blocks]


def rewire_shortcuts(model: nn.Module, factory: ShortcutFactory, norm: NormFactory | None, name: str,
                     in_channels: int) -> str:
    """Set every block's shortcut to what ``factory`` returns for its shape (None: no residual add);
    ``norm`` is passed to the factory (None: a fresh layer of the type of the model's stem norm)."""
    blocks = [m for m in model.modules() if type(m) in RESIDUAL_BLOCKS]
    if type(model) is not resnet.ResNet or not blocks:
        raise SurgeryRefused(f"shortcut surgery supports {SHORTCUT_FAMILIES}, not {type(model).__name__} ({type(model).__module__})")
    norm = norm or _like(model.bn1)
    done: Counter[str] = Counter()
    for block, (cin, cout, stride) in zip(blocks, block_shapes(model, blocks, in_channels)):
        module = factory(cin, cout, stride, norm)
        if module is not None and hasattr(module, "merge"):
            raise SurgeryRefused("it combines the paths with merge(), but timm's blocks add their shortcut; "
                                 "only shortcuts without merge() apply to timm models")
        done[_set_shortcut(block, module, name, processing=cin == cout and stride == 1)] += 1
    text = ", ".join(f"{n} {change}" for change, n in done.items() if change)
    if not text:
        raise SurgeryRefused(f"it would leave the {len(blocks)} blocks as timm built them")
    return text


def _set_shortcut(block: nn.Module, module: nn.Module | None, name: str, processing: bool) -> str:
    """Make ``module`` the block's shortcut (its ``downsample``); what changed, or "" for nothing."""
    had_one = block.downsample is not None
    if module is None:
        _restart_zeroed_norms(block)
        module, change = NoShortcut(), "residual adds removed"
    elif type(module) is nn.Identity and processing:  # timm's own identity skip is downsample = None
        module, change = None, f"shortcuts -> {name}" if had_one else ""
    else:
        change = f"{'processing' if processing else 'downsampling'} shortcuts -> {name}"
    setattr(block, "downsample", module)
    return change


def _restart_zeroed_norms(block: nn.Module) -> None:
    """timm zero-initialises the weight of each residual block's last norm, so that the block starts as
    the identity; without its skip the block would output zeros, so such a weight starts at 1 again."""
    for m in block.modules():
        weight = getattr(m, "weight", None)
        if is_norm(m) and isinstance(weight, torch.Tensor) and not weight.any():
            nn.init.ones_(weight)


def _like(norm: nn.Module) -> NormFactory:
    """A factory of fresh norms of ``norm``'s type (``BatchNorm2d(c)``, timm's ``GroupNorm(c)``)."""
    return lambda num_channels: type(norm)(num_channels)
