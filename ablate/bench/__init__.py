"""``ablate bench``: params, FLOPs, throughput, memory and gradient flow of each arm.

``arms`` expands the command line into arms, ``runner`` benches each one in a fresh
``python -m ablate.bench.worker`` subprocess, ``worker`` measures one arm, and
``schema`` lists the fields of a result row.
"""

from ablate.bench.arms import BenchArm, check_names, expand_arms
from ablate.bench.runner import run_arm

__all__ = ["BenchArm", "check_names", "expand_arms", "run_arm"]
