"""Training callbacks: plain objects with any of the ``on_*`` methods below.

The trainer calls them, in recipe order, at these points of its loop::

    on_run_start(state)       model, optimiser and data ready; before the first epoch
    on_epoch_start(state)     state.epoch is the epoch about to run (1-based)
    on_after_backward(state)  gradients are in .grad, before the optimiser step
    on_step_end(state)        after the optimiser step; state.loss is the step's loss tensor
    on_epoch_end(state)       after validation; state.metrics holds the epoch's row
    on_run_end(state)         after the last epoch (and the test evaluation)

``on_after_backward`` and ``on_step_end`` run every step: keep them on the device
(no ``.item()``, no printing), so that they do not synchronise with the host.
A callback may modify gradients in ``on_after_backward`` (gradient amplification)
and may return extra epoch metrics from ``on_epoch_end`` as a dict of floats, which
land in ``metrics.csv``. With ``train.graph = "step"`` a callback with ``on_after_backward``
makes the run train eagerly (``ablate.train.graph``). Callbacks are registered with ``register_callbacks``:
``factory(**options) -> callback``, options coming from the recipe's
``[[callbacks]]`` table (every key but ``name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablate.config import Config

EVENTS = ("on_run_start", "on_epoch_start", "on_after_backward", "on_step_end", "on_epoch_end", "on_run_end")


@dataclass
class TrainState:
    """What callbacks see. ``step`` counts optimiser steps over the whole run."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: Config
    run_dir: Path
    device: torch.device
    epoch: int = 0
    step: int = 0
    loss: torch.Tensor | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class Callbacks:
    """Dispatches events to a list of callback objects."""

    def __init__(self, callbacks: list[Any]) -> None:
        self.callbacks = list(callbacks)
        self._handlers = {e: [getattr(c, e) for c in self.callbacks if hasattr(c, e)] for e in EVENTS}

    def __call__(self, event: str, state: TrainState) -> dict[str, float]:
        extra: dict[str, float] = {}
        for handler in self._handlers[event]:
            out = handler(state)
            if isinstance(out, dict):
                extra.update(out)
        return extra

    def wants(self, event: str) -> bool:
        return bool(self._handlers[event])


def build_callbacks(specs: list[dict[str, Any]]) -> list[Any]:
    """Instantiate the recipe's ``[[callbacks]]`` tables through the registry."""
    from ablate.plugins import registry

    out = []
    for spec in specs:
        options = {k: v for k, v in spec.items() if k != "name"}
        out.append(registry("callbacks").factory(spec["name"])(**options))
    return out
