"""Fixtures for testing ablate plugins (a pytest plugin, loaded automatically).

``fresh_plugins`` gives each test its own plugin set holding only the built-ins;
``register_plugin(obj, name=...)`` adds a plugin object to it, exactly as an entry
point would, and returns its ``PluginInfo``. Everything is restored afterwards.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


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
