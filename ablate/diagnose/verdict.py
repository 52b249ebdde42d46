"""A trainability verdict at initialisation: trainable, at risk or untrainable, with a reason.

Inputs: the forward statistics (``ablate.diagnose.signal``), the gradient-flow summary at
initialisation (``ablate.gradflow``), the effective rank of the penultimate features and, when
measured, the input-output Jacobian norm (``ablate.diagnose.jacobian``). The signal's variance
at each block is taken relative to the input's. Rule, first match wins:

1. **untrainable** if a statistic is non-finite;
2. the variance falls below ``COLLAPSED`` (1e-6) of the input's at the entry or a block, or
   exceeds ``EXPLODED`` (1e6) times it: **untrainable**, the reason naming the first such block;
   **at risk** instead when the Jacobian norm was measured and is at least ``TINY_JACOBIAN``
   (the output still depends on the input);
3. **untrainable** if the gradient flow at initialisation is ``vanishing``, or the Jacobian norm
   is below ``TINY_JACOBIAN`` (1e-12);
4. **at risk** if the gradient flow is ``exploding``, or the Jacobian norm exceeds
   ``LARGE_JACOBIAN`` (300): gradients grow towards the input;
5. **at risk** if the variance falls below ``FADING`` (1e-3) of the input's at a block, or the
   effective rank of the penultimate features is below ``LOW_RANK`` (1.5);
6. **trainable** otherwise.

The classifier input is left out of rules 2 and 5: global average pooling removes most of the
variance of any image (VGG08, which learns, keeps 3e-8 of the input's there).

Measured with benchmarks/verdict_vs_outcome.py (default PyTorch init, the run's first training
batch of 50 synthetic images, 13 arms x seeds 0-4, 3 epochs of Adam; benchmarks/README.md has
the confusion table). Never left chance: plain VGG38 (lowest variance 7e-14 to 1e-12 of the
input's, below 1e-6 from block 3-4 on; Jacobian 1e-18 to 4e-18) and ResNet-56 without BN or
shortcuts (variance and Jacobian exactly 0: underflow). ResNet-20 without BN or shortcuts
collapses as far (1e-17 to 3e-16) but keeps a Jacobian of 8e-11 to 1e-10 and left chance in 1
of 5 seeds (16%): ``TINY_JACOBIAN`` 1e-12 sits two decades under it and six over plain VGG38,
and makes it ``at risk``. Every other arm keeps at least 8e-6 of the input's variance at every
block (VGG08 and VGG38 RC 8e-6 to 2e-5; the residual nets without BN 1e-2 and more; BN nets
0.2), so 1e-6 separates the dead from the rest; ``FADING`` marks those two arms (they learned,
to 12-28% where the trainable arms reached 20-96%). Plain ResNet-56 with BN has a Jacobian norm
of 700-1,200 and a gradient ratio of 600-1,100 (its gradients explode towards the input, Yang et
al. 2019), is ``exploding`` by the gradient verdict in some seeds and reached only 12-19%; the
largest Jacobian norm of a net that learned well is VGG38 BN's, 40-60, so 300 sits a factor of
5 above it and 2.3 below the former.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ablate.diagnose.signal import ENTRY, HEAD, INPUT, SignalProfile

COLLAPSED = 1e-6
EXPLODED = 1e6
FADING = 1e-3
LOW_RANK = 1.5
TINY_JACOBIAN = 1e-12
LARGE_JACOBIAN = 300.0
LABELS = ("trainable", "at risk", "untrainable")
RULE = (f"untrainable if a statistic is non-finite, the signal variance leaves [{COLLAPSED:g}, {EXPLODED:g}] x the "
        f"input's at a block (at risk if the Jacobian norm is still >= {TINY_JACOBIAN:g}), the gradient flow is "
        f"vanishing or the Jacobian norm < {TINY_JACOBIAN:g}; at risk if the gradient flow is exploding, the Jacobian "
        f"norm > {LARGE_JACOBIAN:g}, the variance falls below {FADING:g} x the input's at a block or the features' "
        f"effective rank < {LOW_RANK:g}; trainable otherwise")


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
            where = (f"signal variance {kind} to {r:.0e} of the input's at {position_label(profile, i)} of "
                     f"{n_blocks}, {head:.0e} at the classifier input")
            if jacobian is not None and jacobian >= TINY_JACOBIAN:
                return result("at risk", f"{where}, but the output still depends on the input "
                              f"(Jacobian norm {jacobian:.0e})", i)
            return result("untrainable", where, i)
    if gradflow.get("verdict") == "vanishing":
        return result("untrainable", f"gradient flow at initialisation is vanishing: {gradflow.get('reason', '')}")
    if jacobian is not None and not jacobian >= TINY_JACOBIAN:
        return result("untrainable", f"input-output Jacobian norm {jacobian:.0e} < {TINY_JACOBIAN:g}")
    if gradflow.get("verdict") != "healthy":
        return result("at risk", f"gradient flow at initialisation is {gradflow.get('verdict')}: "
                      f"{gradflow.get('reason', '')}")
    if jacobian is not None and jacobian > LARGE_JACOBIAN:
        return result("at risk", f"input-output Jacobian norm {jacobian:.0e} > {LARGE_JACOBIAN:g}: gradients "
                      f"grow towards the input")
    low = min(relative[1:-1])
    if low < FADING:
        i = relative.index(low)
        return result("at risk", f"signal variance falls to {low:.0e} of the input's at {position_label(profile, i)}")
    if not rank >= LOW_RANK:
        return result("at risk", f"penultimate features have effective rank {rank:.2f} < {LOW_RANK:g}")
    return result("trainable", f"signal variance stays within [{COLLAPSED:g}, {EXPLODED:g}] of the input's "
                  f"({head:.0e} at the classifier input), gradient flow healthy, effective rank {rank:.1f}")
