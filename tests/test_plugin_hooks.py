"""Every hook, exercised through a plugin registered with ``ablate.testing``'s fixtures."""

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from ablate.data import Split, Splits
from ablate.describe import describe_model
from ablate.hookspecs import hookimpl
from ablate.models import build_model, count_params
from ablate.testing import (
    check_architecture,
    check_norm,
    check_shortcut,
    drive_callback,
    train_state,
)
from ablate.train.callbacks import build_callbacks


class Halve(nn.Module):
    """A shortcut that averages the two paths instead of summing them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def merge(self, skip: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return (skip + residual) / 2


def tiny_net(*, norm: str, shortcut: str, num_classes: int, in_channels: int, width: int = 4) -> nn.Module:
    """One conv, global pooling and a linear classifier."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))


def tiny_data(*, data_dir: str, download: bool, num_classes: int = 3, size: int = 6) -> Splits:
    """Random 8x8 images; ``size`` per split."""
    gen = torch.Generator().manual_seed(0)

    def split() -> Split:
        return Split(torch.randint(0, 256, (size, 3, 8, 8), dtype=torch.uint8, generator=gen),
                     torch.arange(size) % num_classes)

    return Splits("tiny", split(), split(), split(), num_classes)


class Counter:
    """Counts the steps of each epoch and reports them."""

    def __init__(self, every: int = 1) -> None:
        self.every, self.steps, self.events = every, 0, []

    def on_run_start(self, state) -> None:
        self.events.append("run_start")

    def on_epoch_start(self, state) -> None:
        self.steps = 0

    def on_step_end(self, state) -> None:
        self.steps += 1

    def on_epoch_end(self, state) -> dict[str, float]:
        return {"counted_steps": float(self.steps // self.every)}


class EveryHook:
    @hookimpl
    def register_norms(self, register):
        register("half-gn", lambda c: nn.GroupNorm(max(1, c // 2), c), help="GroupNorm, two channels per group")

    @hookimpl
    def register_shortcuts(self, register):
        register("halve", lambda cin, cout, stride, norm: Halve() if stride == 1 and cin == cout else None)

    @hookimpl
    def register_architectures(self, register):
        register("tiny", tiny_net)

    @hookimpl
    def register_datasets(self, register):
        register("tiny-data", tiny_data)

    @hookimpl
    def register_callbacks(self, register):
        register("counter", Counter)

    @hookimpl
    def register_commands(self, app):
        @app.command("hello")
        def hello(name: str = typer.Option("world", help="Who to greet.")) -> None:
            """Greet someone."""
            typer.echo(f"hello {name}")


@pytest.fixture
def plugins(register_plugin, fresh_plugins):
    info = register_plugin(EveryHook(), name="every-hook", version="1.2")
    assert info.error is None
    return fresh_plugins


def test_components_are_listed_under_the_plugin(plugins):
    assert plugins.info["every-hook"].components == {
        "norms": ["half-gn"], "shortcuts": ["halve"], "architectures": ["tiny"],
        "datasets": ["tiny-data"], "callbacks": ["counter"],
    }
    assert plugins["norms"].get("half-gn").help == "GroupNorm, two channels per group"
    assert plugins["architectures"].get("tiny").help == "One conv, global pooling and a linear classifier."
    assert plugins.versions()["every-hook"] == "1.2"


def test_register_norms_composes_with_vgg(plugins):
    assert isinstance(check_norm(plugins["norms"].factory("half-gn"), 8), nn.GroupNorm)
    model = check_architecture("vgg", norm="half-gn", depth=14, width=8)
    assert count_params(model) == count_params(build_model("vgg", norm="bn", depth=14, width=8, num_classes=5))


def test_register_shortcuts_merge_is_used_by_blocks(plugins):
    modules = check_shortcut(plugins["shortcuts"].factory("halve"))
    assert isinstance(modules["processing"], Halve) and modules["downsampling"] is None
    model = build_model("vgg", shortcut="halve", depth=14, width=4, num_classes=2)
    block, x = model.blocks[0], torch.randn(2, 4, 8, 8)
    residual = block.second(block.pool(block.act1(block.first(x))))
    assert torch.allclose(block(x), block.act2((x + residual) / 2))


def test_register_architectures_builds_and_describes(plugins):
    model = check_architecture("tiny", width=6)
    info = describe_model(model)
    assert info["params"] == count_params(model) == 3 * 6 * 9 + 6 + 6 * 5 + 5
    assert info["weight_layers"] == 2


def test_register_datasets_returns_splits(plugins):
    splits = plugins["datasets"].factory("tiny-data")(data_dir="unused", download=False, size=4)
    assert isinstance(splits, Splits) and splits.sizes == {"train": 4, "val": 4, "test": 4}
    assert splits.num_classes == 3 and splits.train.x.dtype == torch.uint8


def test_register_callbacks_from_a_recipe_table(plugins):
    (counter,) = build_callbacks([{"name": "counter", "every": 2}])
    model = nn.Linear(4, 3)
    batches = [(torch.randn(2, 4), torch.tensor([0, 1]))] * 4
    rows = drive_callback(counter, train_state(model), batches, epochs=2)
    assert rows == [{"counted_steps": 2.0}, {"counted_steps": 2.0}] and counter.events == ["run_start"]


def test_register_commands_adds_a_cli_command(plugins):
    from ablate.cli import build_app

    app = build_app()
    result = CliRunner().invoke(app, ["hello", "--name", "ablate"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello ablate\n"
