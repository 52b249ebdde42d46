"""A gradient-flow verdict from one measurement's per-layer mean |g|: vanishing, exploding or healthy.

The input is the profile the study plots (Figures 2, 3, 5): mean |g| of each weight
layer in depth order, entry conv first, classifier last (an epoch's mean over its
recorded steps, or the single step at initialisation). ``ratio`` is
``mean|g|(first layer) / mean|g|(last layer)``: how much of the gradient that reaches
the classifier is left when it arrives at the input. The rule, first match wins:

1. **exploding** if any layer's value is non-finite (inf/NaN: no finite step in the
   epoch), if more than ``NONFINITE_FRACTION`` (10 %) of the recorded steps had a
   non-finite gradient, or if any layer's mean |g| exceeds ``EXPLODING_MEAN_ABS`` (10);
2. **vanishing** if any layer's mean |g| is exactly zero (a dead layer, or gradients
   that underflowed);
3. **vanishing** if ``ratio < VANISHING_RATIO`` (1e-5);
4. **exploding** if ``ratio > EXPLODING_RATIO`` (1e5);
5. **healthy** otherwise.

The ratio thresholds were set from measurements at initialisation (default PyTorch
init, one batch of 100 normalised ``synthetic`` images, seeds 0-4): plain VGG38 gives
1e-14 to 8e-14; VGG08 5e-2 to 6e-2, VGG38 RC 3e-2 to 9e-2, VGG08 BN 1.5 to 2.7,
VGG38 BN+RC 8 to 14, VGG38 BN 110 to 270 (BatchNorm makes the gradient grow towards
the input). 1e-5 sits three orders of magnitude under the smallest healthy ratio and
eight over plain VGG38; 1e5 leaves a factor of several hundred above VGG38 BN. The
absolute cap of 10 is an order of magnitude above the largest healthy mean |g| seen
(0.75, the entry conv of VGG38 BN), while VGG38 with its weights tripled at
initialisation reaches 15.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

VANISHING_RATIO = 1e-5
EXPLODING_RATIO = 1e5
EXPLODING_MEAN_ABS = 10.0
NONFINITE_FRACTION = 0.1
RULE = (f"exploding if any layer's mean|g| is non-finite or > {EXPLODING_MEAN_ABS:g}, or > "
        f"{NONFINITE_FRACTION:.0%} of steps non-finite; vanishing if a layer's mean|g| is 0 or first/last < "
        f"{VANISHING_RATIO:g}; exploding if first/last > {EXPLODING_RATIO:g}; healthy otherwise")
LABELS = ("vanishing", "exploding", "healthy")


@dataclass
class Verdict:
    verdict: str
    ratio: float
    first: float
    last: float
    min: float
    max: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite numbers become None (the reason says why)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def judge(profile: Sequence[float], nonfinite_fraction: float = 0.0,
          layers: Sequence[str] | None = None) -> Verdict:
    """The verdict for one per-layer mean |g| ``profile`` (depth order); see the module docstring."""
    values = [float(v) for v in profile]
    if not values:
        return Verdict("unknown", math.nan, math.nan, math.nan, math.nan, math.nan, "no weight layers")
    names = list(layers) if layers is not None else [f"layer {i}" for i in range(len(values))]
    first, last = values[0], values[-1]
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (math.nan, math.nan)
    ratio = first / last if last != 0 else (math.inf if first > 0 else math.nan)

    def result(label: str, reason: str) -> Verdict:
        return Verdict(label, ratio, first, last, low, high, reason)

    bad = [names[i] for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        return result("exploding", f"non-finite gradients in {len(bad)} layer(s), first {bad[0]}")
    if nonfinite_fraction > NONFINITE_FRACTION:
        return result("exploding", f"{nonfinite_fraction:.0%} of the recorded steps had non-finite gradients")
    if high > EXPLODING_MEAN_ABS:
        i = values.index(high)
        return result("exploding", f"mean|g| of {names[i]} is {high:.3g} > {EXPLODING_MEAN_ABS:g}")
    zero = [names[i] for i, v in enumerate(values) if v == 0]
    if zero:
        return result("vanishing", f"{len(zero)} layer(s) with exactly zero gradient, first {zero[0]}")
    if ratio < VANISHING_RATIO:
        return result("vanishing", f"first/last mean|g| = {ratio:.2e} < {VANISHING_RATIO:g}")
    if ratio > EXPLODING_RATIO:
        return result("exploding", f"first/last mean|g| = {ratio:.2e} > {EXPLODING_RATIO:g}")
    return result("healthy", f"first/last mean|g| = {ratio:.2e} within [{VANISHING_RATIO:g}, {EXPLODING_RATIO:g}]")


def verdict_label(profile: Sequence[float], nonfinite_fraction: float = 0.0) -> str:
    """Just the label: ``vanishing``, ``exploding`` or ``healthy`` (``unknown`` for an empty profile)."""
    return judge(profile, nonfinite_fraction).verdict
