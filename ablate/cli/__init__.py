"""The ``ablate`` command line: the core commands, plus those that plugins add.

Nothing here imports torch: ``ablate --help``, ``--version``, ``list`` and ``plugins``
stay fast, and each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from ablate import __version__
from ablate.plugins import PluginWarning, get_plugins
from ablate.registry import AblateError

err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ablate {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    disable_plugins: str = typer.Option(
        "", "--disable-plugins", metavar="A,B", help="Plugins to block before they load (also ABLATE_DISABLE_PLUGINS)."
    ),
) -> None:
    """ablate: what does this component do to my network?"""


def build_app() -> typer.Typer:
    from ablate.cli import bench, diagnose, inspect, recipes, report, run, sweep

    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback()(_root)
    for name, command in (("run", run.run), ("sweep", sweep.sweep), ("report", report.report), ("bench", bench.bench),
                          ("diagnose", diagnose.diagnose),
                          ("describe", inspect.describe), ("list", inspect.list_components),
                          ("plugins", inspect.plugins)):
        app.command(name)(command)
    app.add_typer(recipes.app, name="recipes")
    get_plugins().add_commands(app)
    return app


def _disable_from_argv(argv: list[str]) -> None:
    """Honour ``--disable-plugins`` before any plugin loads."""
    for i, arg in enumerate(argv):
        value = None
        if arg == "--disable-plugins" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--disable-plugins="):
            value = arg.split("=", 1)[1]
        if value is not None:
            current = os.environ.get("ABLATE_DISABLE_PLUGINS", "")
            os.environ["ABLATE_DISABLE_PLUGINS"] = ",".join(filter(None, [current, value]))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, PluginWarning):
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _show_warning
    _disable_from_argv(argv)
    try:
        app = build_app()
        app(args=argv, prog_name="ablate", standalone_mode=True)
    except AblateError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))  # 3: the run diverged (ablate.train.divergence), 2: any other error
