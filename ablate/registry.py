"""One registry per component kind, filled by the plugins' ``register_*`` hooks."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

KINDS = ("norms", "shortcuts", "architectures", "datasets", "callbacks")


class AblateError(Exception):
    """An error the user can act on; the CLI prints its message as one line."""


class RecipeError(AblateError):
    """A recipe (file, name or override) is invalid; the message names the file, key, value and choices."""


class UnknownComponentError(AblateError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateComponentError(AblateError):
    pass


@dataclass(frozen=True)
class Component:
    """A registered component; ``label`` is how reports show it (``BN`` for ``bn``), by default its name."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    help: str = ""
    label: str | None = None

    def __post_init__(self) -> None:
        if self.label is None:
            object.__setattr__(self, "label", self.name)


@dataclass
class Registry:
    """Components of one kind, by name. ``kind`` is plural, e.g. ``"norms"``."""

    kind: str
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.kind[:-1]

    def add(self, component: Component, replace: bool = False) -> None:
        old = self.components.get(component.name)
        if old is not None and not replace:
            raise DuplicateComponentError(
                f"{self.singular} '{component.name}' is registered twice: by plugin "
                f"'{old.plugin}' and by plugin '{component.plugin}' "
                f"(disable one with ABLATE_DISABLE_PLUGINS, or register with replace=True)"
            )
        self.components[component.name] = component

    def get(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise UnknownComponentError(
                f"unknown {self.singular} '{name}'; available: {self.describe_choices()}"
            ) from None

    def factory(self, name: str) -> Callable[..., Any]:
        return self.get(name).factory

    def names(self, pattern: str = "*") -> list[str]:
        """Names matching a shell-style wildcard pattern, sorted."""
        return sorted(n for n in self.components if fnmatch.fnmatchcase(n, pattern))

    def describe_choices(self) -> str:
        return ", ".join(f"{n} ({self.components[n].plugin})" for n in self.names()) or "none"

    def __contains__(self, name: object) -> bool:
        return name in self.components

    def __iter__(self):
        return iter(self.components[n] for n in self.names())
