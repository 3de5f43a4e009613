"""The challenge's three tasks: what each is scored by and what its figure is called, in one place.

``hecktor-evaluate``, ``hecktor-prognosis``, the prognosis cross-validation and the report all take
the headline metric's key and the figure's file name from here.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Task 1's headline metrics, in the order they are printed and reported (``summary.json`` keys).
SEG_METRICS = ("gtvp_dice_mean", "gtvn_dsc_agg", "gtvn_f1_agg", "gtvp_hd95_median", "gtvn_hd95_median")


@dataclass(frozen=True)
class OutcomeTask:
    """An outcome task (Task 2 or 3).

    Attributes
    ----------
    name : str
        ``rfs`` or ``hpv`` (the commands' task argument).
    metric : str
        Key of the headline metric in ``summary.json`` and ``cv_report.json``.
    figure : str
        File name of the task's figure (Kaplan-Meier risk groups or ROC curve).
    title : str
        Section title in the report.
    """

    name: str
    metric: str
    figure: str
    title: str


OUTCOME_TASKS: dict[str, OutcomeTask] = {
    "rfs": OutcomeTask("rfs", "c_index", "km_risk_groups.png", "Relapse-free survival (Task 2)"),
    "hpv": OutcomeTask("hpv", "balanced_accuracy", "roc.png", "HPV status (Task 3)"),
}
