"""A trainability verdict at initialisation: trainable, at risk or untrainable, with a reason.

Inputs: the forward statistics (``ablate.diagnose.signal``), the gradient-flow summary at
initialisation (``ablate.gradflow``) and the effective rank of the penultimate features.
The signal's variance at each position is taken relative to the input's. Rule, first match wins:

1. **untrainable** if any statistic is non-finite;
2. **untrainable** if the variance falls below ``COLLAPSED`` (1e-6) of the input's at some
   position, or exceeds ``EXPLODED`` (1e6) times it: the reason names the first such block;
3. **untrainable** if the gradient-flow verdict at initialisation is not ``healthy``;
4. **at risk** if the variance at the classifier input is below ``FADING`` or above ``GROWING``
   times the input's, or the effective rank of the penultimate features is below ``LOW_RANK``;
5. **trainable** otherwise.

Thresholds: see the measurements below (filled in from benchmarks/verdict_vs_outcome.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ablate.diagnose.signal import ENTRY, HEAD, INPUT, SignalProfile

COLLAPSED = 1e-6
EXPLODED = 1e6
FADING = 1e-3
GROWING = 1e3
LOW_RANK = 1.5
TINY_JACOBIAN = 1e-8
LABELS = ("trainable", "at risk", "untrainable")
RULE = (f"untrainable if a statistic is non-finite, the signal variance leaves [{COLLAPSED:g}, {EXPLODED:g}] x the "
        f"input's at any block, or the gradient flow is not healthy; at risk if the classifier input's variance "
        f"leaves [{FADING:g}, {GROWING:g}] x the input's or the features' effective rank < {LOW_RANK:g}; "
        f"trainable otherwise")


@dataclass
class Trainability:
    verdict: str
    reason: str
    died_at: str | None
    """Where the signal variance left [COLLAPSED, EXPLODED] x the input's first, as ``block 12``; None if nowhere."""
    died_depth: int | None
    """Its position in depth order (0 = input, 1 = entry, 2 = first block, ...)."""
    head_variance: float
    """The classifier input's variance over the input's."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def position_label(profile: SignalProfile, index: int) -> str:
    """``block 12`` for the twelfth block, else the position's name (``entry``, ``classifier input``)."""
    name = profile.positions[index]
    return name if name in (INPUT, ENTRY, HEAD) else f"block {index - 1}"


def judge_trainability(profile: SignalProfile, gradflow: Mapping[str, Any], rank: float,
                       jacobian: float | None = None) -> Trainability:
    """The verdict for one diagnosis; see the module docstring."""
    relative = profile.relative_variance()
    head = relative[-1]
    n_blocks = len(profile.positions) - 3

    def result(label: str, reason: str, died: int | None = None) -> Trainability:
        where = position_label(profile, died) if died is not None else None
        return Trainability(label, reason, where, died, head)

    for statistic, values in profile.values.items():
        bad = [i for i, v in enumerate(values) if not math.isfinite(v) and statistic != "branch_variance"]
        if bad:
            return result("untrainable", f"{statistic} is not finite at {position_label(profile, bad[0])}", bad[0])
    for i, r in enumerate(relative[1:-1], 1):
        if r < COLLAPSED or r > EXPLODED:
            kind = "collapses" if r < COLLAPSED else "explodes"
            return result("untrainable", f"signal variance {kind} to {r:.0e} of the input's at "
                          f"{position_label(profile, i)} of {n_blocks}, {head:.0e} at the classifier input", i)
    if gradflow.get("verdict") != "healthy":
        return result("untrainable", f"gradient flow at initialisation is {gradflow.get('verdict')}: "
                      f"{gradflow.get('reason', '')}")
    if jacobian is not None and not jacobian >= TINY_JACOBIAN:
        return result("untrainable", f"input-output Jacobian norm {jacobian:.0e} < {TINY_JACOBIAN:g}")
    low = min(relative[1:-1])
    if low < FADING:
        i = relative.index(low)
        return result("at risk", f"signal variance falls to {low:.0e} of the input's at {position_label(profile, i)}")
    if not rank >= LOW_RANK:
        return result("at risk", f"penultimate features have effective rank {rank:.2f} < {LOW_RANK:g}")
    return result("trainable", f"signal variance stays within [{COLLAPSED:g}, {EXPLODED:g}] of the input's "
                  f"({head:.0e} at the classifier input), gradient flow healthy, effective rank {rank:.1f}")
