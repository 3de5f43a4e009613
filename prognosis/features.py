"""The model's input table: radiomics features joined with encoded clinical variables on PatientID.

Clinical variables come from :func:`hecktor_nnunet.io.clinical.read_clinical` (2022 and 2025 schemas
alike) and are encoded as numbers with the prefix ``CLIN_``; missing values stay NaN (xgboost learns
a default direction for them; the scikit-survival baselines impute inside their pipeline). The centre
is never a feature (it is the grouping variable of the validation).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.clinical import read_clinical
from hecktor_nnunet.prognosis.radiomics import read_features
from hecktor_nnunet.io.ids import centre_of

log = logging.getLogger(__name__)

TASKS = tuple(OUTCOME_TASKS)
CLINICAL_PREFIX = "CLIN_"
#: Schema column -> encoded feature name (binary and ordinal codes are used as they are).
CLINICAL_NUMERIC = {
    "Age": "CLIN_Age", "Gender": "CLIN_Gender", "Tobacco Consumption": "CLIN_Tobacco",
    "Alcohol Consumption": "CLIN_Alcohol", "Performance Status": "CLIN_PerformanceStatus",
    "Treatment": "CLIN_Treatment", "Surgery": "CLIN_Surgery", "Chemotherapy": "CLIN_Chemotherapy",
    "Weight": "CLIN_Weight", "HPV Status": "CLIN_HPV",
}
#: Stages as ordinal numbers: ``T4a`` -> 4, ``N2b`` -> 2, ``M1`` -> 1; ``Tx``/``Tis``/unknown -> NaN.
CLINICAL_STAGES = {"T-stage": "CLIN_T", "N-stage": "CLIN_N", "M-stage": "CLIN_M"}
#: Columns that must never be model inputs for a task (targets and their proxies).
EXCLUDED = {"rfs": set(), "hpv": {"CLIN_HPV"}}


@dataclass
class Dataset:
    """A model-ready table.

    Attributes
    ----------
    X : DataFrame
        Features indexed by PatientID (radiomics columns then ``CLIN_`` columns).
    y : ndarray
        rfs: structured array (``event``, ``time`` in days) from ``Surv.from_arrays``;
        hpv: int array 0/1.
    centres : ndarray of str
        Centre of each row (validation groups).
    meta : dict
        The features table's metadata (params hash, versions); ``{}`` without radiomics.
    radiomics_columns : list of str
        The radiomics columns of the features table (the model's expected input).
    """

    X: pd.DataFrame
    y: np.ndarray
    centres: np.ndarray
    meta: dict
    radiomics_columns: list[str]


def _stage(value, letter: str) -> float:
    if not isinstance(value, str):
        return float("nan")
    m = re.match(rf"^\s*{letter}\s*([0-4])", value.upper())
    return float(m.group(1)) if m else float("nan")


def encode_clinical(clinical: pd.DataFrame) -> pd.DataFrame:
    """Numeric clinical features (``CLIN_*``) indexed by PatientID; missing stays NaN.

    Parameters
    ----------
    clinical : DataFrame
        A table in the schema of :mod:`hecktor_nnunet.io.clinical`.
    """
    out = pd.DataFrame(index=pd.Index(clinical["PatientID"].astype(str), name="PatientID"))
    for col, name in CLINICAL_NUMERIC.items():
        if col in clinical.columns:
            out[name] = pd.to_numeric(clinical[col], errors="coerce").to_numpy(dtype=float)
    for col, name in CLINICAL_STAGES.items():
        if col in clinical.columns:
            out[name] = [_stage(v, col[0]) for v in clinical[col]]
    return out


def targets(clinical: pd.DataFrame, task: str) -> pd.DataFrame:
    """The target columns of ``task`` indexed by PatientID, rows with a missing target dropped."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    cols = ["Relapse", "RFS"] if task == "rfs" else ["HPV Status"]
    missing = [c for c in cols if c not in clinical.columns]
    if missing:
        raise ValueError(f"clinical table has no {missing} column(s), needed for task {task}")
    t = clinical.set_index(clinical["PatientID"].astype(str))[cols].apply(pd.to_numeric, errors="coerce")
    n_before = len(t)
    t = t.dropna()
    if len(t) < n_before:
        log.info("%d patient(s) without %s dropped", n_before - len(t), "/".join(cols))
    return t


def radiomics_columns(features: pd.DataFrame) -> list[str]:
    """The feature columns of a features table (everything but PatientID and clinical columns)."""
    return [c for c in features.columns if c != "PatientID" and not c.startswith(CLINICAL_PREFIX)]


def model_inputs(features: pd.DataFrame | None, clinical: pd.DataFrame | None,
                 task: str, use_radiomics: bool = True) -> pd.DataFrame:
    """Join radiomics and encoded clinical columns on PatientID (inner join when both are given)."""
    parts = []
    if features is not None and use_radiomics:
        f = features.set_index(features["PatientID"].astype(str))[radiomics_columns(features)]
        parts.append(f.astype(float))
    if clinical is not None:
        c = encode_clinical(clinical)
        parts.append(c.drop(columns=[x for x in c.columns if x in EXCLUDED[task]]))
    if not parts:
        raise ValueError("no inputs: give a features table, a clinical table, or both")
    X = parts[0]
    for p in parts[1:]:
        X = X.join(p, how="inner")
    X.index.name = "PatientID"
    return X


def build_dataset(features: str | Path | None, clinical: str | Path, task: str,
                  use_radiomics: bool = True) -> Dataset:
    """Read, encode and join the tables for training or cross-validation.

    Parameters
    ----------
    features : path or None
        Features table from ``hecktor-radiomics`` (CSV or Parquet); None for a clinical-only model.
    clinical : path
        Clinical table (any edition, CSV or Parquet) with the task's target columns.
    task : {"rfs", "hpv"}
    use_radiomics : bool
        False: only clinical variables (the features table, if given, is still read but not used).
    """
    clin = read_clinical(clinical)
    feat, meta = read_features(features) if features is not None else (None, {})
    for table, path in ((clin, clinical), (feat, features)):
        if table is None:
            continue
        ids = table["PatientID"] if "PatientID" in table.columns else pd.Series(table.index)
        dup = sorted(set(ids[ids.duplicated()].astype(str)))
        if dup:
            raise ValueError(f"{path}: patient(s) listed more than once: {', '.join(dup)}")
    X = model_inputs(feat, clin, task, use_radiomics)
    t = targets(clin, task)
    ids = X.index.intersection(t.index)
    dropped = len(X) - len(ids)
    if dropped:
        log.warning("%d patient(s) have features but no %s target; left out", dropped, task)
    if len(ids) == 0:
        raise ValueError(f"no patient has both features and a {task} target (check the PatientID columns)")
    X, t = X.loc[ids], t.loc[ids]
    if task == "rfs":
        from sksurv.util import Surv

        y = Surv.from_arrays(event=t["Relapse"].to_numpy().astype(bool), time=t["RFS"].to_numpy(dtype=float))
    else:
        y = t["HPV Status"].to_numpy().astype(int)
    centres = np.asarray([centre_of(i) for i in X.index])
    rad = radiomics_columns(feat) if (feat is not None and use_radiomics) else []
    return Dataset(X, y, centres, meta if use_radiomics else {}, rad)
