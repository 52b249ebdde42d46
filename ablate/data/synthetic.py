"""A deterministic, procedurally generated stand-in for CIFAR that runs offline.

Each class has a smooth random colour pattern (a 4x4x3 field upsampled to the image
size). An image is its class pattern, randomly shifted and rescaled in contrast,
plus a smooth distractor pattern and pixel noise, stored as uint8. A healthy small
CNN learns it well above chance within a CPU-minute; a network with vanishing
gradients stays at chance, as on CIFAR-100.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablate.data import DataSpec, Split, Splits

if TYPE_CHECKING:
    import torch


def _smooth(n: int, channels: int, size: int, gen: torch.Generator) -> torch.Tensor:
    import torch
    from torch.nn import functional as F

    coarse = torch.randn(n, channels, 4, 4, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def _images(prototypes: torch.Tensor, n: int, seed: int, noise: float, distractor: float,
            max_shift: int) -> Split:
    import torch

    gen = torch.Generator().manual_seed(seed)
    classes, channels, size, _ = prototypes.shape
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=gen)]
    contrast = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    x = prototypes[y] * contrast + distractor * _smooth(n, channels, size, gen)
    x = x + noise * torch.randn(x.shape, generator=gen)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    for dy, dx in torch.unique(shifts, dim=0).tolist():
        rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
        x[rows] = torch.roll(x[rows], shifts=(dy, dx), dims=(2, 3))
    pixels = (128 + 48 * x).round().clamp(0, 255).to(torch.uint8)
    return Split(pixels, y.long())


def synthetic(*, data_dir: str = "", download: bool = False, num_classes: int = 100, train_size: int = 5000,
              val_size: int = 1000, test_size: int = 1000, image_size: int = 32, channels: int = 3,
              seed: int = 0, noise: float = 0.5, distractor: float = 0.6, max_shift: int = 2) -> Splits:
    """Procedural CIFAR-shaped images with class-specific smooth colour patterns (offline)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    prototypes = _smooth(num_classes, channels, image_size, gen)
    prototypes = prototypes / prototypes.flatten(1).std(1).view(-1, 1, 1, 1)
    sizes = (train_size, val_size, test_size)
    train, val, test = (_images(prototypes, n, seed * 1000 + k, noise, distractor, max_shift) for k, n in enumerate(sizes))
    return Splits("synthetic", train, val, test, num_classes)


def _spec(*, num_classes: int = 100, image_size: int = 32, channels: int = 3, **_: Any) -> DataSpec:
    return DataSpec(num_classes, (channels, image_size, image_size))


synthetic.spec = _spec  # type: ignore[attr-defined]
