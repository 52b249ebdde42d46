"""Recipes that declare ``required_plugins`` fail clearly when a plugin is missing, and runs record theirs."""

import importlib.metadata
import json
import tomllib

import pytest
from torch import nn

from ablate.hookspecs import hookimpl
from ablate.plugins import load_plugins, set_plugins
from ablate.recipe import load_recipe, resolve
from ablate.registry import AblateError
from ablate.requirements import check_required
from ablate.train.resume import decide
from ablate.train.trainer import train

PROBE = """
from torch import nn
from ablate import hookspecs

@hookspecs.hookimpl
def register_norms(register):
    register("probe_frn", lambda c: nn.GroupNorm(1, c))
"""
TINY = ["--set", "data.dataset=synthetic", "--set", "data.train_size=100", "--set", "data.val_size=50",
        "--set", "data.test_size=50", "--set", "data.num_classes=10", "--set", "model.width=8",
        "--set", "train.threads=1", "--batch-size", "50", "--epochs", "1", "-q"]


class Probe:
    @hookimpl
    def register_norms(self, register):
        register("probe_frn", lambda c: nn.GroupNorm(1, c))


def probe_config(epochs=2):
    raw = {"model": {"arch": "vgg08", "norm": "probe_frn", "width": 8},
           "data": {"dataset": "synthetic", "train_size": 100, "val_size": 50, "test_size": 50, "num_classes": 10},
           "train": {"epochs": epochs, "batch_size": 50, "threads": 1}, "gradflow": {"every": 0}}
    return resolve(raw, "test", {})[0]


def test_installed_builtin_satisfies_a_requirement():
    check_required(["ablate>=0.1", "ablate-cnn", "Ablate_CNN>=0.1"], "r.toml")


@pytest.mark.parametrize("requirement,message", [
    ("ablate-nope>=0.1", "r.toml: needs ablate-nope>=0.1, which is not installed (pip install ablate-nope); "
                         "installed plugins: ablate"),
    ("nope>=0.1", "r.toml: needs nope>=0.1, which is not installed (pip install nope, or ablate-nope if 'nope' is "
                  "a plugin's entry-point name)"),
    ("ablate>=99", "r.toml: needs ablate>=99, but ablate-cnn 0.1.0 is installed (pip install -U 'ablate-cnn>=99')"),
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
        f"error: {recipe}: needs ablate-extra-norms>=0.1: plugin 'extra-norms' of ablate-extra-norms "
        f"{importlib.metadata.version('ablate-extra-norms')} is installed but disabled (ABLATE_DISABLE_PLUGINS or "
        f"--disable-plugins)"]
    assert not out.exists()


def test_an_entry_point_name_is_answered_with_its_distribution(cli, tmp_path):
    recipe = tmp_path / "needs.toml"
    recipe.write_text('required_plugins = ["extra-norms>=0.1"]\n[model]\narch = "vgg08"\n')
    result = cli("describe", str(recipe), env={"ABLATE_DISABLE_PLUGINS": "extra-norms"})
    assert result.returncode == 2
    assert "needs extra-norms>=0.1: plugin 'extra-norms' of ablate-extra-norms " in result.stderr
    assert "is installed but disabled" in result.stderr


def test_a_run_records_and_requires_the_plugins_it_used(register_plugin, tmp_path):
    register_plugin(Probe(), name="probe", version="0.1.0", distribution="ablate-probe")
    arm = probe_config(epochs=1)
    assert arm.config["required_plugins"] == ["ablate-probe>=0.1.0"]
    summary = train(arm.config, tmp_path)
    saved = tomllib.loads((tmp_path / "recipe.toml").read_text())
    assert saved["required_plugins"] == ["ablate-probe>=0.1.0"]
    assert summary["required_plugins"] == ["ablate-probe>=0.1.0"]
    norm = next(c for c in summary["components"] if c["key"] == "model.norm")
    assert norm == {"key": "model.norm", "name": "probe_frn", "plugin": "probe", "distribution": "ablate-probe",
                    "version": "0.1.0"}
    assert json.loads((tmp_path / "summary.json").read_text())["components"] == summary["components"]
    old = set_plugins(load_plugins(disabled=[], entry_points=[]))
    try:
        with pytest.raises(AblateError) as exc:
            load_recipe(tmp_path / "recipe.toml")
    finally:
        set_plugins(old)
    assert str(exc.value).startswith(f"{tmp_path / 'recipe.toml'}: needs ablate-probe>=0.1.0, which is not installed "
                                     f"(pip install ablate-probe)")


def test_recorded_requirements_do_not_change_a_runs_identity(register_plugin, tmp_path):
    register_plugin(Probe(), name="probe", version="0.2.0", distribution="ablate-probe")

    class StopBeforeEpochTwo:
        def on_epoch_start(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt

    arm = probe_config()
    with pytest.raises(KeyboardInterrupt):
        train(arm.config, tmp_path, extra_callbacks=[StopBeforeEpochTwo()])
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('required_plugins = [\n    "ablate-probe>=0.2.0",\n]', "required_plugins = []"))
    assert tomllib.loads(recipe.read_text())["required_plugins"] == []  # as a run saved before ablate recorded them
    assert decide(tmp_path, arm.config) == "resume"
    assert train(arm.config, tmp_path)["epochs_completed"] == 2
    assert tomllib.loads(recipe.read_text())["required_plugins"] == ["ablate-probe>=0.2.0"]
    rerun = load_recipe(recipe)[0]
    assert rerun.dirname() == arm.dirname() and decide(tmp_path, rerun.config) == "complete"


def test_run_directory_names_without_plugins_are_unchanged():
    names = [arm.dirname() for arm in load_recipe("recipes/quickstart.toml")]
    assert names == ["vgg08-none-none-lr1e-3-s0-d6571bca", "vgg38-none-none-lr1e-3-s0-b79f5244",
                     "vgg38-bn-none-lr1e-3-s0-9acec09a", "vgg38-none-identity-lr1e-3-s0-57c153ae",
                     "vgg38-bn-identity-lr1e-3-s0-54f0a01f"]


def test_rerunning_a_saved_recipe_without_its_plugin_names_the_package(distribution, cli, tmp_path):
    site = distribution("ablate-probe", "ablate_probe", PROBE, {"probe": "ablate_probe"})
    out = tmp_path / "run"
    done = cli("run", "vgg38", "--arch", "vgg08", "--norm", "probe_frn", "--out", str(out), *TINY,
               env={"PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    saved = out / "recipe.toml"
    assert tomllib.loads(saved.read_text())["required_plugins"] == ["ablate-probe>=0.1"]
    again = cli("run", str(saved), "--out", str(out), env={"PYTHONPATH": str(site)})
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr
    disabled = cli("run", str(saved), env={"PYTHONPATH": str(site), "ABLATE_DISABLE_PLUGINS": "probe"})
    assert disabled.returncode == 2
    assert disabled.stderr.strip().splitlines() == [
        f"error: {saved}: needs ablate-probe>=0.1: plugin 'probe' of ablate-probe 0.1 is installed but disabled "
        f"(ABLATE_DISABLE_PLUGINS or --disable-plugins)"]
    missing = cli("run", str(saved))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[0].startswith(
        f"error: {saved}: needs ablate-probe>=0.1, which is not installed (pip install ablate-probe); installed plugins: ")


def test_a_timm_model_keeping_its_own_layers_requires_no_plugin():
    from ablate.recipe import resolve
    from ablate.requirements import plugin_requirements, used_components

    config = resolve({"model": {"arch": "timm:resnet18"}, "data": {"dataset": "synthetic"}}, "test", {})[0].config
    assert (config["model"]["norm"], config["model"]["shortcut"]) == ("keep", "keep")
    assert [key for key, _ in used_components(config)] == ["model.arch", "data.dataset"]
    assert plugin_requirements(config) == []
