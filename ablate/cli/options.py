"""Recipe-override options shared by ``ablate run`` and ``ablate sweep``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ablate.recipe import OVERRIDES, parse_set
from ablate.registry import AblateError

Norm = Annotated[Optional[str], typer.Option(help="Norm (ablate list norms).")]
Shortcut = Annotated[Optional[str], typer.Option(help="Shortcut strategy (ablate list shortcuts).")]
Arch = Annotated[Optional[str], typer.Option(help="Architecture (ablate list architectures).")]
Lr = Annotated[Optional[float], typer.Option(help="Learning rate.")]
Epochs = Annotated[Optional[int], typer.Option(help="Number of epochs.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Training batch size.")]
Seed = Annotated[Optional[int], typer.Option(help="Random seed (initialisation and data order).")]
Dataset = Annotated[Optional[str], typer.Option(help="Dataset (ablate list datasets).")]
DataDir = Annotated[Optional[str], typer.Option("--data-dir", help="Folder holding the dataset.")]
Device = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")]
Amp = Annotated[Optional[str], typer.Option(help="auto, off, bf16 or fp16.")]
Download = Annotated[bool, typer.Option("--download", help="Download the dataset if it is missing.")]
Sets = Annotated[list[str], typer.Option("--set", help="Override any recipe key: section.key=value (repeatable).")]
CallbackNames = Annotated[list[str], typer.Option("--callback", help="Add a training callback by name (repeatable).")]
Gradflow = Annotated[Optional[str], typer.Option(
    "--gradflow", metavar="every=N|off",
    help="Record per-layer gradient statistics every N-th step into gradflow.csv (off: not at all).")]
Out = Annotated[Optional[Path], typer.Option(help="Output directory.")]



def parse_gradflow(text: str) -> int:
    """``--gradflow``: ``every=N``, ``N`` or ``off`` -> record every N-th step (0: off)."""
    value = text.strip().lower()
    if value in ("off", "none", "no", "false", "0"):
        return 0
    number = value.removeprefix("every=").strip()
    if not number.isdigit() or int(number) < 1:
        raise AblateError(f"--gradflow {text!r}: expected every=N (N >= 1), N, or off")
    return int(number)


def collect_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """Dotted recipe overrides from a command's options (its ``locals()``)."""
    out = {dotted: options[name] for name, dotted in OVERRIDES.items() if options.get(name) is not None}
    out.update(parse_set(item) for item in options.get("set_", []))
    if options.get("callback"):
        out["callbacks"] = [{"name": name} for name in options["callback"]]
    if options.get("download"):
        out["data.download"] = True
    if options.get("gradflow") is not None:
        out["gradflow.every"] = parse_gradflow(options["gradflow"])
    return out
