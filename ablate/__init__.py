"""ablate: a plugin-based ablation toolkit for deep convolutional networks."""

__version__ = "0.1.0"
