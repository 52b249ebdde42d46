"""The training step and evaluation, shared by the trainer and ``ablate bench``.

Neither reads a value back to the host: losses and correct counts stay on the device.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from ablate.train.setup import Precision


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               precision: Precision, after_backward: Callable[[], object] | None = None,
               mark_step: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; returns (summed loss, correct count) as device tensors.

    ``mark_step``: tell a compiled model's CUDA graphs that a new step begins (``setup.uses_cudagraphs``).
    """
    if mark_step:
        torch.compiler.cudagraph_mark_step_begin()
    with precision.autocast(x.device):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    if precision.scaler is not None:
        precision.scaler.scale(loss).backward()
        precision.scaler.unscale_(optimizer)
    else:
        loss.backward()
    if after_backward is not None:
        after_backward()
    if precision.scaler is not None:
        precision.scaler.step(optimizer)
        precision.scaler.update()
    else:
        optimizer.step()
    loss = loss.detach()
    return loss * len(y), (logits.detach().argmax(1) == y).sum()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             precision: Precision) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) over ``batches``; one host sync."""
    was_training = model.training
    model.eval()
    total = correct = count = None
    for x, y in batches:
        with precision.autocast(x.device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        hits = (logits.argmax(1) == y).sum()
        total = loss if total is None else total + loss
        correct = hits if correct is None else correct + hits
        count = len(y) if count is None else count + len(y)
    model.train(was_training)
    if total is None or correct is None or count is None:
        return float("nan"), float("nan")
    return total.item() / count, correct.item() / count
