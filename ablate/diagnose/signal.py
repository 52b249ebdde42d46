"""Forward statistics per block from one batch in training mode (Brock et al. 2021's signal propagation).

Positions, in depth order: ``input`` (the images), ``entry`` (the input of the first block: the
stem's output), each block's output (``ablate.diagnose.blocks``), ``classifier input`` (the
penultimate features, N x C). At each position, over the batch (and the spatial positions)::

    sq_mean          average over channels of the squared channel mean
    variance         average over channels of the channel variance
    branch_variance  the same variance of the block's residual branch alone (its output before
                     it is added to the shortcut); nan where the block has none, and elsewhere
    dead_fraction    fraction of units (channel x position) that are exactly 0 for every image

Statistics are reduced inside forward hooks (the blocks of timm add their shortcut in place).
The forward pass runs in training mode with BatchNorm's running statistics untouched
(``frozen_norms``), without gradients; the RNG state is restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from ablate.diagnose.blocks import blocks, classifier

STATISTICS = ("sq_mean", "variance", "branch_variance", "dead_fraction")
INPUT, ENTRY, HEAD = "input", "entry", "classifier input"


@dataclass
class SignalProfile:
    """``values[statistic]`` is a list over ``positions`` (depth order)."""

    positions: list[str]
    values: dict[str, list[float]] = field(default_factory=dict)

    def column(self, statistic: str) -> list[float]:
        return self.values[statistic]

    def relative_variance(self) -> list[float]:
        """Each position's variance over the input's."""
        variance = self.values["variance"]
        base = variance[0]
        return [v / base if base > 0 else math.nan for v in variance]

    def as_dict(self) -> dict[str, Any]:
        return {"positions": self.positions, **{k: [_json(v) for v in vs] for k, vs in self.values.items()}}


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


def channel_stats(t: torch.Tensor) -> torch.Tensor:
    """``(sq_mean, variance, dead_fraction)`` of an (N, C, ...) tensor, as one float tensor."""
    t = t.detach().float()
    per_channel = t.transpose(0, 1).reshape(t.shape[1], -1)
    mean = per_channel.mean(dim=1)
    variance = per_channel.var(dim=1, unbiased=False)
    dead = (t == 0).all(dim=0).float().mean()
    return torch.stack([(mean * mean).mean(), variance.mean(), dead])


@contextmanager
def frozen_norms(model: nn.Module) -> Iterator[None]:
    """Training mode with BatchNorm's batch statistics, but its running statistics left as they are."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    was_training = model.training
    cpu_rng = torch.get_rng_state()
    cuda_rngs = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        model.train()
        for m in norms:
            m.track_running_stats = False
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rngs is not None:
            torch.cuda.set_rng_state_all(cuda_rngs)


class SignalHooks:
    """Forward hooks that reduce each position's statistics as the batch passes; ``profile()`` reads them."""

    def __init__(self, model: nn.Module) -> None:
        self.infos = blocks(model)
        self.positions = [INPUT, ENTRY, *(b.name for b in self.infos), HEAD]
        self._stats: dict[str, torch.Tensor] = {}
        self._branch: dict[str, torch.Tensor] = {}
        self.features: torch.Tensor | None = None
        first = self.infos[0].module
        self._handles = [first.register_forward_pre_hook(self._pre_first),
                         classifier(model).register_forward_pre_hook(self._pre_head)]
        for info in self.infos:
            self._handles.append(info.module.register_forward_hook(self._output(info.name)))
            if info.branch is not None:
                self._handles.append(info.branch.register_forward_hook(self._branch_output(info.name)))

    def _pre_first(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._stats[ENTRY] = channel_stats(inputs[0])

    def _pre_head(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._stats[HEAD] = channel_stats(inputs[0])
        self.features = inputs[0].detach()

    def _output(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            self._stats[name] = channel_stats(output)
        return hook

    def _branch_output(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            self._branch[name] = channel_stats(output)[1]
        return hook

    def reset(self) -> None:
        self._stats.clear()
        self._branch.clear()

    def profile(self, x: torch.Tensor) -> SignalProfile:
        """The profile of the last forward pass of ``x``; one host read."""
        self._stats[INPUT] = channel_stats(x)
        nan = torch.tensor(math.nan, device=x.device)
        missing = [p for p in self.positions if p not in self._stats]
        if missing:
            raise RuntimeError(f"the forward pass did not reach {missing[0]}")
        rows = torch.stack([torch.cat([self._stats[p][:2], self._branch.get(p, nan).view(1), self._stats[p][2:]])
                            for p in self.positions]).cpu().tolist()
        values = {s: [float(row[j]) for row in rows] for j, s in enumerate(STATISTICS)}
        return SignalProfile(list(self.positions), values)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@torch.no_grad()
def signal_profile(model: nn.Module, x: torch.Tensor, precision: Any = None) -> SignalProfile:
    """The forward statistics of ``model`` on the batch ``x`` (training mode; the model is left as it was)."""
    return forward_with_hooks(model, x, precision)[0]


@torch.no_grad()
def forward_with_hooks(model: nn.Module, x: torch.Tensor, precision: Any = None) -> tuple[SignalProfile, torch.Tensor]:
    """The forward statistics of ``model`` on ``x``, and its penultimate features (N x C)."""
    hooks = SignalHooks(model)
    try:
        frozen_forward(model, x, precision)
        profile = hooks.profile(x)
        assert hooks.features is not None  # profile() found the classifier input
        return profile, hooks.features.flatten(1)
    finally:
        hooks.remove()


def frozen_forward(model: nn.Module, x: torch.Tensor, precision: Any = None) -> None:
    """``model(x)`` with its norms frozen, under the run's autocast when it is bf16 (an fp16 run's statistics are taken
    in full precision: squares of fp16 activations overflow)."""
    with frozen_norms(model):
        if precision is not None and getattr(precision, "dtype", None) is torch.bfloat16:
            with precision.autocast(x.device):
                model(x)
        else:
            model(x)
