"""The recipes that ship with ablate, found by name: ``ablate run quickstart``.

The top-level ``recipes/`` folder of the checkout is the one copy in git; the wheel
carries it as ``ablate/recipes/`` (package data, see setup.py). An installed package
reads its own copy; a checkout or an editable install reads ``recipes/`` next to the
package. A recipe argument that is an existing file is always that file.
"""

from __future__ import annotations

from pathlib import Path

from ablate import __version__
from ablate.registry import RecipeError

PACKAGED = Path(__file__).parent / "recipes"
CHECKOUT = Path(__file__).parent.parent / "recipes"


def folder() -> Path | None:
    """The folder of the bundled recipes: the installed package's, else the checkout's."""
    return next((f for f in (PACKAGED, CHECKOUT) if f.is_dir()), None)


def bundled_recipes() -> dict[str, Path]:
    """Each bundled recipe's name (its file name without .toml) and file, by name."""
    where = folder()
    return {p.stem: p for p in sorted(where.glob("*.toml"))} if where else {}


def description(path: Path) -> str:
    """The recipe's first line if it is a comment, without the ``#``; else an empty string."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[0].lstrip("#").strip() if lines and lines[0].startswith("#") else ""


def bundled_recipe(name: str) -> Path:
    """The file of the bundled recipe ``name``."""
    recipes = bundled_recipes()
    if name not in recipes:
        raise _unknown(name, "bundled recipe")
    return recipes[name]


def find_recipe(name_or_path: str | Path) -> Path:
    """The recipe file ``name_or_path`` names: an existing file, else the bundled recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    recipes = bundled_recipes()
    if str(name_or_path) not in recipes:
        raise _unknown(str(name_or_path), "recipe file or bundled recipe")
    return recipes[str(name_or_path)]


def recipe_source(name_or_path: str | Path) -> dict[str, str] | None:
    """``{"bundled": NAME, "ablate": VERSION}`` when ``name_or_path`` resolves to a bundled recipe, else None."""
    if Path(name_or_path).is_file() or str(name_or_path) not in bundled_recipes():
        return None
    return {"bundled": str(name_or_path), "ablate": __version__}


def _unknown(name: str, what: str) -> RecipeError:
    names = ", ".join(bundled_recipes()) or "none found"
    return RecipeError(f"{name}: no such {what}; bundled recipes: {names} (ablate recipes lists them)")
