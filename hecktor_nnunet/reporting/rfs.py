"""What the report adds to a ``hecktor-evaluate rfs`` folder, from its ``per_patient.csv``.

``summary.json`` holds Harrell's C-index with its interval, Uno's C and AUC(t) without. Here, from
the per-patient times, relapses and risks: 95% percentile bootstrap intervals of Uno's C and of the
AUC at each horizon of the summary (:func:`~hecktor_nnunet.metrics.bootstrap.bootstrap_ci`, patients
resampled), and the Kaplan-Meier figure of the risk groups with the numbers at risk under it
(:func:`~hecktor_nnunet.evaluation.plots.km_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.plots import figure_png, km_figure
from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.metrics.survival import time_dependent_auc, uno_c
from hecktor_nnunet.reporting.inputs import ReportError

#: Title of the Kaplan-Meier figure (as hecktor-evaluate draws it).
KM_TITLE = "Predicted risk groups (median split)"


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def rfs_additions(per_patient_csv: Path, summary: dict, n_boot: int = 1000, seed: int = 0
                  ) -> tuple[dict, bytes]:
    """Intervals of Uno's C and AUC(t), the numbers at risk and the Kaplan-Meier figure.

    Parameters
    ----------
    per_patient_csv : path
        ``per_patient.csv`` of ``hecktor-evaluate rfs`` (columns ``RFS`` in days, ``Relapse`` 1/0, ``risk``).
    summary : dict
        Its ``summary.json`` (``uno_c``, ``td_auc``: horizon in days -> AUC).
    n_boot, seed : int
        Bootstrap resamples and seed.

    Returns
    -------
    dict, bytes
        ``uno_c_ci``, ``td_auc_ci`` (horizon -> interval; None where the estimate is missing),
        ``numbers_at_risk`` (``time_days`` and one count per tick and risk group), ``intervals``
        (how they were computed); the figure as PNG.
    """
    df = pd.read_csv(per_patient_csv)
    missing = [c for c in ("RFS", "Relapse", "risk") if c not in df.columns]
    if missing:
        raise ReportError(f"{per_patient_csv} lacks the column(s) {missing}: not a hecktor-evaluate rfs table")
    t, e, r = (df[c].to_numpy(float) for c in ("RFS", "Relapse", "risk"))
    with np.errstate(all="ignore"):  # a resample without comparable pairs is skipped, not worth a warning
        out = _intervals(t, e, r, summary, n_boot, seed)
    fig, _, at_risk = km_figure(t, e, r, title=KM_TITLE)
    out["numbers_at_risk"] = at_risk
    return out, figure_png(fig)


def _intervals(t: np.ndarray, e: np.ndarray, r: np.ndarray, summary: dict, n_boot: int, seed: int) -> dict:
    """Bootstrap intervals of Uno's C and of the AUC at each horizon of ``summary`` (None where it has no value)."""

    def auc_at(h: float):
        return lambda tt, ee, rr: time_dependent_auc(tt, ee, rr, [h])[h]

    return {
        "uno_c_ci": bootstrap_ci(uno_c, t, e, r, n=n_boot, seed=seed) if _finite(summary.get("uno_c")) else None,
        "td_auc_ci": {h: (bootstrap_ci(auc_at(float(h)), t, e, r, n=n_boot, seed=seed) if _finite(v) else None)
                      for h, v in (summary.get("td_auc") or {}).items()},
        "intervals": f"95% percentile bootstrap over patients, {n_boot} resamples, seed {seed}, computed by "
                     "the report from per_patient.csv",
    }
