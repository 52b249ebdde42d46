"""``ablate recipes``: list the bundled recipes, print one, or write an editable copy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from ablate import __version__
from ablate.bundled import bundled_recipe, bundled_recipes, description, folder
from ablate.registry import AblateError

app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def recipes(ctx: typer.Context) -> None:
    """List the bundled recipes; `ablate run NAME` runs one, `show` prints it, `copy` writes an editable copy."""
    if ctx.invoked_subcommand is not None:
        return
    found = bundled_recipes()
    if not found:
        raise AblateError("no bundled recipes found: this installation of ablate-cnn lacks ablate/recipes/; reinstall it")
    width = max(map(len, found))
    for name, path in found.items():
        typer.echo(f"{name:<{width}}  {description(path)}")
    typer.echo(f"bundled with ablate {__version__} in {folder()}; run one: ablate run NAME; edit a copy: ablate recipes copy NAME")


@app.command()
def show(name: str = typer.Argument(..., help="A bundled recipe's name, e.g. quickstart.")) -> None:
    """Print a bundled recipe."""
    typer.echo(bundled_recipe(name).read_text(encoding="utf-8"), nl=False)


@app.command()
def copy(
    name: str = typer.Argument(..., help="A bundled recipe's name, e.g. quickstart."),
    dest: Optional[Path] = typer.Argument(None, help="File or existing folder to write (default: ./NAME.toml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite DEST if it exists."),
) -> None:
    """Write an editable copy of a bundled recipe."""
    source = bundled_recipe(name)
    target = dest / source.name if dest is not None and dest.is_dir() else dest or Path(source.name)
    if target.exists() and not force:
        raise AblateError(f"{target} exists; pass --force to overwrite it")
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise AblateError(f"cannot write {target}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {target} (ablate run {target})")
