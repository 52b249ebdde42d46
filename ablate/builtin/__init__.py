"""The built-in plugin: registered through the same hooks as any third-party plugin."""

from ablate.builtin.architectures import register_architectures
from ablate.builtin.commands import register_commands
from ablate.builtin.datasets import register_datasets
from ablate.builtin.norms import register_norms
from ablate.builtin.shortcuts import register_shortcuts

__all__ = ["register_architectures", "register_commands", "register_datasets", "register_norms", "register_shortcuts"]
