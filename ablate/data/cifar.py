"""CIFAR-10 and CIFAR-100 through torchvision's dataset classes, as uint8 tensors."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ablate.data import DataSpec, Split, Splits, stratified_split, take_stratified
from ablate.registry import AblateError

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _read(cls: type, name: str, root: Path, train: bool, download: bool) -> Split:
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise AblateError(
            f"{name}: no valid copy in {root} ({exc}); put the folder {FOLDERS[name]}/ or the archive "
            f"{ARCHIVES[name]} there (--data-dir DIR), or allow downloading with --download"
        ) from None
    except OSError as exc:  # download failed: offline, proxy, disk
        raise AblateError(
            f"{name}: download to {root} failed ({exc}); put {ARCHIVES[name]} or its extracted folder "
            f"{FOLDERS[name]}/ in {root} and run again with --data-dir {root}"
        ) from None
    import torch

    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.tensor(ds.targets, dtype=torch.long))


def load_cifar(name: str, *, data_dir: str | Path = "data", download: bool = False, val_size: int = 2500,
               split_seed: int = 0, train_size: int | None = None, test_size: int | None = None) -> Splits:
    """The official training set split (stratified) into train and validation, and the test set."""
    from torchvision import (
        datasets,  # imported here: it takes a second, and only CIFAR needs it
    )

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = Path(data_dir).expanduser()
    full = _read(cls, name, root, train=True, download=download)
    test = _read(cls, name, root, train=False, download=False)
    train_idx, val_idx = stratified_split(full.y, val_size, split_seed)
    train = take_stratified(full.subset(train_idx), train_size, split_seed)
    classes = 10 if name == "cifar10" else 100
    return Splits(name, train, full.subset(val_idx), take_stratified(test, test_size, split_seed), classes)


def _cifar(name: str, classes: int) -> Any:
    factory: Any = partial(load_cifar, name)
    factory.spec = lambda **options: DataSpec(classes, (3, 32, 32))
    return factory


cifar10 = _cifar("cifar10", 10)
cifar100 = _cifar("cifar100", 100)
