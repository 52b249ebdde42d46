"""Gradient flow: per-layer statistics while training, a verdict, and the study's figures.

``GradFlowRecorder`` is the training callback the trainer adds when ``[gradflow]
every > 0``; it writes ``RUN_DIR/gradflow.csv`` (format in ``ablate.gradflow.stats``)
and the ``"gradflow"`` entry of ``summary.json``. ``gradient_stats_at_init`` measures
one forward/backward without stepping (also used by ``ablate bench``); ``judge`` and
``verdict_label`` label a per-layer mean |g| profile (rule in ``ablate.gradflow.verdict``);
``ablate.gradflow.plots`` draws the figures (imported on demand: it needs matplotlib).
"""

from ablate.gradflow.recorder import GradFlowRecorder
from ablate.gradflow.stats import (
                                   AGGREGATES,
                                   COLUMNS,
                                   GRADFLOW_CSV,
                                   STATISTICS,
                                   DeviceStatistics,
                                   GradFlowTable,
                                   LayerStats,
                                   gradient_stats_at_init,
                                   load_gradflow,
                                   weight_layers,
)
from ablate.gradflow.verdict import Verdict, judge, verdict_label

__all__ = [
    "AGGREGATES", "COLUMNS", "GRADFLOW_CSV", "STATISTICS", "GradFlowRecorder", "GradFlowTable", "DeviceStatistics",
    "LayerStats", "Verdict", "gradient_stats_at_init", "judge", "load_gradflow", "verdict_label", "weight_layers",
]
