"""``GradFlowRecorder``: the training callback that records per-layer statistics into ``gradflow.csv``.

What it records and the file's format: ``ablate.gradflow.stats``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch

from ablate import rundir
from ablate.gradflow.stats import (
    STATISTICS,
    Batch,
    DeviceStatistics,
    GradFlowTable,
    gradient_stats_at_init,
    load_gradflow,
    weight_layers,
)


class GradFlowRecorder:
    """Training callback recording per-layer statistics every ``every`` steps into ``gradflow.csv``.

    ``init_batch`` (an ``(x, y)`` pair or a function returning one) gives the batch
    for the epoch-0 measurement at initialisation; without it epoch 0 is skipped.
    ``every=0`` records nothing. ``summary()`` is the ``"gradflow"`` entry of
    ``summary.json``: the verdict of the last epoch, its first/last ratio, the verdict
    at initialisation and one entry per epoch.
    """

    def __init__(self, every: int = 1, init_batch: Batch | Callable[[], Batch] | None = None,
                 precision: Any = None) -> None:
        self.every = int(every)
        self.init_batch = init_batch
        self.precision = precision
        self.table: GradFlowTable | None = None
        self.epoch_info: dict[int, dict[str, Any]] = {}
        self._compute: DeviceStatistics | None = None
        self._run_dir: Path | None = None
        self._sum: torch.Tensor | None = None  # the epoch's sums, allocated once, updated in place
        self._finite, self._last, self._nonfinite_steps, self._steps, self._count = (torch.zeros(()) for _ in range(5))

    def _reset(self) -> None:
        """Zero the epoch's sums in place: a captured training step (``record_on_device``) holds their memory."""
        for buffer in self._buffers():
            buffer.zero_()

    def _buffers(self) -> list[torch.Tensor]:
        return [] if self._sum is None else [self._sum, self._finite, self._last, self._nonfinite_steps, self._steps]

    # -- callback events -------------------------------------------------------------

    def on_run_start(self, state: Any) -> None:
        if self.every <= 0:
            return
        layers = weight_layers(state.model)
        self._compute = DeviceStatistics([p for _, p in layers])
        device = layers[0][1].device if layers else torch.device("cpu")
        shape = (len(layers), len(STATISTICS))
        self._sum, self._finite, self._last = (torch.zeros(shape, device=device) for _ in range(3))
        self._nonfinite_steps, self._steps = torch.zeros((), device=device), torch.zeros((), device=device)
        self._count = torch.zeros((), device=device, dtype=torch.long)
        names = [name for name, _ in layers]
        self._run_dir = Path(state.run_dir)
        self.table = GradFlowTable(names)
        if state.epoch > 0:  # resuming: keep the completed epochs' rows
            self._restore(state, names)
        elif self.init_batch is not None:
            batch: Batch | None
            try:
                batch = self.init_batch() if callable(self.init_batch) else self.init_batch
            except StopIteration:  # no training data: nothing to measure
                batch = None
            if batch is not None:
                stats = gradient_stats_at_init(state.model, *batch, self.precision)
                self.table.add(0, stats.values, "mean")
                self.table.add(0, stats.values, "last")
                self.epoch_info[0] = {"steps": 1, "nonfinite_steps": 0}
        self._write()

    def on_epoch_start(self, state: Any) -> None:
        self._reset()
        self._count.fill_(state.step)

    def on_after_backward(self, state: Any) -> None:
        if self._compute is None or state.step % self.every:
            return
        self._add(self._compute())

    def record_on_device(self) -> None:
        """``on_after_backward`` for a captured training step: it runs every step, and ``every`` is applied
        on the device (a step is recorded with weight 1 or 0), counting steps from ``on_epoch_start``."""
        if self._compute is None:
            return
        weight = (self._count % self.every == 0).float()
        self._count += 1
        self._add(self._compute(), weight)

    def _add(self, values: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Add one step's statistics into the epoch's sums, in place; ``weight`` 0 adds nothing."""
        assert self._sum is not None
        finite = torch.isfinite(values)
        clean, bad = torch.where(finite, values, 0.0), (~finite).any()
        if weight is None:
            self._sum += clean
            self._finite += finite
            self._nonfinite_steps += bad
            self._last.copy_(values)
            self._steps += 1
        else:
            self._sum += clean * weight
            self._finite += finite * weight
            self._nonfinite_steps += bad * weight
            self._last.copy_(torch.where(weight > 0, values, self._last))
            self._steps += weight

    def on_epoch_end(self, state: Any) -> dict[str, float]:
        if self._compute is None or self._sum is None:
            return {}
        assert self.table is not None
        layers = self._sum.shape[0]
        packed = torch.cat([(self._sum / self._finite).flatten(), self._last.flatten(),
                            self._nonfinite_steps.view(1), self._steps.view(1)]).cpu()  # the one host sync of the epoch
        steps = int(packed[-1])
        if steps == 0:
            return {}
        n = layers * len(STATISTICS)
        mean = packed[:n].view(layers, -1).tolist()
        last = packed[n:2 * n].view(layers, -1).tolist()
        self.table.add(state.epoch, mean, "mean")
        self.table.add(state.epoch, last, "last")
        self.epoch_info[state.epoch] = {"steps": steps, "nonfinite_steps": int(packed[-2])}
        self._write()
        self._reset()
        info = self._judge(state.epoch)
        return {"grad_ratio": info["ratio"], **{f"grad_{k}": v for k, v in self.epoch_info[state.epoch].items()}}

    # -- results -------------------------------------------------------------------------

    def _judge(self, epoch: int) -> dict[str, Any]:
        from ablate.gradflow.verdict import judge

        assert self.table is not None
        info = self.epoch_info.get(epoch, {})
        steps, bad = info.get("steps"), info.get("nonfinite_steps", 0)
        fraction = bad / steps if steps else 0.0
        out = {"epoch": epoch, **judge(self.table.profile(epoch), fraction).as_dict()}
        if steps is not None:
            out.update(steps=steps, nonfinite_steps=bad)
        return out

    def summary(self) -> dict[str, Any]:
        """The ``"gradflow"`` entry of ``summary.json``."""
        if self.table is None:
            return {}
        epochs = self.table.epochs
        at_init = self._judge(0) if 0 in epochs else None
        per_epoch = [self._judge(e) for e in epochs if e > 0]
        final = per_epoch[-1] if per_epoch else at_init or {}
        from ablate.gradflow.verdict import RULE

        return {"verdict": final.get("verdict"), "ratio": final.get("ratio"), "every": self.every,
                "layers": self.table.layers, "rule": RULE, "at_init": at_init, "per_epoch": per_epoch}

    def _restore(self, state: Any, names: list[str]) -> None:
        old = load_gradflow(state.run_dir)
        if old is not None and old.layers and old.layers != names:  # the checkpoint fits this model, so its layers are these
            raise rundir.damaged(Path(state.run_dir) / rundir.GRADFLOW, f"its layers are not this model's "
                                 f"({len(old.layers)} instead of {len(names)})", rundir.RESTART)
        if old is not None:
            old.keep_epochs(state.epoch)
            self.table = old
        try:
            earlier = rundir.read_summary(state.run_dir).get("gradflow") or {}
        except Exception:
            earlier = {}
        for entry in [earlier.get("at_init") or {}, *(earlier.get("per_epoch") or [])]:
            if "epoch" in entry and "steps" in entry and entry["epoch"] <= state.epoch:
                self.epoch_info[entry["epoch"]] = {"steps": entry["steps"],
                                                   "nonfinite_steps": entry.get("nonfinite_steps", 0)}
        for row in rundir.read_metrics(state.run_dir):  # rewritten from the checkpoint: ahead of a lagging summary
            if math.isfinite(row.get("grad_steps", math.nan)) and row["epoch"] <= state.epoch:
                self.epoch_info[int(row["epoch"])] = {"steps": int(row["grad_steps"]),
                                                      "nonfinite_steps": int(row.get("grad_nonfinite_steps", 0))}

    def _write(self) -> None:
        if self._run_dir is not None and self.table is not None:
            rundir.write_gradflow(self._run_dir, self.table.to_csv())

