"""Scoring the three tasks against the truth: ``hecktor-evaluate seg|rfs|hpv``.

``segmentation`` (Task 1), ``outcomes`` (Tasks 2 and 3), ``tasks`` (each task's headline metric and
figure), ``plots`` (the figures); the metric definitions are in :mod:`hecktor_nnunet.metrics`.
The Python entry points are importable from here.
"""

from __future__ import annotations

from hecktor_nnunet._lazy import lazy_exports

# Each name is imported from its module on first use: importing ``evaluation.tasks`` (constants read by
# the prognosis CLI and the report) must not load the scoring modules, pandas and matplotlib.
_HOMES = {
    "hecktor_nnunet.evaluation.common": ("EvaluationError",),
    "hecktor_nnunet.evaluation.outcomes": ("RFS_HORIZONS_DAYS", "TRUTH_RULES", "evaluate_hpv", "evaluate_rfs",
                                           "format_outcome", "read_predictions"),
    "hecktor_nnunet.evaluation.segmentation": ("evaluate_segmentation", "format_seg_summary", "format_segmentation",
                                               "seg_conventions", "seg_core_metrics", "seg_summary"),
    "hecktor_nnunet.evaluation.tasks": ("OUTCOME_TASKS", "SEG_METRICS"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
