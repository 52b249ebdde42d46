"""The built-in plugin: its components register through the same hooks as any third-party plugin's.

The core commands are the CLI's own (``ablate.cli``); plugins only add commands."""

from ablate.builtin.architectures import register_architectures
from ablate.builtin.datasets import register_datasets
from ablate.builtin.norms import register_norms
from ablate.builtin.shortcuts import register_shortcuts

__all__ = ["register_architectures", "register_datasets", "register_norms", "register_shortcuts"]
