"""Fixtures and checks for testing ablate plugins (a pytest plugin, loaded automatically).

``fresh_plugins`` gives each test its own plugin set holding only the built-ins;
``register_plugin(obj, name=...)`` adds a plugin object to it, exactly as an entry
point would, and returns its ``PluginInfo``. ``installed_plugins`` loads the built-ins
and every installed entry point, strictly (a broken plugin fails the test). Everything
is restored afterwards.

The ``check_*`` functions test a factory against its hook's contract on tiny inputs
(batch 2, 32x32 images, width 8), and ``train_state``/``drive_callback`` run a
callback through the trainer's events without a dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

import pytest

TINY_RECIPE = """
name = "tiny"
[model]
arch = "vgg08"
width = 8
[data]
dataset = "synthetic"
num_classes = 10
train_size = 100
val_size = 50
test_size = 50
[train]
epochs = 3
batch_size = 50
device = "cpu"
"""
"""A recipe that trains in seconds on the CPU (VGG08 of width 8 on 100 synthetic images, 3 epochs): append
tables (``[sweep]``, ``[[callbacks]]``, ...) to it for a plugin's end-to-end tests."""

if TYPE_CHECKING:
    from torch import nn

    from ablate.config import Config
    from ablate.train.callbacks import TrainState


@pytest.fixture
def fresh_plugins():
    """A plugin set with only the built-in plugin, installed as the process-wide one."""
    from ablate.plugins import load_plugins, set_plugins

    plugins = load_plugins(disabled=[], strict=False, entry_points=[])
    old = set_plugins(plugins)
    try:
        yield plugins
    finally:
        set_plugins(old)


@pytest.fixture
def register_plugin(fresh_plugins) -> Callable[..., Any]:
    """``register_plugin(obj, name="my-plugin", version="0.1")`` adds a plugin object."""
    from ablate.plugins import PluginInfo

    def register(plugin: object, name: str = "test-plugin", version: str = "0.0", distribution: str | None = None):
        info = PluginInfo(name, distribution or name, version)
        fresh_plugins.add(plugin, info)
        return fresh_plugins.info[name]

    return register


@pytest.fixture
def installed_plugins():
    """The built-ins and every installed entry point (strict, none disabled), process-wide."""
    from ablate.plugins import load_plugins, set_plugins

    plugins = load_plugins(disabled=[], strict=True)
    old = set_plugins(plugins)
    try:
        yield plugins
    finally:
        set_plugins(old)


def check_norm(factory: Callable[[int], "nn.Module"], channels: int = 8) -> "nn.Module":
    """A norm keeps the shape of an ``(N, C, H, W)`` batch and passes gradients; returns the module."""
    import torch

    module = factory(channels)
    x = torch.randn(2, channels, 8, 8, requires_grad=True)
    out = module(x)
    assert out.shape == x.shape, f"norm changed the shape {tuple(x.shape)} -> {tuple(out.shape)}"
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    return module


def check_shortcut(factory: Callable[..., Any], channels: int = 8,
                   norm: Callable[[int], "nn.Module"] | None = None) -> dict[str, Any]:
    """A shortcut maps a block's input to its output's shape (or is None), for a processing
    block (stride 1, equal channels) and a downsampling block (stride 2, channels doubled).

    Returns ``{"processing": module_or_None, "downsampling": module_or_None}``.
    """
    import torch
    from torch import nn

    norm = norm or nn.BatchNorm2d
    out: dict[str, Any] = {}
    for kind, cout, stride in (("processing", channels, 1), ("downsampling", 2 * channels, 2)):
        module = factory(channels, cout, stride, norm)
        out[kind] = module
        if module is None:
            continue
        assert isinstance(module, nn.Module), f"{kind}: expected nn.Module or None, got {type(module).__name__}"
        x = torch.randn(2, channels, 8, 8)
        residual = torch.randn(2, cout, 8 // stride, 8 // stride)
        skip = module(x)
        merge = getattr(module, "merge", None)
        merged = merge(skip, residual) if merge is not None else skip + residual
        assert merged.shape == residual.shape, f"{kind}: merged shape {tuple(merged.shape)} != {tuple(residual.shape)}"
    return out


def check_architecture(arch: str, *, norm: str = "bn", shortcut: str = "none", num_classes: int = 5,
                       **options: Any) -> "nn.Module":
    """Build a registered architecture, run a (2, 3, 32, 32) batch forward and backward, and
    check every parameter got a finite gradient; returns the model."""
    import torch

    from ablate.models import build_model

    model = build_model(arch, norm=norm, shortcut=shortcut, num_classes=num_classes, in_channels=3, **options)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, num_classes), f"output shape {tuple(out.shape)} != (2, {num_classes})"
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"no finite gradient for {name}"
    return model


def train_state(model: "nn.Module", *, epoch: int = 0, config: dict[str, Any] | None = None,
                run_dir: str | Path = ".") -> "TrainState":
    """A ``TrainState`` for calling callback methods directly (SGD, CPU)."""
    import torch

    from ablate.train.callbacks import TrainState

    return TrainState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                      config=cast("Config", config or {"train": {"seed": 0}}), run_dir=Path(run_dir),
                      device=torch.device("cpu"), epoch=epoch)


def drive_callback(callback: Any, state: "TrainState", batches: list[tuple[Any, Any]], epochs: int = 1,
                   loss_fn: Callable[..., Any] | None = None) -> list[dict[str, float]]:
    """Run ``epochs`` epochs over ``batches`` calling the callback's events in the trainer's
    order; returns the extra metrics each ``on_epoch_end`` gave."""
    from torch.nn import functional as F

    from ablate.train.callbacks import Callbacks

    events, loss_fn, rows = Callbacks([callback]), loss_fn or F.cross_entropy, []
    events("on_run_start", state)
    for epoch in range(state.epoch + 1, state.epoch + epochs + 1):
        state.epoch = epoch
        events("on_epoch_start", state)
        for x, y in batches:
            state.optimizer.zero_grad(set_to_none=True)
            state.loss = loss_fn(state.model(x), y)
            state.loss.backward()
            events("on_after_backward", state)
            state.optimizer.step()
            state.step += 1
            events("on_step_end", state)
        rows.append(events("on_epoch_end", state))
    events("on_run_end", state)
    return rows
