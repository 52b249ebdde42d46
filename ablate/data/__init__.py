"""Datasets as uint8 tensors: the whole split lives on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Images as uint8 ``(N, C, H, W)`` and labels as int64 ``(N,)``."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.x[index], self.y[index])


@dataclass
class Splits:
    """Train, validation and test splits of one dataset."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    def to(self, device: torch.device | str) -> "Splits":
        return Splits(self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_split(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` with ``val_size`` items spread evenly over classes.

    Each class gives ``val_size // classes`` items (the remainder goes to the largest
    classes first); the draw is fixed by ``seed``.
    """
    classes = torch.unique(labels)
    gen = torch.Generator().manual_seed(seed)
    per_class, extra = divmod(val_size, len(classes))
    val_parts = []
    for i, c in enumerate(classes.tolist()):
        members = torch.nonzero(labels == c).flatten()
        take = per_class + (1 if i < extra else 0)
        if take > len(members):
            raise ValueError(f"class {c} has {len(members)} items, fewer than the {take} asked for validation")
        val_parts.append(members[torch.randperm(len(members), generator=gen)[:take]])
    val = torch.cat(val_parts).sort().values if val_parts else torch.empty(0, dtype=torch.long)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val


def take_stratified(split: Split, size: int | None, seed: int) -> Split:
    """A class-balanced subset of ``size`` items (all of them when ``size`` is None)."""
    if size is None or size >= len(split):
        return split
    _, keep = stratified_split(split.y, size, seed)
    return split.subset(keep)
