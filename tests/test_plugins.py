"""The plugin loader: entry points, broken plugins, duplicates, disabling."""

import importlib.metadata
import json
import re
import sys
import warnings

import pytest
from torch import nn

from ablate.hookspecs import hookimpl
from ablate.plugins import PluginLoadError, PluginWarning, load_plugins
from ablate.registry import DuplicateComponentError, UnknownComponentError

NORM_PLUGIN = """
from torch import nn
from ablate import hookspecs

@hookspecs.hookimpl
def register_norms(register):
    register("gn2", lambda c: nn.GroupNorm(2, c), help="GroupNorm with 2 groups")
"""


HALF_BROKEN = """
from torch import nn
from ablate import hookspecs

@hookspecs.hookimpl
def register_norms(register):
    register("probe_frn", lambda c: nn.Identity())

@hookspecs.hookimpl
def register_shortcuts(register):
    raise RuntimeError("no shortcut today")

@hookspecs.hookimpl
def register_commands(app):
    app.command("probe")(lambda: print("probe ran"))
"""

HELLO = """
from ablate import hookspecs

@hookspecs.hookimpl
def register_norms(register):
    register("hello_norm", lambda c: None)

@hookspecs.hookimpl
def register_commands(app):
    @app.command("hello")
    def hello():
        print("hello from a plugin")
"""


def entry_points_under(path):
    return [ep for ep in importlib.metadata.distributions(path=[str(path)]) for ep in ep.entry_points]


def test_unknown_name_lists_choices_and_their_plugins(fresh_plugins):
    with pytest.raises(UnknownComponentError) as exc:
        fresh_plugins["norms"].get("bnn")
    assert str(exc.value) == "unknown norm 'bnn'; available: bn (ablate), none (ablate)"


def test_wildcard_listing(fresh_plugins):
    assert fresh_plugins["architectures"].names("vgg*") == ["vgg", "vgg08", "vgg38"]
    assert fresh_plugins["shortcuts"].names("*o*") == ["none", "proj", "zeropad"]


def test_entry_point_plugin_registers_a_norm(distribution):
    site = distribution("ablate-gn2", "ablate_gn2", NORM_PLUGIN, {"gn2": "ablate_gn2"})
    sys.path.insert(0, str(site))
    try:
        plugins = load_plugins(disabled=[], entry_points=entry_points_under(site))
    finally:
        sys.path.remove(str(site))
    assert plugins["norms"].get("gn2").plugin == "gn2"
    info = plugins.info["gn2"]
    assert (info.distribution, info.version, info.components) == ("ablate-gn2", "0.1", {"norms": ["gn2"]})
    assert isinstance(plugins["norms"].factory("gn2")(4), nn.GroupNorm)


def test_installed_plugin_is_usable_from_the_cli(distribution, cli):
    site = distribution("ablate-gn2", "ablate_gn2", NORM_PLUGIN, {"gn2": "ablate_gn2"})
    result = cli("describe", "vgg38", "--norm", "gn2", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert '"params": 338500' in result.stdout
    listing = cli("list", "norms", env={"PYTHONPATH": str(site)})
    assert "gn2" in listing.stdout and "ablate-gn2" not in listing.stderr


def test_broken_plugin_warns_once_and_the_rest_work(distribution, cli):
    site = distribution("ablate-broken", "ablate_broken", "raise ImportError('no module named foo')",
                        {"broken": "ablate_broken"})
    result = cli("describe", "vgg08", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0
    assert '"params": 59716' in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["warning: plugin 'broken' (distribution ablate-broken 0.1) is skipped: importing entry "
                     "point 'ablate_broken' raised ImportError: no module named foo"]


def test_broken_plugin_is_an_error_in_strict_mode(distribution, cli):
    site = distribution("ablate-broken", "ablate_broken", "raise ImportError('boom')", {"broken": "ablate_broken"})
    sys.path.insert(0, str(site))
    try:
        with pytest.raises(PluginLoadError, match="plugin 'broken'"):
            load_plugins(disabled=[], strict=True, entry_points=entry_points_under(site))
    finally:
        sys.path.remove(str(site))
    result = cli("list", "norms", env={"PYTHONPATH": str(site), "ABLATE_STRICT_PLUGINS": "1"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: plugin 'broken'") and "Traceback" not in result.stderr


def test_raising_hook_skips_that_plugin_only(register_plugin, fresh_plugins):
    class Broken:
        @hookimpl
        def register_norms(self, register):
            raise RuntimeError("bad")

    with pytest.warns(PluginWarning, match="its register_norms hook raised RuntimeError: bad"):
        info = register_plugin(Broken(), name="broken")
    assert info.error and fresh_plugins["norms"].names() == ["bn", "none"]


class HalfBroken:
    """Registers a norm, a callback and a command, but its register_shortcuts hook raises."""

    @hookimpl
    def register_norms(self, register):
        register("probe_frn", lambda c: nn.Identity())

    @hookimpl
    def register_shortcuts(self, register):
        register("probe_skip", lambda cin, cout, stride, norm: None)
        raise RuntimeError("no shortcut today")

    @hookimpl
    def register_callbacks(self, register):
        register("probe_cb", lambda **options: object())

    @hookimpl
    def register_commands(self, app):
        app.command("probe")(lambda: None)


def test_a_plugin_with_one_raising_hook_leaves_nothing_behind(register_plugin, fresh_plugins):
    import typer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = register_plugin(HalfBroken(), name="probe", version="0.1.0", distribution="ablate-probe")
    assert [str(w.message) for w in caught] == [
        "plugin 'probe' (distribution ablate-probe 0.1.0) is skipped: its register_shortcuts hook raised "
        "RuntimeError: no shortcut today"]
    assert info.status == "failed: its register_shortcuts hook raised RuntimeError: no shortcut today"
    assert (info.components, info.commands) == ({}, [])
    assert "probe_frn" not in fresh_plugins["norms"] and "probe_skip" not in fresh_plugins["shortcuts"]
    assert "probe_cb" not in fresh_plugins["callbacks"]
    assert fresh_plugins.hook_of("probe", "register_norms") is None
    app = typer.Typer()
    fresh_plugins.add_commands(app)
    assert app.registered_commands == []


def test_a_command_hook_that_raises_takes_the_components_with_it(register_plugin, fresh_plugins):
    class BadCommand:
        @hookimpl
        def register_norms(self, register):
            register("probe_frn", lambda c: nn.Identity())

        @hookimpl
        def register_commands(self, app):
            app.command("probe")(lambda: None)
            raise ValueError("typo")

    with pytest.warns(PluginWarning, match="its register_commands hook raised ValueError: typo"):
        info = register_plugin(BadCommand(), name="probe")
    assert info.error and "probe_frn" not in fresh_plugins["norms"]


def test_a_duplicate_name_commits_none_of_the_plugin(register_plugin, fresh_plugins):
    class Clash:
        @hookimpl
        def register_norms(self, register):
            register("fresh", lambda c: nn.Identity())
            register("bn", lambda c: nn.Identity())

    with pytest.raises(DuplicateComponentError):
        register_plugin(Clash(), name="clash")
    assert fresh_plugins["norms"].names() == ["bn", "none"] and fresh_plugins.hook_of("clash", "register_norms") is None


def test_plugin_commands_clashing_with_a_core_command_are_one_line(register_plugin):
    from ablate.cli import build_app

    class Run:
        @hookimpl
        def register_commands(self, app):
            app.command("run")(lambda: None)

    register_plugin(Run(), name="runner")
    with pytest.raises(DuplicateComponentError, match="command 'run' is registered twice: by plugin 'ablate' "
                                                      "and by plugin 'runner'"):
        build_app()


def test_plugins_json_lists_ok_failed_and_disabled_plugins_with_their_commands(distribution, cli):
    site = distribution("ablate-probe", "ablate_probe", HALF_BROKEN, {"probe": "ablate_probe"})
    (site / "ablate_hello.py").write_text(HELLO)
    (site / "ablate_gone.py").write_text(HELLO)
    (site / "ablate_probe-0.1.dist-info" / "entry_points.txt").write_text(
        "[ablate]\nprobe = ablate_probe\nhello = ablate_hello\ngone = ablate_gone\n")
    env = {"PYTHONPATH": str(site), "ABLATE_DISABLE_PLUGINS": "gone,extra-norms,gradamp,dense"}
    result = cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["probe"]["status"] == ("failed: its register_shortcuts hook raised RuntimeError: no shortcut today")
    assert (rows["probe"]["components"], rows["probe"]["commands"]) == ({}, [])
    assert (rows["hello"]["status"], rows["hello"]["commands"]) == ("ok", ["hello"])
    assert rows["hello"]["components"] == {"norms": ["hello_norm"]}
    assert (rows["gone"]["status"], rows["gone"]["distribution"]) == ("disabled", "ablate-probe")
    assert result.stderr.strip().splitlines() == [
        "warning: plugin 'probe' (distribution ablate-probe 0.1) is skipped: its register_shortcuts hook raised "
        "RuntimeError: no shortcut today"]
    assert cli("hello", env=env).stdout == "hello from a plugin\n"
    listed = cli("list", "norms", env=env).stdout
    assert "hello_norm" in listed and "probe_frn" not in listed
    missing = cli("probe", env=env)
    assert missing.returncode == 2 and "No such command 'probe'" in missing.stderr
    table = cli("plugins", env={**env, "COLUMNS": "200"}).stdout
    assert re.search(r"│ gone +│ 0\.1 +│ ablate-probe +│ +│ +│ disabled +│", table), table
    assert re.search(r"│ hello +│ 0\.1 +│ ablate-probe +│ norms: hello_norm +│ hello +│ ok +│", table), table


def test_duplicate_name_is_an_error_naming_both_plugins(register_plugin):
    class Again:
        @hookimpl
        def register_norms(self, register):
            register("bn", lambda c: nn.Identity())

    with pytest.raises(DuplicateComponentError, match="norm 'bn' is registered twice: by plugin 'ablate' and by plugin 'again'"):
        register_plugin(Again(), name="again")


def test_replace_true_overrides(register_plugin, fresh_plugins):
    class Replacing:
        @hookimpl
        def register_norms(self, register):
            register("bn", lambda c: nn.Identity(), replace=True)

    register_plugin(Replacing(), name="replacing")
    assert fresh_plugins["norms"].get("bn").plugin == "replacing"


def test_duplicate_from_installed_plugins_is_one_line_on_the_cli(distribution, cli):
    source = NORM_PLUGIN
    site = distribution("ablate-gn2", "ablate_gn2", source, {"gn2": "ablate_gn2"})
    (site / "ablate_gn2b.py").write_text(source)
    (site / "ablate_gn2-0.1.dist-info" / "entry_points.txt").write_text("[ablate]\ngn2 = ablate_gn2\ngn2b = ablate_gn2b\n")
    result = cli("list", "norms", env={"PYTHONPATH": str(site)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: norm 'gn2' is registered twice: by plugin 'gn2' and by plugin 'gn2b' (disable one with "
        "ABLATE_DISABLE_PLUGINS, or register with replace=True)"
    ]
    ok = cli("--disable-plugins", "gn2b", "list", "norms", env={"PYTHONPATH": str(site)})
    assert ok.returncode == 0 and "gn2" in ok.stdout


def test_disabled_plugins_are_never_imported(distribution, cli):
    site = distribution("ablate-broken", "ablate_broken", "raise ImportError('boom')", {"broken": "ablate_broken"})
    result = cli("list", "norms", env={"PYTHONPATH": str(site), "ABLATE_DISABLE_PLUGINS": "broken"})
    assert result.returncode == 0 and result.stderr == ""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sys.path.insert(0, str(site))
        try:
            plugins = load_plugins(disabled=["broken"], entry_points=entry_points_under(site))
        finally:
            sys.path.remove(str(site))
    assert "ablate_broken" not in sys.modules
    assert plugins.info["broken"].status == "disabled" and plugins.info["broken"].distribution == "ablate-broken"
