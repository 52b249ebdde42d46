"""Per-layer gradient and weight statistics, recorded during training without host syncs.

A *layer* is a trainable weight with two or more dimensions (conv kernels and linear
matrices; biases and norm scales are left out), taken in ``named_parameters()``
order, which for the VGG family is depth order: the entry conv first, the classifier
last. Its name is the parameter name without ``.weight`` (``entry.0``,
``blocks.3.first.conv``, ``classifier``).

For every recorded step (each ``every``-th optimiser step, counted over the run) the
recorder computes, in ``on_after_backward`` (gradients present, before the optimiser
step), six statistics per layer as one ``(layers x 6)`` device tensor built from
batched ``torch._foreach_norm`` calls::

    grad_mean_abs    mean |g|  (the study's "average gradient", Figures 2, 3 and 5)
    grad_norm        L2 norm of g
    grad_max_abs     max |g|
    weight_mean_abs  mean |w|
    weight_norm      L2 norm of w
    weight_max_abs   max |w|

It adds them into a running sum on the device (non-finite values, e.g. the overflowed
steps that an fp16 grad scaler skips, are left out of the sum and counted) and keeps
the last step's values. Nothing is read back until ``on_epoch_end``, which copies one
small tensor to the host. Epoch 0 holds the same statistics at initialisation: one
forward/backward on one training batch before the first step (see
``gradient_stats_at_init``; the model, its buffers and the RNG are left as they were).

``RUN_DIR/gradflow.csv`` is a tidy table, rewritten atomically after every epoch::

    epoch,layer_index,layer,statistic,aggregate,value
    0,0,entry.0,grad_mean_abs,mean,5.1e-06
    ...

one row per epoch x layer x statistic x aggregate, where ``epoch`` is 0 (at
initialisation) or the 1-based training epoch, ``layer_index`` the 0-based depth
position, ``aggregate`` is ``mean`` (mean over the epoch's recorded steps) or
``last`` (the epoch's last recorded step; at epoch 0 both are the single
measurement), and ``value`` a float (``nan`` when no finite value was recorded).
A resumed run keeps the rows of its completed epochs and appends after them; a
fresh start rewrites the file. ``load_gradflow(run_dir)`` reads it back.
"""

from __future__ import annotations

import csv
import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate import rundir

STATISTICS = ("grad_mean_abs", "grad_norm", "grad_max_abs", "weight_mean_abs", "weight_norm", "weight_max_abs")
AGGREGATES = ("mean", "last")
COLUMNS = ("epoch", "layer_index", "layer", "statistic", "aggregate", "value")
GRADFLOW_CSV = rundir.GRADFLOW
MEAN_ABS = STATISTICS.index("grad_mean_abs")

Batch = tuple[torch.Tensor, torch.Tensor]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, weight)`` of every trainable parameter with ndim >= 2, in ``named_parameters()`` order."""
    out = []
    for name, param in model.named_parameters():
        if param.requires_grad and param.ndim >= 2:
            name = name.removeprefix("_orig_mod.")
            out.append((name[: -len(".weight")] if name.endswith(".weight") else name, param))
    return out


class DeviceStatistics:
    """Computes the ``(layers x 6)`` statistics tensor of a fixed list of weights, on their device."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        device = self.params[0].device if self.params else torch.device("cpu")
        self.inv_numel = torch.tensor([1.0 / p.numel() for p in self.params], device=device)

    @torch.no_grad()
    def __call__(self) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else p.new_zeros(()) for p in self.params]
        weights = [p.detach() for p in self.params]
        columns = []
        for tensors in (grads, weights):
            l1, l2, linf = (torch.stack(torch._foreach_norm(tensors, order)).float() for order in (1.0, 2.0, math.inf))
            columns += [l1 * self.inv_numel, l2, linf]
        return torch.stack(columns, dim=1)


def gradient_stats_at_init(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: Any = None) -> "LayerStats":
    """The six statistics per layer after one forward/backward of ``(x, y)``, without a step.

    The model runs in training mode (batch statistics, as in the first training step);
    afterwards its buffers (BatchNorm running statistics), training flag and the RNG
    state are restored and the gradients set to None, so that training continues
    exactly as if this had not run. ``precision`` (an ``ablate.train.setup.Precision``)
    applies its autocast for bf16; fp16 and full precision run in fp32.
    """
    layers = weight_layers(model)
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None
    use_autocast = precision is not None and getattr(precision, "dtype", None) is torch.bfloat16
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        if use_autocast:
            with precision.autocast(x.device):
                logits = model(x)
        else:
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        values = DeviceStatistics([p for _, p in layers])().cpu()
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, x.device)
    return LayerStats([name for name, _ in layers], values.tolist())


@dataclass
class LayerStats:
    """One measurement: ``values[layer][statistic]`` in ``STATISTICS`` order."""

    layers: list[str]
    values: list[list[float]]

    def column(self, statistic: str = "grad_mean_abs") -> list[float]:
        j = STATISTICS.index(statistic)
        return [row[j] for row in self.values]

    def summary(self) -> dict[str, Any]:
        """Verdict, ratio and extremes of mean |g| (see ``ablate.gradflow.verdict``)."""
        from ablate.gradflow.verdict import judge

        return judge(self.column()).as_dict()


@dataclass
class GradFlowTable:
    """``gradflow.csv`` read back: ``values[(epoch, statistic, aggregate)]`` is a list over layers."""

    layers: list[str]
    values: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)

    @property
    def epochs(self) -> list[int]:
        return sorted({e for e, _, _ in self.values})

    def profile(self, epoch: int, statistic: str = "grad_mean_abs", aggregate: str = "mean") -> list[float]:
        return self.values[(epoch, statistic, aggregate)]

    def has(self, epoch: int) -> bool:
        return any(e == epoch for e, _, _ in self.values)

    def add(self, epoch: int, matrix: Sequence[Sequence[float]], aggregate: str) -> None:
        """Store ``matrix[layer][statistic]`` as the ``aggregate`` of ``epoch``."""
        for j, statistic in enumerate(STATISTICS):
            self.values[(epoch, statistic, aggregate)] = [float(row[j]) for row in matrix]

    def keep_epochs(self, last: int) -> None:
        self.values = {k: v for k, v in self.values.items() if k[0] <= last}

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for epoch in self.epochs:
            for i, layer in enumerate(self.layers):
                for statistic in STATISTICS:
                    for aggregate in AGGREGATES:
                        column = self.values.get((epoch, statistic, aggregate))
                        if column is not None:
                            writer.writerow((epoch, i, layer, statistic, aggregate, _fmt(column[i])))
        return buf.getvalue()


def _float32(text: str) -> float:
    """A value as recorded. The recorder's statistics are float32, which ``_fmt``'s nine digits give back exactly:
    such a value is read as that float32 (so that a resumed run's summary equals an uninterrupted one's)."""
    value = float(text)
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return value
    return single if _fmt(single) == text else value


def _fmt(value: float) -> str:
    return "nan" if value != value else repr(value) if math.isinf(value) else f"{value:.9g}"


def parse_gradflow(text: str) -> GradFlowTable:
    layers: dict[int, str] = {}
    values: dict[tuple[int, str, str], dict[int, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        i = int(row["layer_index"])
        layers[i] = row["layer"]
        values.setdefault((int(row["epoch"]), row["statistic"], row["aggregate"]), {})[i] = _float32(row["value"])
    names = [layers[i] for i in sorted(layers)]
    table = GradFlowTable(names)
    for key, by_layer in values.items():
        table.values[key] = [by_layer.get(i, float("nan")) for i in range(len(names))]
    return table


def _complete(table: GradFlowTable, text: str) -> GradFlowTable:
    """``table`` if ``text`` is whole: every statistic and aggregate of every layer for each epoch in it."""
    rundir.check_whole(text, COLUMNS, len(table.epochs) * len(STATISTICS) * len(AGGREGATES) * len(table.layers),
                       f"{len(table.epochs)} epochs of {len(table.layers)} layers")
    return table


def load_gradflow(run_dir: str | Path) -> GradFlowTable | None:
    """``RUN_DIR/gradflow.csv`` as a table, or None when the run recorded none."""
    return rundir.load_table(Path(run_dir), rundir.GRADFLOW, lambda text: _complete(parse_gradflow(text), text))
