"""Recipes that declare ``required_plugins`` fail clearly when a plugin is missing."""

import pytest

from ablate.plugins import check_required
from ablate.registry import AblateError


def test_installed_builtin_satisfies_a_requirement():
    check_required(["ablate>=0.1", "ablate-cnn"], "r.toml")


@pytest.mark.parametrize("requirement,message", [
    ("ablate-nope>=0.1", "r.toml: requires plugin 'ablate-nope>=0.1', which is not installed or is disabled (pip install ablate-nope)"),
    ("ablate>=99", "r.toml: requires plugin 'ablate>=99', but version 0.1.0 is installed"),
    ("not a requirement!", "r.toml: required_plugins entry 'not a requirement!' is not a requirement"),
])
def test_missing_or_old_plugins_are_one_line_errors(requirement, message):
    with pytest.raises(AblateError) as exc:
        check_required([requirement], "r.toml")
    assert str(exc.value).startswith(message)


def test_uninstalled_plugin_stops_the_run_before_it_starts(cli, tmp_path):
    recipe = tmp_path / "needs.toml"
    recipe.write_text('required_plugins = ["ablate-extra-norms>=0.1"]\n[model]\narch = "vgg08"\n[data]\ndataset = "synthetic"\n')
    out = tmp_path / "run"
    result = cli("run", str(recipe), "--out", str(out), env={"ABLATE_DISABLE_PLUGINS": "extra-norms"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {recipe}: requires plugin 'ablate-extra-norms>=0.1', which is not installed or is disabled "
        f"(pip install ablate-extra-norms); "
        f"installed: " + result.stderr.split("installed: ", 1)[1].strip()]
    assert not out.exists()
