"""The ReZero skip module (Bachlechner et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn


class ReZero(nn.Module):
    """Identity skip whose residual branch is scaled by a learnable scalar, initially 0."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def merge(self, skip: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``skip + alpha * residual``."""
        return skip + self.alpha * residual
