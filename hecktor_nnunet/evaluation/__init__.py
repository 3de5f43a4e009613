"""Scoring the three tasks against the truth: ``hecktor-evaluate seg|rfs|hpv``.

``segmentation`` (Task 1), ``outcomes`` (Tasks 2 and 3), ``tasks`` (each task's headline metric and
figure), ``plots`` (the figures); the metric definitions are in :mod:`hecktor_nnunet.metrics`.
The Python entry points are importable from here.
"""

from hecktor_nnunet.evaluation.common import EvaluationError
from hecktor_nnunet.evaluation.outcomes import (RFS_HORIZONS_DAYS, TRUTH_RULES, evaluate_hpv, evaluate_rfs,
                                                format_outcome, read_predictions)
from hecktor_nnunet.evaluation.segmentation import (evaluate_segmentation, format_seg_summary, format_segmentation,
                                                    seg_conventions, seg_core_metrics, seg_summary)
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS

__all__ = ["EvaluationError", "OUTCOME_TASKS", "RFS_HORIZONS_DAYS", "SEG_METRICS", "TRUTH_RULES", "evaluate_hpv",
           "evaluate_rfs", "evaluate_segmentation", "format_outcome", "format_seg_summary", "format_segmentation",
           "read_predictions", "seg_conventions", "seg_core_metrics", "seg_summary"]
