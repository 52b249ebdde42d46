"""Which plugins a recipe needs: checked before a run (``check_required``), recorded after it.

A recipe's ``required_plugins`` are matched against the loaded plugins, by distribution or
entry-point name, with one-line errors naming what to install. A resolved recipe's components
(``used_components``) tell which plugin, distribution and version provided each
(``provenance``), and the requirements a saved recipe carries (``plugin_requirements``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ablate.models import ENTRY_NORM, KEEP, SAME, architecture
from ablate.plugins import BUILTIN_NAME, get_plugins, registry
from ablate.registry import AblateError, Component

KIND_OF = {"model.arch": "architectures", "model.norm": "norms", "model.shortcut": "shortcuts",
           "data.dataset": "datasets"}


def component(kind: str, name: str) -> Component:
    """A registered component; architectures may also be ``timm:<name>``."""
    if kind == "architectures":
        return architecture(name)
    return registry(kind).get(name)


def used_components(config: Mapping[str, Any]) -> list[tuple[str, Component]]:
    """Each component a resolved config uses, with the recipe key that chose it (``keep``, a timm model's
    own layers, is no component)."""
    used = []
    for dotted, kind in KIND_OF.items():
        section, key = dotted.split(".")
        if config[section][key] != KEEP:
            used.append((dotted, component(kind, config[section][key])))
    if config["model"].get(ENTRY_NORM, SAME) != SAME:
        used.append((f"model.{ENTRY_NORM}", registry("norms").get(config["model"][ENTRY_NORM])))
    return used + [("callbacks", registry("callbacks").get(cb["name"])) for cb in config["callbacks"]]


def provenance(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Which plugin (distribution and version) provided each component of a resolved config, for run records."""
    out = []
    for key, component in used_components(config):
        info = get_plugins().provider(component)
        out.append({"key": key, "name": component.name, "plugin": component.plugin,
                    "distribution": info.distribution if info else None, "version": info.version if info else None})
    return out


def plugin_requirements(config: Mapping[str, Any]) -> list[str]:
    """``distribution>=version`` of every plugin but the built-in one that provided a component the config uses."""
    infos = (get_plugins().provider(c) for _, c in used_components(config))
    return sorted({i.requirement() for i in infos if i is not None and i.name != BUILTIN_NAME and i.distribution != "?"})


def check_required(requirements: Iterable[str], source: str) -> None:
    """Fail with one line when a recipe's ``required_plugins`` are not all loaded.

    Each requirement names a plugin's distribution (as saved recipes do) or its
    entry point, optionally with a version specifier, e.g. ``"ablate-extra-norms>=0.1"``;
    the message names the distribution to install whenever it is known.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    infos = list(get_plugins().info.values())
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise AblateError(f"{source}: required_plugins entry {text!r} is not a requirement like 'name>=1.0'") from None
        found = [i for i in infos if req.name == i.name or canonicalize_name(req.name) == canonicalize_name(i.distribution)]
        if not found:
            raise AblateError(f"{source}: needs {text}, which is not installed ({_install_hint(req.name)}); "
                              f"installed plugins: {', '.join(sorted(i.name for i in infos if i.ok)) or 'none'}")
        loaded = [i for i in found if i.ok]
        if not loaded:
            i = found[0]
            state = "disabled (ABLATE_DISABLE_PLUGINS or --disable-plugins)" if i.disabled else f"failed to load: {i.error}"
            raise AblateError(f"{source}: needs {text}: plugin '{i.name}' of {i.distribution} {i.version} is installed "
                              f"but {state}")
        if req.specifier and not any(req.specifier.contains(i.version, prereleases=True) for i in loaded):
            i = loaded[0]
            raise AblateError(f"{source}: needs {text}, but {i.distribution} {i.version} is installed "
                              f"(pip install -U '{i.distribution}{req.specifier}')")


def _install_hint(name: str) -> str:
    """``pip install`` for a requirement naming nothing installed: a distribution name, or by the
    naming convention of docs/plugins.md (distribution ``ablate-<plugin>``) an entry point's."""
    if name.startswith("ablate-"):
        return f"pip install {name}"
    return f"pip install {name}, or ablate-{name} if '{name}' is a plugin's entry-point name"
