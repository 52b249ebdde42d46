"""Plugin loading: built-ins first, then each ``ablate`` entry point on its own.

A plugin that fails to import, or whose hook raises, yields one ``PluginWarning``
naming the entry point and its distribution; the others keep working.
``ABLATE_STRICT_PLUGINS=1`` turns that warning into an error, and
``ABLATE_DISABLE_PLUGINS=a,b`` (or ``ablate --disable-plugins a,b``) blocks
plugins before they are imported.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from ablate import __version__, hookspecs
from ablate.registry import KINDS, AblateError, Component, Registry

ENTRY_POINT_GROUP = "ablate"
BUILTIN_NAME = "ablate"
DISTRIBUTION = "ablate-cnn"


class PluginWarning(UserWarning):
    """A plugin failed to load; everything else still works."""


class PluginLoadError(AblateError):
    """A plugin failed to load and ABLATE_STRICT_PLUGINS is set."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "components": self.components,
            "error": self.error,
        }


@dataclass
class Plugins:
    """The loaded plugins, their pluggy manager and one registry per kind."""

    pm: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    registries: dict[str, Registry] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    strict: bool = False

    def __post_init__(self) -> None:
        self.registries = {kind: Registry(kind) for kind in KINDS}

    def __getitem__(self, kind: str) -> Registry:
        return self.registries[kind]

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register a plugin object and collect its components."""
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self.fail(info, f"pluggy refused it: {type(exc).__name__}: {exc}")
            return
        self.info[info.name] = info
        for kind in KINDS:
            self._collect(info, kind)

    def hook_of(self, plugin_name: str, hook_name: str) -> Any:
        """The function implementing ``hook_name`` in one plugin, or None."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return impl.function
        return None

    def _collect(self, info: PluginInfo, kind: str) -> None:
        hook = self.hook_of(info.name, f"register_{kind}")
        if hook is None:
            return
        registry = self.registries[kind]
        staged: list[tuple[Component, bool]] = []

        def register(name: str, factory: Any, *, help: str = "", label: str | None = None, replace: bool = False) -> None:
            staged.append((Component(name, factory, info.name, help or _first_line(factory), label), replace))

        try:
            hook(register=register)
        except Exception as exc:  # a broken plugin must not break the others
            self.fail(info, f"its register_{kind} hook raised {type(exc).__name__}: {exc}")
            return
        for component, replace in staged:
            registry.add(component, replace=replace)
            info.components.setdefault(kind, []).append(component.name)

    def fail(self, info: PluginInfo, reason: str) -> None:
        info.error = reason
        self.info[info.name] = info
        message = (
            f"plugin '{info.name}' (distribution {info.distribution} {info.version}) "
            f"is skipped: {reason}"
        )
        if self.strict:
            raise PluginLoadError(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    def add_commands(self, app: Any) -> None:
        """Let every plugin add CLI commands to ``app``."""
        for name in list(self.info):
            hook = self.hook_of(name, "register_commands")
            if hook is None:
                continue
            try:
                hook(app=app)
            except Exception as exc:
                self.fail(self.info[name], f"its register_commands hook raised {type(exc).__name__}: {exc}")

    def versions(self) -> dict[str, str]:
        """Loaded plugins and their versions, for run records."""
        return {n: i.version for n, i in self.info.items() if i.error is None}


def _first_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def disabled_from_env() -> list[str]:
    raw = os.environ.get("ABLATE_DISABLE_PLUGINS", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def strict_from_env() -> bool:
    return os.environ.get("ABLATE_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("ablate")
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    disabled: Iterable[str] | None = None,
    strict: bool | None = None,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> Plugins:
    """Load the built-in plugin and every (non-disabled) entry point."""
    from ablate import builtin

    disabled = list(disabled_from_env() if disabled is None else disabled)
    plugins = Plugins(new_manager(), disabled=disabled, strict=strict_from_env() if strict is None else strict)
    if BUILTIN_NAME not in disabled:
        plugins.add(builtin, PluginInfo(BUILTIN_NAME, DISTRIBUTION, __version__))
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in entry_points:
        if ep.name in disabled or ep.name in plugins.info:
            continue
        load_entry_point(plugins, ep)
    return plugins


def load_entry_point(plugins: Plugins, ep: importlib.metadata.EntryPoint) -> None:
    dist = getattr(ep, "dist", None)
    info = PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")
    try:
        plugin = ep.load()
    except Exception as exc:
        plugins.fail(info, f"importing entry point '{ep.value}' raised {type(exc).__name__}: {exc}")
        return
    plugins.add(plugin, info)


_current: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugins, loaded on first use."""
    global _current
    if _current is None:
        _current = load_plugins()
    return _current


def set_plugins(plugins: Plugins | None) -> Plugins | None:
    """Replace the process-wide plugins (``None`` reloads on next use); returns the old ones."""
    global _current
    old, _current = _current, plugins
    return old


def registry(kind: str) -> Registry:
    return get_plugins()[kind]


def check_required(requirements: Iterable[str], source: str) -> None:
    """Fail with one line when a recipe's ``required_plugins`` are not all installed.

    Each requirement names a plugin or its distribution, optionally with a version
    specifier, e.g. ``"extra-norms>=0.1"``.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    infos = [i for i in get_plugins().info.values() if i.error is None]
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise AblateError(f"{source}: required_plugins entry {text!r} is not a requirement like 'name>=1.0'") from None
        found = [i for i in infos if req.name in (i.name, i.distribution)]
        if not found:
            raise AblateError(
                f"{source}: requires plugin '{text}', which is not installed or is disabled (pip install {req.name}); "
                f"installed: {', '.join(sorted(i.name for i in infos)) or 'none'}"
            )
        if req.specifier and not any(req.specifier.contains(i.version, prereleases=True) for i in found):
            raise AblateError(f"{source}: requires plugin '{text}', but version {found[0].version} is installed")
