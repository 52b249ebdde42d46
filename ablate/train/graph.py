"""The whole training step in one CUDA graph (``train.graph = "step"``).

Torch's "whole-network capture" (CUDA semantics notes, "CUDA Graphs"): forward, loss,
backward, the gradient-flow statistics and the fused Adam/AdamW step are recorded once and
replayed per batch, so a step costs one launch instead of ~500. How:

- the optimiser's groups become ``capturable`` and their learning rate a device tensor, which
  ``ablate.train.setup.set_lr`` fills per epoch, so the schedule reaches the captured step;
- the first batch is copied into static input and target buffers; a few warm-up steps run on
  a side stream (cuDNN's choices, the optimiser's state, the stream's cuBLAS workspace), after
  which the weights, buffers, optimiser state and RNG are put back as they were, so the first
  replay starts where the eager step would; the capture then runs on the same stream;
- every batch is ``copy_``-ed into the static buffers before ``replay()``; the returned loss
  sum and correct count are static outputs, valid until the next replay.

The trainer's loader drops the last partial batch (it gives full batches only, or, with a
training set smaller than one batch, that whole set every step), so every batch has the
captured shape; a batch of another shape is refused. ``unsupported`` says in one line why
a run cannot be graphed (CPU, fp16's GradScaler, SGD, callbacks that run Python after every
backward); the trainer then prints it and runs the eager step.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ablate.registry import AblateError
from ablate.train.setup import Precision

MODES = ("none", "step")
WARMUP_STEPS = 3
GRAPH_OPTIMIZERS = ("adam", "adamw")
Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def unsupported(device: torch.device, precision: Precision, optimizer: str, per_step: Sequence[str] = ()) -> str | None:
    """Why the step cannot be captured here, in a few words; None when it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, this run is on {device.type}"
    if precision.scaler is not None:
        return "amp fp16's GradScaler is not captured (use amp bf16 or off)"
    if optimizer not in GRAPH_OPTIMIZERS:
        return f"only a fused {' or '.join(GRAPH_OPTIMIZERS)} is captured, not {optimizer}"
    if per_step:
        return f"callback {', '.join(per_step)} runs Python after every backward"
    return None


def fallback_message(reason: str) -> str:
    return f"train.graph = 'step' not applied: {reason}; training with the eager step"


def capturable_lr(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make each group capturable with its learning rate as a device tensor (``set_lr`` fills it)."""
    for group in optimizer.param_groups:
        lr = group["lr"]
        group["lr"] = lr if isinstance(lr, torch.Tensor) else torch.tensor(float(lr), device=device)
        group["capturable"] = True


@dataclass
class Snapshot:
    """Copies of the model's weights and buffers, the optimiser's state tensors and the RNG."""

    tensors: list[tuple[torch.Tensor, torch.Tensor]]
    optimizer_state: dict[int, torch.Tensor]
    cpu_rng: torch.Tensor
    cuda_rng: torch.Tensor | None


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> Snapshot:
    live = [*model.parameters(), *model.buffers()]
    saved = {id(t): t.detach().clone() for state in optimizer.state.values() for t in state.values()
             if isinstance(t, torch.Tensor)}
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return Snapshot([(t, t.detach().clone()) for t in live], saved, torch.get_rng_state(), cuda_rng)


@torch.no_grad()
def restore(snap: Snapshot, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Put back what ``snap`` holds, in place (the tensors keep their memory); optimiser state created
    since is zeroed, which for Adam is its fresh state (step 0, zero moments)."""
    for live, saved in snap.tensors:
        live.copy_(saved)
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                before = snap.optimizer_state.get(id(value))
                if before is None:
                    value.zero_()
                else:
                    value.copy_(before)
    torch.set_rng_state(snap.cpu_rng)
    if snap.cuda_rng is not None:
        torch.cuda.set_rng_state(snap.cuda_rng, device)


@contextlib.contextmanager
def side_stream(device: torch.device, stream: torch.cuda.Stream | None = None) -> Iterator[None]:
    """Run the block on ``stream`` (a fresh one by default), which waits for, and is then waited for by, the
    current stream; nothing on the CPU."""
    if device.type != "cuda":
        yield
        return
    stream, current = stream or torch.cuda.Stream(device), torch.cuda.current_stream(device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        yield
    current.wait_stream(stream)


def warm_up(body: Callable[[], object], steps: int, model: nn.Module, optimizer: torch.optim.Optimizer,
            device: torch.device, stream: torch.cuda.Stream | None = None) -> None:
    """Run ``steps`` training steps on a side stream, then restore the model, optimiser and RNG."""
    snap = snapshot(model, optimizer, device)
    with side_stream(device, stream), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*capturable=True.*")  # the warm-up steps run uncaptured
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            body()
    restore(snap, optimizer, device)


class StaticBatch:
    """Input and target buffers whose memory a captured graph reads; batches are copied into them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.clone(), y.clone()  # clone keeps channels_last

    def load(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape != self.x.shape or y.shape != self.y.shape:
            raise AblateError(f"train.graph = 'step' captured batches of shape {tuple(self.x.shape)}, got "
                              f"{tuple(x.shape)}; use train.graph = 'none' for batches of varying size")
        self.x.copy_(x)
        self.y.copy_(y)


class GraphedStep:
    """``step(x, y) -> (summed loss, correct count)``: the training step, captured on its first call.

    ``record`` (the gradient-flow recorder's ``record_on_device``) runs after backward inside
    the graph. Construct it after the optimiser's state is loaded (a resumed run).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision,
                 device: torch.device, record: Callable[[], object] | None = None,
                 warmup: int = WARMUP_STEPS) -> None:
        self.model, self.optimizer, self.precision, self.device = model, optimizer, precision, device
        self.record, self.warmup = record, warmup
        self.batch: StaticBatch | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        capturable_lr(optimizer, device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batch is None:
            self._capture(x, y)
        assert self.batch is not None and self.graph is not None and self.outputs is not None
        self.batch.load(x, y)
        self.graph.replay()
        return self.outputs

    def _body(self, record: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The eager step of ``ablate.train.step.train_step`` without zero_grad (captured grads are overwritten)."""
        assert self.batch is not None
        x, y = self.batch.x, self.batch.y
        autocast = (torch.autocast(self.device.type, dtype=self.precision.dtype, cache_enabled=False)
                    if self.precision.dtype is not None else contextlib.nullcontext())
        with autocast:
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        if record and self.record is not None:
            self.record()
        self.optimizer.step()
        return loss.detach() * len(y), (logits.detach().argmax(1) == y).sum()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = StaticBatch(x, y)
        stream = torch.cuda.Stream(self.device)  # warm-up and capture share it: its cuBLAS workspace exists before capture
        warm_up(lambda: self._body(record=False), self.warmup, self.model, self.optimizer, self.device, stream)
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates the grads in the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            self.outputs = self._body(record=True)


def per_step_callbacks(callbacks: Sequence[object], graphed: Sequence[object] = ()) -> list[str]:
    """Names of the callbacks that run Python after every backward, except those in ``graphed``."""
    return [type(c).__name__ for c in callbacks if hasattr(c, "on_after_backward") and c not in graphed]


def graph_step(mode: str, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision,
               device: torch.device, optimizer_name: str, record: Callable[[], object] | None = None,
               per_step: Sequence[str] = (), report: Callable[[str], object] = print) -> GraphedStep | None:
    """A ``GraphedStep`` for ``mode = "step"`` where it applies; otherwise None (``report``-ing why, once)."""
    if mode != "step":
        return None
    reason = unsupported(device, precision, optimizer_name, per_step)
    if reason is not None:
        report(fallback_message(reason))
        return None
    return GraphedStep(model, optimizer, precision, device, record)
