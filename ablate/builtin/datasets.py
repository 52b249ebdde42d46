"""Built-in datasets: ``factory(*, data_dir, download, **options) -> ablate.data.Splits``."""

from __future__ import annotations

from ablate.hookspecs import Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    from ablate.data.cifar import cifar10, cifar100
    from ablate.data.synthetic import synthetic

    register("cifar100", cifar100, help="CIFAR-100 via torchvision: 47,500 train / 2,500 val (stratified) / 10,000 test")
    register("cifar10", cifar10, help="CIFAR-10 via torchvision: 47,500 train / 2,500 val (stratified) / 10,000 test")
    register("synthetic", synthetic)
