"""Trainability diagnostics: forward statistics per block, Jacobian norm, effective rank and a verdict.

``ablate.diagnose.blocks`` finds a network's blocks (the ``signal_block`` convention);
``ablate.diagnose.signal`` measures the forward statistics of one batch through hooks;
``ablate.diagnose.jacobian`` the Jacobian's spectral norm and the features' effective rank;
``ablate.diagnose.verdict`` combines them into trainable / at risk / untrainable;
``ablate.diagnose.arm`` diagnoses one model or recipe arm at initialisation (``ablate diagnose``);
``ablate.diagnose.record`` records the statistics per epoch in a run (``signal.csv``);
``ablate.diagnose.plots`` draws the signal propagation figure (imported on demand: matplotlib).
Nothing is imported here, so that the trainer can import the recorder alone.
"""
