"""Plugin loading: built-ins first, then each ``ablate`` entry point on its own, all or nothing.

Each plugin's ``register_*`` hooks (``register_commands`` included, against a scratch
typer app) run into a staging area; only when every one succeeds are its components and
commands committed. A plugin that fails to import, or any of whose hooks raises, leaves
nothing behind and yields one ``PluginWarning`` naming the entry point, its distribution
and the first error. ``ABLATE_STRICT_PLUGINS=1`` turns that warning into an error, and
``ABLATE_DISABLE_PLUGINS=a,b`` (or ``ablate --disable-plugins a,b``) blocks plugins
before they are imported; they are listed as disabled.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from ablate import __version__, hookspecs
from ablate.registry import KINDS, AblateError, Component, DuplicateComponentError, Registry

ENTRY_POINT_GROUP = "ablate"
BUILTIN_NAME = "ablate"
DISTRIBUTION = "ablate-cnn"


class PluginWarning(UserWarning):
    """A plugin failed to load; everything else still works."""


class PluginLoadError(AblateError):
    """A plugin failed to load and ABLATE_STRICT_PLUGINS is set."""


class HookFailed(Exception):
    """One of a plugin's hooks raised; the message says which and what."""


@dataclass
class PluginInfo:
    """One plugin as ``ablate plugins`` shows it; ``status`` is ``ok``, ``failed: <reason>`` or ``disabled``."""

    name: str
    distribution: str
    version: str
    components: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled

    @property
    def status(self) -> str:
        return "disabled" if self.disabled else f"failed: {self.error}" if self.error else "ok"

    def requirement(self) -> str:
        """``distribution>=version``: what a recipe that used this plugin needs."""
        return f"{self.distribution}>={self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "components": self.components,
            "commands": self.commands,
            "error": self.error,
        }


@dataclass
class Staged:
    """What one plugin's hooks registered, not yet committed: (kind, component, replace) and a scratch typer app."""

    components: list[tuple[str, Component, bool]] = field(default_factory=list)
    commands: Any = None

    def recorder(self, kind: str, plugin: str) -> hookspecs.Register:
        """The ``register`` callback a ``register_<kind>`` hook receives."""
        def register(name: str, factory: Any, *, help: str = "", label: str | None = None,
                     replace: bool = False) -> None:
            component = Component(name, factory, plugin, help or _first_line(factory), label)
            self.components.append((kind, component, replace))

        return register


@dataclass
class Plugins:
    """The loaded plugins, their pluggy manager, one registry per kind and the plugins' staged commands."""

    pm: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    registries: dict[str, Registry] = field(default_factory=dict)
    commands: dict[str, Any] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    strict: bool = False

    def __post_init__(self) -> None:
        self.registries = {kind: Registry(kind) for kind in KINDS}

    def __getitem__(self, kind: str) -> Registry:
        return self.registries[kind]

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register a plugin object: run all its hooks, then commit everything or nothing."""
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self.fail(info, f"pluggy refused it: {type(exc).__name__}: {exc}")
            return
        try:
            self._commit(info, self._stage(info))
        except HookFailed as exc:
            self.pm.unregister(name=info.name)
            self.fail(info, str(exc))
        except DuplicateComponentError:
            self.pm.unregister(name=info.name)
            raise

    def hook_of(self, plugin_name: str, hook_name: str) -> Any:
        """The function implementing ``hook_name`` in one plugin, or None."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return impl.function
        return None

    def _stage(self, info: PluginInfo) -> Staged:
        """Run every hook of the plugin into a ``Staged``; raises ``HookFailed`` at the first that raises."""
        staged = Staged()
        for kind in KINDS:
            self._call(info.name, f"register_{kind}", register=staged.recorder(kind, info.name))
        if self.hook_of(info.name, "register_commands") is not None:
            import typer

            staged.commands = typer.Typer()
            self._call(info.name, "register_commands", app=staged.commands)
            info.commands = command_names(staged.commands)
        return staged

    def _call(self, plugin_name: str, hook_name: str, **kwargs: Any) -> None:
        hook = self.hook_of(plugin_name, hook_name)
        if hook is None:
            return
        try:
            hook(**kwargs)
        except Exception as exc:  # a broken plugin must not break the others
            raise HookFailed(f"its {hook_name} hook raised {type(exc).__name__}: {exc}") from exc

    def _commit(self, info: PluginInfo, staged: Staged) -> None:
        """Add the staged components to the registries (all, or none on a duplicate name) and keep the commands."""
        trial = {kind: Registry(kind, dict(self.registries[kind].components)) for kind in KINDS}
        for kind, component, replace in staged.components:
            trial[kind].add(component, replace=replace)
        for kind in KINDS:
            self.registries[kind].components = trial[kind].components
        for kind, component, _ in staged.components:
            info.components.setdefault(kind, []).append(component.name)
        if staged.commands is not None:
            self.commands[info.name] = staged.commands
        self.info[info.name] = info

    def fail(self, info: PluginInfo, reason: str) -> None:
        info.error, info.components, info.commands = reason, {}, []
        self.info[info.name] = info
        message = (
            f"plugin '{info.name}' (distribution {info.distribution} {info.version}) "
            f"is skipped: {reason}"
        )
        if self.strict:
            raise PluginLoadError(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    def add_commands(self, app: Any) -> None:
        """Add every loaded plugin's commands to ``app``; a name taken already is an error naming both."""
        owners = dict.fromkeys(_names(app), BUILTIN_NAME)
        for plugin, scratch in self.commands.items():
            for name in self.info[plugin].commands:
                if name in owners:
                    raise DuplicateComponentError(
                        f"command '{name}' is registered twice: by plugin '{owners[name]}' and by plugin "
                        f"'{plugin}' (disable one with ABLATE_DISABLE_PLUGINS)")
                owners[name] = plugin
            app.registered_commands.extend(scratch.registered_commands)
            app.registered_groups.extend(scratch.registered_groups)

    def versions(self) -> dict[str, str]:
        """Loaded plugins and their versions, for run records."""
        return {n: i.version for n, i in self.info.items() if i.ok}

    def provider(self, component: Component) -> PluginInfo | None:
        """The loaded plugin that registered ``component`` (None for ``timm:`` models)."""
        return self.info.get(component.plugin)


def command_names(app: Any) -> list[str]:
    """The command names a plugin's scratch typer app adds, as click builds them.

    Building them checks their definitions too, so that a malformed command fails its
    plugin at load time instead of the whole CLI later.
    """
    import typer

    if app.registered_callback is not None:
        raise HookFailed("its register_commands hook set the root callback; add commands or sub-apps only")
    try:
        return sorted(typer.main.get_group(app).commands)
    except Exception as exc:
        raise HookFailed(f"its register_commands hook added a command typer cannot build: "
                         f"{type(exc).__name__}: {exc}") from exc


def _names(app: Any) -> list[str]:
    """The names of the commands and sub-apps already on the CLI's app (the core ones are named explicitly)."""
    return [info.name for info in [*app.registered_commands, *app.registered_groups] if info.name]


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
    """Load the built-in plugin and every entry point; disabled ones are listed, never imported."""
    from ablate import builtin

    disabled = list(disabled_from_env() if disabled is None else disabled)
    plugins = Plugins(new_manager(), disabled=disabled, strict=strict_from_env() if strict is None else strict)
    ablate_info = PluginInfo(BUILTIN_NAME, DISTRIBUTION, __version__, disabled=BUILTIN_NAME in disabled)
    if ablate_info.disabled:
        plugins.info[BUILTIN_NAME] = ablate_info
    else:
        plugins.add(builtin, ablate_info)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in entry_points:
        if ep.name in plugins.info:
            continue
        if ep.name in disabled:
            plugins.info[ep.name] = _info(ep, disabled=True)
        else:
            load_entry_point(plugins, ep)
    return plugins


def _info(ep: importlib.metadata.EntryPoint, disabled: bool = False) -> PluginInfo:
    dist = getattr(ep, "dist", None)
    return PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?", disabled=disabled)


def load_entry_point(plugins: Plugins, ep: importlib.metadata.EntryPoint) -> None:
    info = _info(ep)
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
