"""The hooks a plugin implements: ``register_<kind>(register)`` per component kind, and ``register_commands(app)``.

A plugin is a module (or object) with functions decorated by ``ablate.hookimpl``,
exposed through an entry point in the ``ablate`` group. Each ``register_<kind>`` hook
calls ``register(name, factory, help="...", label="...", replace=False)`` once per
component; ``label`` is how reports show it (default: the name).
The factory contracts are documented on each hook and in docs/plugins.md.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("ablate")
hookimpl = pluggy.HookimplMarker("ablate")

Register = Callable[..., None]


@hookspec
def register_norms(register: Register) -> None:
    """Normalisation layers: ``factory(num_channels: int) -> nn.Module``."""


@hookspec
def register_shortcuts(register: Register) -> None:
    """Shortcut strategies: ``factory(in_channels, out_channels, stride, norm) -> nn.Module | None``.

    ``norm`` is the chosen norm factory. Return ``None`` for "no shortcut around
    this block". A block with ``stride == 1`` and equal channels is a processing
    block; any other is a downsampling block.
    """


@hookspec
def register_architectures(register: Register) -> None:
    """Architectures: ``factory(*, norm, shortcut, num_classes, in_channels, **options) -> nn.Module``.

    ``norm`` and ``shortcut`` are the chosen norm and shortcut factories; options come from
    the recipe's ``[model]`` table, and ``entry_norm``, if the factory takes it, is a norm
    factory too (resolved by ``ablate.models.build_model``).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Datasets: ``factory(*, data_dir, download, **options) -> ablate.data.Splits``."""


@hookspec
def register_callbacks(register: Register) -> None:
    """Training callbacks: ``factory(**options) -> object`` with any of the trainer's
    ``on_*`` methods (see ``ablate.train.callbacks``)."""


@hookspec
def register_commands(app: Any) -> None:
    """Add commands to the ``ablate`` CLI through ``app``, a ``typer.Typer`` (not a ``register`` callback).

    It runs when the plugin loads, against a scratch app; the commands join the CLI only
    if all of the plugin's hooks succeed.
    """
