"""ablate plugin: the ``mlflow`` callback, which mirrors each run into MLflow.

One MLflow run per ablate run, named after its arm (``ablate.tracking.describe``):
parameters are the resolved recipe flattened (``train.lr``, ``model.norm``, ...), tags
the arm, arch, norm, shortcut, seed, run hash and run directory. Each row of
``metrics.csv`` is logged once it is saved, with the epoch as step. At the end: the test
loss and accuracy, the gradient-flow verdicts (tags) and ratios (metrics), at the end and
at initialisation, and the artifacts ``summary.json``, ``recipe.toml`` and ``figures/``.
The runs of a sweep are children of one parent run, named after the sweep directory.
A resumed run continues its MLflow run: the id is kept in the run directory.
mlflow is imported when a run starts, so that loading the plugin stays fast.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ablate.hookspecs import Register, hookimpl
from ablate.registry import AblateError

__version__ = "0.1.0"
BATCH = 100  # MLflow takes at most 100 params and 1,000 metrics per log_batch


class MlflowLogger:
    """Mirror the run into MLflow: ``tracking_uri`` (default: $MLFLOW_TRACKING_URI, else ./mlruns), ``experiment``."""

    records_only = True

    def __init__(self, *, tracking_uri: str | None = None, experiment: str = "ablate", artifacts: bool = True) -> None:
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        self.experiment, self.artifacts = experiment, artifacts
        self.client: Any = None
        self.mirror: Any = None
        self.run_id = ""

    def on_run_start(self, state: Any) -> None:
        from ablate.tracking import Mirror, describe

        self.client = _client(self.tracking_uri)
        info = describe(state.run_dir, state.config)
        self.mirror = Mirror(state.run_dir, "mlflow", self.tracking_uri)
        resumed = self.mirror.resumed
        self.run_id = self.mirror.run_id(lambda: self._create(info))
        if resumed:
            self.client.update_run(self.run_id, status="RUNNING")
        self._send()

    def on_epoch_start(self, state: Any) -> None:
        self._send()

    def on_run_end(self, state: Any) -> None:
        from mlflow.entities import Metric, RunTag

        from ablate.tracking import final_values

        self._send()
        numbers, labels = final_values(state.metrics)
        now, step = int(time.time() * 1000), int(state.metrics.get("epochs_completed") or state.epoch)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in numbers.items()],
                              tags=[RunTag(k, v) for k, v in labels.items()])
        if self.artifacts:
            self._log_artifacts(state)
        self.client.set_terminated(self.run_id)

    def _create(self, info: Any) -> str:
        from mlflow.entities import Param

        from ablate.tracking import folder_lock, shared_run_id

        if info.sweep is None:
            experiment_id = self._experiment_id()
        else:  # a sweep's runs start together: two could each create the experiment, under one name
            with folder_lock(info.sweep):
                experiment_id = self._experiment_id()
        tags = dict(info.tags)
        if info.sweep is not None:
            tags["mlflow.parentRunId"] = shared_run_id(info.sweep, "mlflow", self.tracking_uri,
                                                       lambda: self._create_parent(experiment_id, info.sweep))
        run_id = self.client.create_run(experiment_id, run_name=info.name, tags=tags).info.run_id
        params = [Param(k, v) for k, v in info.params.items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(run_id, params=params[i:i + BATCH])
        return run_id

    def _create_parent(self, experiment_id: str, sweep: Path) -> str:
        """The sweep's parent run: a finished run that holds its runs as children."""
        run_id = self.client.create_run(experiment_id, run_name=sweep.name, tags={"sweep_dir": str(sweep)}).info.run_id
        self.client.set_terminated(run_id)
        return run_id

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except Exception:  # created meanwhile by another run of the sweep
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _send(self) -> None:
        """Log the rows of metrics.csv that MLflow does not have yet."""
        from mlflow.entities import Metric

        from ablate.tracking import metric_rows

        rows = self.mirror.unsent()
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, epoch) for epoch, values in metric_rows(rows) for k, v in values.items()]
        for i in range(0, len(metrics), 10 * BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 10 * BATCH])
        self.mirror.sent(rows)

    def _log_artifacts(self, state: Any) -> None:
        from ablate import rundir
        from ablate.tracking import run_figures

        self.client.log_text(self.run_id, rundir.summary_text(state.metrics), rundir.SUMMARY)
        self.client.log_artifact(self.run_id, str(state.run_dir / rundir.RECIPE))
        for figure in run_figures(state.run_dir, state.config):
            self.client.log_artifact(self.run_id, str(figure), rundir.FIGURES)


def _client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``, or one line saying what is wrong."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise AblateError("callback mlflow needs MLflow: pip install ablate-mlflow (or mlflow-skinny)") from None
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this before using its file store
    try:
        return MlflowClient(uri)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AblateError(f"callback mlflow: cannot use the tracking store {uri}: {reason}; set tracking_uri "
                          f"(a file: URI or a server's http:// address) or MLFLOW_TRACKING_URI") from None


@hookimpl
def register_callbacks(register: Register) -> None:
    register("mlflow", MlflowLogger)
