"""Two scalars of a network at initialisation: its input-output Jacobian's spectral norm, and the
effective rank of its penultimate features.

``jacobian_norm``: the largest singular value of d logits / d images over a batch (training
mode, so BatchNorm's batch statistics couple the images as in a training step), by power
iteration on JᵀJ: each step one Jacobian-vector product (forward-mode AD) and one vector-Jacobian
product (reverse mode, on a graph kept from one forward pass). A net whose signal dies has a
Jacobian of ~0 (plain VGG38: ~1e-18); one that amplifies noise a large one.

``effective_rank`` (Roy & Vetterli 2007): exp of the entropy of the singular values of the
features matrix (N x C, not centred) normalised to sum to 1: 1 when every image maps to the same
direction, min(N, C) when the singular values are all equal.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from ablate.diagnose.signal import frozen_norms

POWER_STEPS = 4
JACOBIAN_IMAGES = 16
"""Images of the batch the Jacobian is estimated on: each power step costs a few forward passes."""


def jacobian_norm(model: nn.Module, x: torch.Tensor, steps: int = POWER_STEPS, seed: int = 0,
                  images: int | None = JACOBIAN_IMAGES) -> float:
    """Largest singular value of the Jacobian of ``model``'s outputs with respect to the first ``images``
    images of the batch ``x`` (None: all), by ``steps`` power iterations from a seeded random direction;
    the model is left as it was."""
    x = x[:images].detach().float()
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator(device=x.device).manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    v = v / v.norm()
    sigma = 0.0
    try:
        for p in params:
            p.requires_grad_(False)
        with frozen_norms(model):
            xr = x.clone().requires_grad_(True)
            out = model(xr).float()
            for _ in range(steps):
                with fwAD.dual_level():
                    jv = fwAD.unpack_dual(model(fwAD.make_dual(x, v))).tangent.float()
                sigma = float(jv.norm())
                if not math.isfinite(sigma) or sigma == 0.0:
                    break
                (w,) = torch.autograd.grad(out, xr, jv, retain_graph=True)
                norm = float(w.norm())
                if not math.isfinite(norm) or norm == 0.0:
                    break
                v = w / norm
    finally:
        for p in params:
            p.requires_grad_(True)
    return sigma


def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of an (N, C) matrix; 0 for an all-zero one."""
    s = torch.linalg.svdvals(features.detach().double().flatten(1))
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return 0.0 if total == 0 else math.nan
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
