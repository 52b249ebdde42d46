"""ablate plugin: the ``gradamp`` callback, gradient amplification after Basodi et al. (2020).

Each epoch inside ``[start_epoch, end_epoch]`` a seeded draw picks ``ratio`` of the
eligible layers; after every backward pass their parameter gradients are multiplied by
``factor``. A layer is a module that owns parameters directly; it is eligible when one
of its parameters' full names matches the ``layers`` glob(s). torch is imported when the callback
runs, so that loading the plugin stays fast.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from ablate.hookspecs import Register, hookimpl
from ablate.registry import AblateError

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"


def eligible_layers(model: nn.Module, patterns: list[str]) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters whose names match a pattern, grouped by owning module, in model order."""
    layers: dict[str, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param.requires_grad and id(param) not in seen and any(fnmatch.fnmatchcase(full, p) for p in patterns):
                seen.add(id(param))
                layers.setdefault(module_name or "(root)", []).append(param)
    return layers


class GradAmp:
    """Gradient amplification: multiply the gradients of a random fraction of layers, per epoch."""

    def __init__(self, *, factor: float = 2.0, ratio: float = 0.3, layers: str | list[str] = "*",
                 start_epoch: int = 1, end_epoch: int | None = None, seed: int | None = None) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise AblateError(f"callback gradamp: ratio = {ratio!r} must be between 0 and 1")
        if start_epoch < 1 or (end_epoch is not None and end_epoch < start_epoch):
            raise AblateError(f"callback gradamp: need 1 <= start_epoch <= end_epoch, got {start_epoch}, {end_epoch}")
        self.factor, self.ratio = float(factor), float(ratio)
        self.patterns = [layers] if isinstance(layers, str) else list(layers)
        self.start_epoch, self.end_epoch, self.seed = start_epoch, end_epoch, seed
        self.layers: dict[str, list[nn.Parameter]] = {}
        self.chosen: list[str] = []
        self._params: list[nn.Parameter] = []

    def active(self, epoch: int) -> bool:
        return epoch >= self.start_epoch and (self.end_epoch is None or epoch <= self.end_epoch)

    def count(self) -> int:
        """How many layers an active epoch amplifies: ``ratio`` of them, rounded half up, at least 1."""
        if self.ratio == 0 or not self.layers:
            return 0
        return max(1, int(self.ratio * len(self.layers) + 0.5))

    def choose(self, epoch: int, seed: int) -> list[str]:
        """The layers amplified in ``epoch``: a function of (seed, epoch) only, in model order."""
        if not self.active(epoch):
            return []
        import torch

        gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
        picks = torch.randperm(len(self.layers), generator=gen)[: self.count()].sort().values.tolist()
        names = list(self.layers)
        return [names[i] for i in picks]

    def on_run_start(self, state: Any) -> None:
        self.layers = eligible_layers(state.model, self.patterns)
        if not self.layers:
            raise AblateError(f"callback gradamp: no trainable parameter matches layers = {self.patterns!r}")

    def on_epoch_start(self, state: Any) -> None:
        if not self.layers:
            self.on_run_start(state)
        seed = self.seed if self.seed is not None else int(state.config.get("train", {}).get("seed", 0))
        self.chosen = self.choose(state.epoch, seed)
        self._params = [p for name in self.chosen for p in self.layers[name]]

    def on_after_backward(self, state: Any) -> None:
        grads = [p.grad for p in self._params if p.grad is not None]
        if grads:
            import torch

            torch._foreach_mul_(grads, self.factor)

    def on_epoch_end(self, state: Any) -> dict[str, float]:
        return {"gradamp_layers": float(len(self.chosen))}


@hookimpl
def register_callbacks(register: Register) -> None:
    register("gradamp", GradAmp)
