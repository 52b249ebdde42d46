"""Batched augmentation and batching on the training device (the airbench approach).

Images stay uint8 on the device; each batch is cropped, flipped, converted and
normalised there, with one generator seeded per epoch so that an epoch's batches
depend only on (seed, epoch).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.nn import functional as F

from ablate.data import Split


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).float() / 255
    return flat.mean(1), flat.std(1)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back to size at a random offset per image: one gather from a strided view
    of every window, indexed by image, row offset and column offset (n indices each, not one per pixel)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (n, c, 2 pad + 1, 2 pad + 1, h, w), a view
    return windows[torch.arange(n, device=x.device), :, dy, dx]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class DeviceLoader:
    """Batches of one split, normalised on its device; augmented when ``augment``."""

    def __init__(self, split: Split, batch_size: int, mean: torch.Tensor, std: torch.Tensor,
                 augment: bool = False, shuffle: bool = False, drop_last: bool = False,
                 channels_last: bool = False) -> None:
        self.split, self.batch_size = split, batch_size
        device = split.x.device
        self.scale = (1 / (255 * std)).to(device).view(1, -1, 1, 1)
        self.shift = (mean / std).to(device).view(1, -1, 1, 1)
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        n, b = len(self.split), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def batches(self, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.split.x, self.split.y
        gen = torch.Generator(device=x.device).manual_seed(seed)
        order = torch.randperm(len(y), generator=gen, device=x.device) if self.shuffle else None
        for i in range(len(self)):
            idx = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is not None:
                xb, yb = x[order[idx]], y[order[idx]]
            else:
                xb, yb = x[idx], y[idx]
            if self.augment:
                xb = random_flip(random_crop(xb, 4, gen), gen)
            # layout first, on uint8 (a quarter of the bytes); the element-wise ops keep it
            xb = xb.contiguous(memory_format=self.memory_format).float().mul_(self.scale).sub_(self.shift)
            yield xb, yb
