"""Checkpoints in safetensors, written atomically; never unpickles anything.

Tensors (model weights, optimiser state, RNG states) go into the safetensors body;
everything else (epoch, optimiser param groups, scheduler state) into its JSON
metadata under the key ``state``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ablate.files import atomic_write

UNREADABLE = (SafetensorError, OSError, ValueError, KeyError, TypeError, UnicodeDecodeError)
"""What reading a damaged or foreign checkpoint raises (bad header, no or bad ``state`` metadata)."""


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    # A captured step (ablate.train.graph) makes its groups capturable with a tensor lr: how this process steps,
    # not state; saved as a number and not capturable, a resumed run decides again.
    groups = [{**{k: v.item() if isinstance(v, torch.Tensor) else v for k, v in g.items()},
               **({"capturable": False} if "capturable" in g else {})} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> None:
    """Model, optimiser and RNG state plus ``state`` (JSON-able: epoch, scheduler, ...)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {"state": json.dumps({**state, "optimizer": optim_meta})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    device: torch.device) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; returns its ``state``."""
    tensors = load_file(str(path), device="cpu")
    with safe_open(str(path), framework="pt") as fh:
        state = json.loads(fh.metadata()["state"])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        optimizer.load_state_dict(_optimizer_state(tensors, state.pop("optimizer"), device))
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return state


def read_state(path: Path) -> dict[str, Any]:
    """The JSON ``state`` of a checkpoint (epoch, device type, precision, ...), without loading its tensors."""
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["state"])


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value.to(device)
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def weights_epoch(path: Path, model: nn.Module) -> int | None:
    """The epoch whose weights ``save_weights`` wrote to ``path`` (None if unrecorded), without loading them;
    raises ``ValueError`` unless they are ``model``'s tensors, by name and shape."""
    with safe_open(str(path), framework="pt") as fh:
        shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
        epoch = (fh.metadata() or {}).get("epoch")
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if shapes != expected:
        raise ValueError("its tensors are not this model's")
    return int(epoch) if epoch is not None else None


def load_weights(path: Path, model: nn.Module) -> None:
    model.load_state_dict(load_file(str(path), device="cpu"))
