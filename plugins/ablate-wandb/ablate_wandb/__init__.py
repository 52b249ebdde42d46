"""ablate plugin: the ``wandb`` callback, which mirrors each run into Weights & Biases.

One W&B run per ablate run (``ablate.tracking.describe``): named after its arm, in the
group of its sweep (the sweep directory's name), tagged with arch, norm, shortcut, seed
and run hash, with the resolved recipe as its config. Each row of ``metrics.csv`` is
logged once it is saved, with the epoch as step. At the end: the run's figures as images
(``gradient_heatmap``, ``gradient_flow``, ``training_curves``) and, in the run summary,
the test loss and accuracy and the gradient-flow verdicts and ratios. A resumed run
continues its W&B run (``resume="allow"`` with the id kept in the run directory).
wandb is imported when a run starts, so that loading the plugin stays fast.
"""

from __future__ import annotations

import uuid
from typing import Any

from ablate.hookspecs import Register, hookimpl
from ablate.registry import AblateError

__version__ = "0.1.0"
MODES = ("online", "offline", "disabled")
TAGS = ("arch", "norm", "shortcut", "seed", "run_hash")


class WandbLogger:
    """Mirror the run into W&B: ``project``, ``entity``, ``mode`` (online, offline, disabled; default $WANDB_MODE), ``dir``."""

    records_only = True

    def __init__(self, *, project: str = "ablate", entity: str | None = None, mode: str | None = None,
                 dir: str | None = None) -> None:
        if mode is not None and mode not in MODES:
            raise AblateError(f"callback wandb: mode = {mode!r}: choose one of {', '.join(MODES)}")
        self.project, self.entity, self.mode, self.dir = project, entity, mode, dir
        self.run: Any = None
        self.mirror: Any = None

    def on_run_start(self, state: Any) -> None:
        from ablate.recipe import plain
        from ablate.tracking import Mirror, describe

        wandb = _wandb()
        info = describe(state.run_dir, state.config)
        self.mirror = Mirror(state.run_dir, "wandb", f"{self.entity}/{self.project}" if self.entity else self.project)
        run_id = self.mirror.run_id(lambda: uuid.uuid4().hex[:12])
        self.run = wandb.init(project=self.project, entity=self.entity, id=run_id, resume="allow", name=info.name,
                              group=info.sweep.name if info.sweep else None, config=plain(state.config),
                              tags=[f"{k}:{info.tags[k]}" for k in TAGS], dir=self.dir, mode=self.mode,
                              reinit="finish_previous", settings=wandb.Settings(console="off"))
        self._send()

    def on_epoch_start(self, state: Any) -> None:
        self._send()

    def on_run_end(self, state: Any) -> None:
        from ablate.tracking import final_values, run_figures

        wandb = _wandb()
        last = self._send()
        images = {figure.stem: wandb.Image(str(figure)) for figure in run_figures(state.run_dir, state.config)}
        if images:
            self.run.log(images, step=last)
        numbers, labels = final_values(state.metrics)
        self.run.summary.update({**numbers, **labels})
        self.run.finish()

    def _send(self) -> int:
        """Log the rows of metrics.csv that W&B does not have yet; the last epoch logged."""
        from ablate.tracking import metric_rows

        rows = self.mirror.unsent()
        for epoch, values in metric_rows(rows):
            self.run.log({**values, "epoch": epoch}, step=epoch)
        self.mirror.sent(rows)
        return int(self.mirror.record.get("epoch", 0))


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise AblateError("callback wandb needs wandb: pip install ablate-wandb (or wandb)") from None
    return wandb


@hookimpl
def register_callbacks(register: Register) -> None:
    register("wandb", WandbLogger)
