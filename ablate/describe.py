"""Per-layer summary of a model: name, type, output shape and parameter count."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ablate.models import count_params


def describe_model(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> dict[str, Any]:
    """Run one image through ``model`` and record every leaf module's output."""
    layers: list[dict[str, Any]] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        shape = list(output.shape[1:]) if isinstance(output, torch.Tensor) else None
        params = sum(p.numel() for p in module.parameters(recurse=False))
        layers.append({"name": names[module], "type": type(module).__name__, "output_shape": shape, "params": params})

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    counted = sum(layer["params"] for layer in layers)
    total = count_params(model)
    if counted != total:  # parameters owned by non-leaf modules (e.g. gates)
        layers.append({"name": "(other)", "type": "-", "output_shape": None, "params": total - counted})
    return {
        "params": total,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "weight_layers": sum(1 for m in leaves if isinstance(m, (nn.Conv2d, nn.Linear))),
        "layers": layers,
    }
