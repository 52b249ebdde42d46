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
    """Zero-pad by ``pad`` and crop back to size at a random offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


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
            xb = (xb.float() * self.scale - self.shift).contiguous(memory_format=self.memory_format)
            yield xb, yb
