"""The built-in CLI commands, added through the same ``register_commands`` hook as a plugin's."""

from __future__ import annotations

from typing import Any

from ablate.hookspecs import hookimpl


@hookimpl
def register_commands(app: Any) -> None:
    from ablate.cli import bench, inspect, recipes, report, run, sweep

    app.command("run")(run.run)
    app.command("sweep")(sweep.sweep)
    app.command("report")(report.report)
    app.command("bench")(bench.bench)
    app.command("describe")(inspect.describe)
    app.command("list")(inspect.list_components)
    app.command("plugins")(inspect.plugins)
    app.add_typer(recipes.app, name="recipes")
