"""Training: the loop, its state, callbacks, checkpoints and the run directory."""
