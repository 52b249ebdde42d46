"""Forward statistics per epoch in a run: ``SignalRecorder`` and ``RUN_DIR/signal.csv``.

With ``[gradflow] signal = true`` the trainer adds ``SignalRecorder``: it measures the forward
statistics (``ablate.diagnose.signal``) on a fixed batch, the first ``IMAGES`` images of the
batch that gradient flow is measured on at initialisation, once at initialisation (epoch 0)
and after each epoch: one forward pass without gradients, so it costs a fraction of one
training step per epoch. ``signal.csv`` is tidy, like ``gradflow.csv``, rewritten atomically
after every epoch::

    epoch,position_index,position,statistic,value
    0,0,input,sq_mean,0.000271
    ...

one row per epoch x position x statistic (``sq_mean``, ``variance``, ``branch_variance``,
``dead_fraction``); ``nan`` where a block has no residual branch. A resumed run keeps the
rows of its completed epochs.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ablate import rundir
from ablate.diagnose.signal import STATISTICS, SignalHooks, SignalProfile, frozen_forward

COLUMNS = ("epoch", "position_index", "position", "statistic", "value")
IMAGES = 16
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SignalTable:
    """``signal.csv`` in memory: one ``SignalProfile`` per epoch."""

    positions: list[str]
    epochs: dict[int, SignalProfile] = field(default_factory=dict)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for epoch in sorted(self.epochs):
            profile = self.epochs[epoch]
            for i, position in enumerate(self.positions):
                for statistic in STATISTICS:
                    writer.writerow((epoch, i, position, statistic, f"{profile.values[statistic][i]:.9g}"))
        return buf.getvalue()


def parse_signal(text: str) -> SignalTable:
    positions: dict[int, str] = {}
    values: dict[int, dict[str, dict[int, float]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        i = int(row["position_index"])
        positions[i] = row["position"]
        values.setdefault(int(row["epoch"]), {}).setdefault(row["statistic"], {})[i] = float(row["value"])
    names = [positions[i] for i in sorted(positions)]
    table = SignalTable(names)
    for epoch, by_stat in values.items():
        table.epochs[epoch] = SignalProfile(list(names), {s: [by_stat.get(s, {}).get(i, float("nan"))
                                                            for i in range(len(names))] for s in STATISTICS})
    return table


def _complete(table: SignalTable, text: str) -> SignalTable:
    """``table`` if ``text`` is whole: every statistic of every position for each epoch in it."""
    rundir.check_whole(text, COLUMNS, len(table.epochs) * len(table.positions) * len(STATISTICS),
                       f"{len(table.epochs)} epochs of {len(table.positions)} positions")
    return table


def load_signal(run_dir: str | Path) -> SignalTable | None:
    """``RUN_DIR/signal.csv`` as a table, or None when the run recorded none; a damaged or foreign file is one line
    naming it (``AblateError``)."""
    return rundir.load_table(Path(run_dir), rundir.SIGNAL, lambda text: _complete(parse_signal(text), text))


class SignalRecorder:
    """Training callback: forward statistics at initialisation and after every epoch into ``signal.csv``, under
    the run's bf16 autocast (``precision``) if any. Its hooks are registered only for its own forward pass, so
    training steps never run them."""

    def __init__(self, batch: Batch | Callable[[], Batch], images: int = IMAGES, precision: Any = None) -> None:
        self.batch = batch
        self.precision = precision
        self.images = images
        self.table: SignalTable | None = None
        self._x: torch.Tensor | None = None
        self._run_dir: Path | None = None

    def on_run_start(self, state: Any) -> None:
        self._run_dir = Path(state.run_dir)
        try:
            x, _ = self.batch() if callable(self.batch) else self.batch
        except StopIteration:  # no training data: nothing to measure
            return
        self._x = x[: self.images]
        old = load_signal(self._run_dir) if state.epoch > 0 else None
        profile = self._measure(state.model)
        if old is not None and old.positions == profile.positions:
            self.table = SignalTable(profile.positions, {e: p for e, p in old.epochs.items() if e <= state.epoch})
        else:
            self.table = SignalTable(profile.positions)
        if state.epoch == 0:
            self._store(0, profile)

    def on_epoch_end(self, state: Any) -> dict[str, float]:
        if self._x is not None:
            self._store(state.epoch, self._measure(state.model))
        return {}

    @torch.no_grad()
    def _measure(self, model: torch.nn.Module) -> SignalProfile:
        assert self._x is not None
        hooks = SignalHooks(model)
        try:
            frozen_forward(model, self._x, self.precision)
            return hooks.profile(self._x)
        finally:
            hooks.remove()

    def _store(self, epoch: int, profile: SignalProfile) -> None:
        assert self.table is not None and self._run_dir is not None
        self.table.epochs[epoch] = profile
        rundir.write_signal(self._run_dir, self.table.to_csv())
