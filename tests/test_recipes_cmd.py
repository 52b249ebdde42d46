"""Bundled recipes: found by name from any directory, listed, shown and copied; a path always wins."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate import __version__
from ablate.build import arm_from_target
from ablate.bundled import bundled_recipes, description, find_recipe
from ablate.cli import build_app
from ablate.recipe import RecipeError, load_recipe
from ablate.registry import AblateError
from ablate.sweep.grid import load_sweep

REPO = Path(__file__).resolve().parents[1]
NAMES = ["quickstart", "resnet-shortcuts", "table1", "vgg08", "vgg38"]
TINY = ["--epochs", "1", "--set", "data.train_size=200", "--set", "data.val_size=100", "--set", "data.test_size=100",
        "--set", "model.width=8", "--set", "train.threads=1", "-q"]


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_every_recipe_in_the_checkout_is_bundled_with_a_description():
    found = bundled_recipes()
    assert sorted(found) == sorted(p.stem for p in (REPO / "recipes").glob("*.toml"))
    assert set(NAMES) <= set(found)
    assert description(found["quickstart"]) == "Quickstart: the study's point in a few CPU-minutes, offline."
    assert all(description(path) for path in found.values())


def test_recipes_lists_names_and_descriptions():
    result = invoke("recipes")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[:len(bundled_recipes())]] == sorted(bundled_recipes())
    assert lines[0].split(maxsplit=1) == ["quickstart", "Quickstart: the study's point in a few CPU-minutes, offline."]
    assert f"bundled with ablate {__version__}" in lines[-1]


def test_recipes_show_prints_the_file():
    result = invoke("recipes", "show", "vgg38")
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / "recipes" / "vgg38.toml").read_text()


def test_recipes_copy_refuses_to_overwrite_without_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = (REPO / "recipes" / "quickstart.toml").read_text()
    assert invoke("recipes", "copy", "quickstart").exit_code == 0
    assert (tmp_path / "quickstart.toml").read_text() == original
    (tmp_path / "quickstart.toml").write_text("# my edits\n")
    refused = invoke("recipes", "copy", "quickstart")
    assert isinstance(refused.exception, AblateError)
    assert str(refused.exception) == "quickstart.toml exists; pass --force to overwrite it"
    assert (tmp_path / "quickstart.toml").read_text() == "# my edits\n"
    assert invoke("recipes", "copy", "quickstart", "--force").exit_code == 0
    assert (tmp_path / "quickstart.toml").read_text() == original
    (tmp_path / "mine").mkdir()
    assert invoke("recipes", "copy", "table1", "mine").exit_code == 0
    assert invoke("recipes", "copy", "vgg08", "mine/v.toml").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["table1.toml", "v.toml"]


def test_unknown_names_are_one_line_errors_listing_the_bundled_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as exc:
        load_recipe("quickstrat")
    assert str(exc.value) == ("quickstrat: no such recipe file or bundled recipe; bundled recipes: "
                              f"{', '.join(bundled_recipes())} (ablate recipes lists them)")
    shown = invoke("recipes", "show", "quickstrat")
    assert isinstance(shown.exception, RecipeError)
    assert str(shown.exception).startswith("quickstrat: no such bundled recipe; bundled recipes: quickstart, ")
    (tmp_path / "quickstart").mkdir()  # a folder is not a recipe file: the name still means the bundled recipe
    assert find_recipe("quickstart") == bundled_recipes()["quickstart"]


def test_a_path_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_recipe("vgg08") == bundled_recipes()["vgg08"]
    Path("vgg08").write_text('name = "mine"\n[model]\narch = "vgg08"\nnorm = "bn"\n')
    assert find_recipe("vgg08") == Path("vgg08")
    (arm,) = load_recipe("vgg08")
    assert arm.config["name"] == "mine" and arm.config["model"]["norm"] == "bn" and "recipe_source" not in arm.config


def test_the_bundled_source_is_recorded_but_is_not_part_of_the_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name, by_path = load_recipe("quickstart"), load_recipe(REPO / "recipes" / "quickstart.toml")
    assert [a.dirname() for a in by_name] == [a.dirname() for a in by_path]
    assert all(a.config["recipe_source"] == {"bundled": "quickstart", "ablate": __version__} for a in by_name)
    assert all("recipe_source" not in a.config for a in by_path)
    sweep_dir, runs = load_sweep("table1", {})
    assert sweep_dir == Path("runs/table1") and runs[0].config["recipe_source"]["bundled"] == "table1"
    assert [r.path for r in runs] == [r.path for r in load_sweep(REPO / "recipes" / "table1.toml", {})[1]]
    Path("bad.toml").write_text('recipe_source = 3\n')
    with pytest.raises(RecipeError, match="recipe_source = 3 must be a table of strings"):
        load_recipe("bad.toml")


def test_describe_prefers_an_architecture_then_a_bundled_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arch = arm_from_target("vgg38", {})  # vgg38 is both: the architecture wins
    assert arch.config["model"]["arch"] == "vgg38" and "recipe_source" not in arch.config
    recipe = arm_from_target("quickstart", {"model.norm": "bn"})  # not an architecture: the bundled recipe
    assert recipe.config["recipe_source"]["bundled"] == "quickstart"
    assert recipe.config["model"] == {**recipe.config["model"], "arch": "vgg08", "norm": "bn"}


@pytest.mark.slow
def test_run_quickstart_by_name_from_an_empty_directory(cli, tmp_path):
    result = cli("run", "quickstart", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "runs" / "quickstart").glob("*/summary.json"))
    assert len(runs) == 5 and (tmp_path / "runs" / "quickstart" / "report.md").exists()
    summaries = [json.loads(p.read_text()) for p in runs]
    assert all(s["status"] == "complete" and s["recipe_source"] == {"bundled": "quickstart", "ablate": __version__}
               for s in summaries)
    unknown = cli("run", "quickstrat", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert unknown.stderr.startswith("error: quickstrat: no such recipe file or bundled recipe; bundled recipes: quickstart, ")
