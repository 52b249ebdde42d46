"""Optional TensorBoard logging (``ablate run --tensorboard``), if ``torch.utils.tensorboard`` imports.

Writes into ``RUN_DIR/tensorboard/``, once per epoch (nothing per step, so the
training step stays free of host syncs): every number of the epoch's ``metrics.csv``
row as a scalar ``epoch/<name>``, and for each weight layer (see
``ablate.gradflow.stats``) a histogram of its gradient of the epoch's last step,
``grad/<index>.<layer>``, and of its weights, ``weight/<index>.<layer>``. At the end,
the test loss and accuracy as ``test/loss`` and ``test/acc``. View with
``tensorboard --logdir runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.gradflow.stats import weight_layers
from ablate.registry import AblateError

INSTALL = "install it with: pip install tensorboard"


def require_tensorboard() -> type:
    """``SummaryWriter``, or a one-line error saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise AblateError(f"--tensorboard needs the tensorboard package ({exc}); {INSTALL}") from None
    return SummaryWriter


class TensorBoardLogger:
    """Training callback: per-epoch scalars and per-layer gradient/weight histograms."""

    def __init__(self, log_dir: str | Path, histograms: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.histograms = histograms
        self.writer: Any = None
        self.layers: list = []

    def on_run_start(self, state: Any) -> None:
        self.writer = require_tensorboard()(log_dir=str(self.log_dir))
        self.layers = weight_layers(state.model)

    def on_epoch_end(self, state: Any) -> None:
        epoch = state.epoch
        for key, value in state.metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", value, epoch)
        if self.histograms:
            for i, (name, param) in enumerate(self.layers):
                if param.grad is not None:
                    self.writer.add_histogram(f"grad/{i:02d}.{name}", param.grad.detach().float().cpu(), epoch)
                self.writer.add_histogram(f"weight/{i:02d}.{name}", param.detach().float().cpu(), epoch)
        self.writer.flush()

    def on_run_end(self, state: Any) -> None:
        if self.writer is None:
            return
        for key in ("test_loss", "test_acc"):
            value = state.metrics.get(key)
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"test/{key[5:]}", value, state.epoch)
        self.writer.close()
