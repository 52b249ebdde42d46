"""ablate: a plugin-based ablation toolkit for deep convolutional networks."""

__version__ = "0.1.0"

from ablate.hookspecs import hookimpl  # noqa: E402  (plugins write @ablate.hookimpl)

__all__ = ["__version__", "hookimpl"]
