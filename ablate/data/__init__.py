"""Datasets as uint8 tensors: the whole split lives on the training device.

torch is imported where a dataset is built, not when this package is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


@dataclass(frozen=True)
class DataSpec:
    """What a dataset yields, known without loading it: classes and the (C, H, W) of one image."""

    num_classes: int
    input_shape: tuple[int, int, int]


def data_spec(factory: Callable[..., Any], options: dict[str, Any]) -> DataSpec:
    """A dataset factory's ``spec(**options)`` if it has one; else ``num_classes`` from the options or the
    factory's default (100 if none) and CIFAR's 3x32x32 images."""
    spec = getattr(factory, "spec", None)
    if spec is not None:
        return spec(**options)
    classes = options.get("num_classes")
    if classes is None:
        import inspect

        param = inspect.signature(factory).parameters.get("num_classes")
        classes = 100 if param is None or param.default is inspect.Parameter.empty else param.default
    return DataSpec(int(classes), (3, 32, 32))


def stratified_split(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` with ``val_size`` items spread evenly over classes.

    Each class gives ``val_size // classes`` items (the remainder one more each, lowest
    labels first); the draw is fixed by ``seed``.
    """
    import torch

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
