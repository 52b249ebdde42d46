"""When a run has diverged: the per-step count the trainer keeps, the rule, and the one-line error.

A step *diverged* when its mean loss is not finite or above ``DIVERGED_LOSS`` (a cross-entropy at
chance is ln C, under 7 for 1,000 classes; 1e4 means logits apart by thousands, which training
never comes back from). An epoch whose mean loss is not finite, or in which more than half of the
steps diverged, ends the run with status ``diverged``: its summary says so, that epoch is not
checkpointed, and ``ablate run`` exits with ``EXIT_DIVERGED``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ablate import rundir
from ablate.registry import AblateError

if TYPE_CHECKING:  # nothing here needs torch at import: ``ablate sweep`` reads DIVERGED without it
    import torch

DIVERGED_LOSS = 1e4
EXIT_DIVERGED = 3
DIVERGED = "diverged"


class NonFiniteLossError(AblateError):
    """The run diverged (``ablate run`` exits with ``EXIT_DIVERGED``)."""

    exit_code = EXIT_DIVERGED


def count_diverged(counter: torch.Tensor, batch_loss: torch.Tensor, batch_size: int) -> None:
    """Add 1 to ``counter`` (on the device, no host sync) when the step's summed loss diverged."""
    counter += ~(batch_loss <= DIVERGED_LOSS * batch_size)


def has_diverged(train_loss: float, diverged_steps: int, steps: int) -> bool:
    """An epoch's verdict: its mean loss is not finite, or most of its steps diverged."""
    return not math.isfinite(train_loss) or diverged_steps * 2 > steps


def diverged_error(run_dir: Path, epoch: int, lr: float, train_loss: float, diverged_steps: int,
                   steps: int) -> NonFiniteLossError:
    """The one line ``ablate run`` prints for a diverged run."""
    kept = f"keeping the checkpoint of epoch {epoch - 1}" if epoch > 1 else "no epoch was completed"
    what = (f"loss became {train_loss}" if not math.isfinite(train_loss) else
            f"loss was non-finite or above {DIVERGED_LOSS:g} in {diverged_steps} of {steps} steps")
    return NonFiniteLossError(f"{what} in epoch {epoch} (lr {lr:g}); the run diverged (status '{DIVERGED}' in "
                              f"{run_dir / rundir.SUMMARY}), {kept}. Train it again with a lower --lr or --norm bn "
                              f"(--restart, or another --out)")


def diverged_again(run_dir: Path, summary: dict) -> NonFiniteLossError:
    """The one line for a rerun of a run that has already diverged."""
    info = summary.get(DIVERGED)
    info = info if isinstance(info, dict) else {}
    return NonFiniteLossError(f"{run_dir} holds a run that diverged in epoch {info.get('epoch', '?')} "
                              f"(lr {summary.get('lr')}); --restart trains it again")
