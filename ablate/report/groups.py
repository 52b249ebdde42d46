"""Runs grouped by configuration-but-seed, named by their model label, in the study's order."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ablate.report.formats import fmt_lr
from ablate.report.labels import component_rank
from ablate.report.runs import ReportError, Run

SECTION_ORDER = {"model": 0, "train": 1, "callbacks": 2, "data": 3}


@dataclass
class Group:
    """Runs of one configuration (different seeds)."""

    runs: list[Run]
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def label(self) -> str:
        return self.first.label

    @property
    def lr(self) -> float | None:
        return self.first.summary.get("lr")

    def sort_key(self) -> tuple:
        """By learning rate, then VGG depth, shortcut and norm (``ablate.report.labels``' order), then name."""
        s = self.first.summary
        arch = str(s.get("arch", ""))
        depth = re.fullmatch(r"vgg(\d+)", arch, re.IGNORECASE)
        return (self.lr if self.lr is not None else math.inf,
                (0, int(depth.group(1)), "") if depth else (1, 0, arch),
                component_rank("shortcuts", s.get("shortcut")), str(s.get("shortcut")),
                component_rank("norms", s.get("norm")), str(s.get("norm")), self.name)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by configuration-but-seed, in the study's order, with unique names."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    groups = [Group(sorted(members, key=lambda r: (str(type(r.seed)), r.seed))) for members in by_key.values()]
    _name_groups(groups)
    groups.sort(key=Group.sort_key)
    lrs: dict[str, set] = {}
    for group in groups:
        lrs.setdefault(group.name, set()).add(group.lr)
    for group in groups:  # figures' legends: the name, with the lr where the name alone is ambiguous
        legend = group.name + (f" lr={fmt_lr(group.lr)}" if len(lrs[group.name]) > 1 else "")
        for run in group.runs:
            run.group_name = legend
    return groups


def _name_groups(groups: list[Group]) -> None:
    """Name = model label; groups that share label and lr get the config keys that tell them apart."""
    clashes: dict[tuple[str, Any], list[Group]] = {}
    for group in groups:
        group.name = group.label
        clashes.setdefault((group.label, group.lr), []).append(group)
    for members in clashes.values():
        if len(members) < 2:
            continue
        flats = [_flat(json.loads(g.first.key)) for g in members]
        keys = sorted({k for f in flats for k in f if len({json.dumps(x.get(k), default=str) for x in flats}) > 1},
                      key=lambda k: (SECTION_ORDER.get(k.split(".")[0], 9), k))
        for group, flat in zip(members, flats):
            shown = [f"{k.split('.')[-1]}={flat.get(k, 'default')}" for k in keys[:3]]
            group.extra = {k: flat.get(k) for k in keys}
            group.name = f"{group.label} [{', '.join(shown)}]" if shown else group.label
        seen: dict[str, int] = {}
        for group in members:  # still equal when they differ only beyond the first three keys
            seen[group.name] = seen.get(group.name, 0) + 1
            if seen[group.name] > 1:
                group.name += f" #{seen[group.name]}"


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def comparison_pairs(groups: Sequence[Group], compare: Sequence[Sequence[str]] = (), baseline: str | None = None
                     ) -> list[tuple[Group, Group]]:
    """(A, B) for each ``--compare A B``, then (each other group, baseline) for ``--baseline``; no repeats."""
    pairs = [(find_group(groups, a, "--compare"), find_group(groups, b, "--compare")) for a, b in compare]
    if baseline is not None:
        base = find_group(groups, baseline, "--baseline")
        others = [(g, base) for g in groups if g is not base]
        if not others:
            raise ReportError(f"--baseline {baseline!r}: no other configuration to compare it with")
        pairs += others
    for a, b in pairs:
        if a is b:
            raise ReportError(f"--compare {a.name!r} {b.name!r}: a configuration compared with itself")
    unique = {(id(a), id(b)): (a, b) for a, b in pairs}
    return list(unique.values())


def find_group(groups: Sequence[Group], name: str, option: str = "--compare") -> Group:
    """The group called ``name``: its row name, its label if unique, or ``label lr=X``."""
    wanted = name.strip().lower()
    exact = [g for g in groups if g.name.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = [g for g in groups if g.label.lower() == wanted or f"{g.name} lr={fmt_lr(g.lr)}".lower() == wanted
               or f"{g.label} lr={fmt_lr(g.lr)}".lower() == wanted]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(f"'{g.name} lr={fmt_lr(g.lr)}'" for g in (matches or groups))
    what = "is ambiguous" if matches else "matches no configuration"
    raise ReportError(f"{option} {name!r} {what}; choose one of: {choices}")
