"""Diagnose one model at initialisation: forward statistics, gradient flow, Jacobian norm, effective rank, verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ablate.diagnose.jacobian import effective_rank, jacobian_norm
from ablate.diagnose.signal import SignalProfile, forward_with_hooks
from ablate.diagnose.verdict import Trainability, judge_trainability
from ablate.gradflow import gradient_stats_at_init


@dataclass
class Diagnosis:
    profile: SignalProfile
    gradflow: dict[str, Any]
    jacobian_norm: float | None
    effective_rank: float
    verdict: Trainability
    grad_layers: list[str]
    grad_profile: list[float]
    """Mean |g| per weight layer at initialisation (depth order)."""

    def as_dict(self) -> dict[str, Any]:
        def safe(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return {**self.verdict.as_dict(), "grad_ratio": safe(self.gradflow["ratio"]),
                "gradflow_verdict": self.gradflow["verdict"], "jacobian_norm": safe(self.jacobian_norm),
                "effective_rank": safe(self.effective_rank), "signal": self.profile.as_dict()}


def random_batch(batch_size: int, num_classes: int, shape: tuple[int, ...], seed: int,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random images, normalised to zero mean and unit variance, and random labels."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand((batch_size, *shape), generator=gen) - 0.5) * math.sqrt(12)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen)
    return x.to(device), y.to(device)


def diagnose_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, jacobian: bool = True,
                   seed: int = 0, precision: Any = None) -> Diagnosis:
    """Every statistic of ``model`` on the batch ``(x, y)``, and its verdict; the model is left as it was.
    ``jacobian=False`` skips the Jacobian norm (the costliest part), as ``ablate bench`` does."""
    profile, features = forward_with_hooks(model, x, precision)
    stats = gradient_stats_at_init(model, x, y, precision)
    gradflow = stats.summary()
    norm = jacobian_norm(model, x, seed=seed) if jacobian else None
    rank = effective_rank(features)
    return Diagnosis(profile, gradflow, norm, rank, judge_trainability(profile, gradflow, rank, norm), stats.layers,
                     stats.column())


def diagnose_config(config: Any, *, jacobian: bool = True) -> Diagnosis:
    """Diagnose the model a resolved recipe config trains, at initialisation, on the first training batch
    that ``ablate run`` measures gradient flow on (same data, same seed, same model)."""
    from ablate.train.trainer import init_batch, prepare

    prepared = prepare(config)
    x, y = init_batch(config, prepared)
    seed = config["train"]["seed"]
    return diagnose_model(prepared.model, x, y, jacobian=jacobian, seed=seed, precision=prepared.precision)
