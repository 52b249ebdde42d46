"""Commands that inspect what is installed and what a recipe builds: plugins, list, describe."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ablate.cli import options
from ablate.plugins import get_plugins
from ablate.registry import KINDS, AblateError

console = Console()


def plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each plugin: name, version, distribution, the components and commands it added, and its status."""
    infos = list(get_plugins().info.values())
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    table = Table("plugin", "version", "distribution", "components", "commands", "status")
    for i in infos:
        comps = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in i.components.items())
        style = "red" if i.error else "yellow" if i.disabled else "default"
        table.add_row(*map(escape, (i.name, i.version, i.distribution, comps, ", ".join(i.commands))),
                      f"[{style}]{escape(i.status)}[/]")
    console.print(table)


def list_components(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(KINDS)}."),
    pattern: str = typer.Argument("*", help="Shell-style wildcard, e.g. 'vgg*'."),
) -> None:
    """List the registered components of one kind."""
    kind = kind if kind.endswith("s") else kind + "s"
    if kind not in KINDS:
        raise AblateError(f"unknown kind '{kind}'; choose one of: {', '.join(KINDS)}")
    table = Table("name", "plugin", "description")
    for name in get_plugins()[kind].names(pattern):
        c = get_plugins()[kind].get(name)
        table.add_row(escape(c.name), escape(c.plugin), escape(c.help))
    console.print(table)


def describe(
    target: str = typer.Argument(..., help="A recipe file, an architecture name (e.g. vgg38, timm:resnet18) or a bundled recipe's name."),
    norm: options.Norm = None, shortcut: options.Shortcut = None, arch: options.Arch = None,
    dataset: options.Dataset = None, set_: options.Sets = [],
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per-layer table of a composed model: name, type, output shape, params; what surgery did to a timm model."""
    from ablate.build import arm_from_target, model_for
    from ablate.describe import describe_model
    from ablate.models.timm import surgery_of

    arm = arm_from_target(target, options.collect_overrides(locals()))
    model, in_shape = model_for(arm.config)
    m = arm.config["model"]
    info = {"arch": m["arch"], "norm": m["norm"], "shortcut": m["shortcut"], "surgery": surgery_of(model),
            **describe_model(model, in_shape)}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table("layer", "type", "output shape", "params", title=f"{info['arch']} norm={info['norm']} shortcut={info['shortcut']}")
    for layer in info["layers"]:
        shape = "x".join(map(str, layer["output_shape"])) if layer["output_shape"] else "-"
        table.add_row(layer["name"], layer["type"], shape, f"{layer['params']:,}")
    table.add_section()
    table.add_row("total", f"{info['weight_layers']} weight layers", "", f"{info['params']:,}")
    console.print(table)
    if info["surgery"]:
        console.print(f"surgery: {info['surgery']}", highlight=False)
