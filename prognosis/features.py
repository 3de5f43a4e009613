"""The model's input table: radiomics features joined with encoded clinical variables on PatientID.

Clinical variables come from :func:`hecktor_nnunet.io.clinical.read_clinical` (2022 and 2025 schemas
alike) and are encoded as numbers with the prefix ``CLIN_``; missing values stay NaN (xgboost learns
a default direction for them; the other families impute inside their pipeline). The centre is never
a feature (it is the grouping variable of the validation).

Patients are matched by :func:`hecktor_nnunet.io.ids.normalise_id` on both tables (``chum_001`` and
``CHUM-001`` are one patient). A table listing a patient twice is refused; a patient present in one
table only, or without the task's target, is named (:class:`Joined` keeps who and why), never dropped
without a word.
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
from hecktor_nnunet.io.ids import centre_of, normalise_id
from hecktor_nnunet.prognosis.radiomics import read_features

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
    left_out : dict
        Reason -> PatientIDs not used (``features_without_clinical``, ``clinical_without_features``,
        ``without_target``).
    """

    X: pd.DataFrame
    y: np.ndarray
    centres: np.ndarray
    meta: dict
    radiomics_columns: list[str]
    left_out: dict[str, list[str]]

    def inputs_report(self) -> dict:
        """What a report records about the inputs: patients used, and who was left out and why."""
        return {"n_patients_used": int(len(self.X)), "left_out": self.left_out}


def clinical_columns(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Encoded column names (``CLIN_HPV``) of clinical columns given by schema name (``HPV Status``) or encoded name."""
    known = {**CLINICAL_NUMERIC, **CLINICAL_STAGES}
    by_key = {k.lower(): v for k, v in known.items()} | {v.lower(): v for v in known.values()}
    unknown = [n for n in names if n.strip().lower() not in by_key]
    if unknown:
        raise ValueError(f"unknown clinical column(s) {unknown}; known: {', '.join(known)} "
                         f"(or {', '.join(known.values())})")
    return tuple(dict.fromkeys(by_key[n.strip().lower()] for n in names))


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
    """The target columns of ``task`` indexed by PatientID (rows with a missing target kept as NaN)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    cols = ["Relapse", "RFS"] if task == "rfs" else ["HPV Status"]
    missing = [c for c in cols if c not in clinical.columns]
    if missing:
        raise ValueError(f"clinical table has no {missing} column(s), needed for task {task}")
    return clinical.set_index(clinical["PatientID"].astype(str))[cols].apply(pd.to_numeric, errors="coerce")


def radiomics_columns(features: pd.DataFrame) -> list[str]:
    """The feature columns of a features table (everything but PatientID and clinical columns)."""
    return [c for c in features.columns if c != "PatientID" and not c.startswith(CLINICAL_PREFIX)]


def patient_index(table: pd.DataFrame, source: str) -> pd.Index:
    """The table's PatientIDs, normalised; a patient listed twice is an error naming it and the table."""
    raw = table["PatientID"] if "PatientID" in table.columns else pd.Series(table.index)
    ids = pd.Index([normalise_id(str(v)) for v in raw], name="PatientID")
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise ValueError(f"{source}: patient(s) listed more than once: {', '.join(dup)}")
    return ids


@dataclass
class Joined:
    """The model's input table and who was in one table only."""

    X: pd.DataFrame
    features_without_clinical: list[str]
    clinical_without_features: list[str]


def model_inputs(features: pd.DataFrame | None, clinical: pd.DataFrame | None, task: str,
                 use_radiomics: bool = True, *, exclude_clinical: tuple[str, ...] = (),
                 sources: tuple[str, str] = ("features table", "clinical table")) -> Joined:
    """Join radiomics and encoded clinical columns on the normalised PatientID.

    Parameters
    ----------
    features, clinical : DataFrame or None
        The features table and the clinical table (schema of :mod:`hecktor_nnunet.io.clinical`).
    task : {"rfs", "hpv"}
    use_radiomics : bool
        False: the features table is not used.
    exclude_clinical : tuple of str
        Encoded clinical columns left out (e.g. ``CLIN_HPV``, unknown at test time).
    sources : (str, str)
        How the two tables are named in messages (their files).

    Returns
    -------
    Joined
        ``X`` holds the patients present in both tables (when both are given).
    """
    parts, ids = [], []
    if features is not None and use_radiomics:
        index = patient_index(features, sources[0])
        parts.append(pd.DataFrame(features[radiomics_columns(features)].to_numpy(dtype=float), index=index,
                                  columns=radiomics_columns(features)))
        ids.append(index)
    if clinical is not None:
        index = patient_index(clinical, sources[1])
        c = encode_clinical(clinical).set_axis(index, axis=0)
        parts.append(c.drop(columns=[x for x in c.columns if x in EXCLUDED[task] or x in exclude_clinical]))
        ids.append(index)
    if not parts:
        raise ValueError("no inputs: give a features table, a clinical table, or both")
    X = parts[0]
    for p in parts[1:]:
        X = X.join(p, how="inner")
    X.index.name = "PatientID"
    only = ([sorted(set(ids[0]) - set(ids[1])), sorted(set(ids[1]) - set(ids[0]))] if len(ids) == 2 else [[], []])
    for names, where in zip(only, (f"in the {sources[0]} but not the {sources[1]}",
                                   f"in the {sources[1]} but not the {sources[0]}")):
        if names:
            log.warning("%d patient(s) %s, left out: %s", len(names), where, _list(names))
    return Joined(X, *only)


def _list(ids: list[str], limit: int = 20) -> str:
    return ", ".join(ids[:limit]) + (f" ... (+{len(ids) - limit})" if len(ids) > limit else "")


def build_dataset(features: str | Path | None, clinical: str | Path, task: str, use_radiomics: bool = True,
                  exclude_clinical: tuple[str, ...] = ()) -> Dataset:
    """Read, encode and join the tables for training or cross-validation (:func:`dataset_from_tables`).

    Parameters
    ----------
    features : path or None
        Features table from ``hecktor-radiomics`` (CSV or Parquet); None for a clinical-only model.
    clinical : path
        Clinical table (any edition, CSV or Parquet) with the task's target columns.
    task : {"rfs", "hpv"}
    use_radiomics : bool
        False: only clinical variables (the features table, if given, is still read but not used).
    exclude_clinical : tuple of str
        Encoded clinical columns left out of the inputs.
    """
    feat, meta = read_features(features) if features is not None else (None, {})
    return dataset_from_tables(feat, read_clinical(clinical), task, use_radiomics, meta=meta,
                               exclude_clinical=exclude_clinical, sources=(str(features), str(clinical)))


def dataset_from_tables(features: pd.DataFrame | None, clinical: pd.DataFrame, task: str,
                        use_radiomics: bool = True, *, meta: dict | None = None,
                        exclude_clinical: tuple[str, ...] = (),
                        sources: tuple[str, str] = ("features table", "clinical table")) -> Dataset:
    """The model-ready :class:`Dataset` of a features table and a clinical table (in the schema).

    Patients in one table only, or without the task's target, are left out and named (warning and
    ``Dataset.left_out``); an RFS of 0 days or less is an error naming the patients.
    """
    joined = model_inputs(features, clinical, task, use_radiomics, exclude_clinical=exclude_clinical,
                          sources=sources)
    t = targets(clinical, task).set_axis(patient_index(clinical, sources[1]), axis=0)
    known = t.dropna().index
    without = sorted(set(joined.X.index) - set(known))
    if without:
        log.warning("%d patient(s) without a %s target (%s missing), left out: %s", len(without), task,
                    "/".join(t.columns), _list(without))
    ids = joined.X.index.intersection(known)
    if len(ids) == 0:
        raise ValueError(f"no patient has both features and a {task} target (check the PatientID columns of "
                         f"{sources[0]} and {sources[1]})")
    X, t = joined.X.loc[ids], t.loc[ids]
    if task == "rfs":
        from sksurv.util import Surv

        bad = t.index[t["RFS"] <= 0]
        if len(bad):
            raise ValueError(f"{sources[1]}: RFS must be more than 0 days; patient(s) {_list(sorted(bad))} "
                             f"have {sorted(set(t.loc[bad, 'RFS'].tolist()))[:5]}")
        y = Surv.from_arrays(event=t["Relapse"].to_numpy().astype(bool), time=t["RFS"].to_numpy(dtype=float))
    else:
        y = t["HPV Status"].to_numpy().astype(int)
    centres = np.asarray([centre_of(i) for i in X.index])
    rad = radiomics_columns(features) if (features is not None and use_radiomics) else []
    left = {"features_without_clinical": joined.features_without_clinical,
            "clinical_without_features": joined.clinical_without_features, "without_target": without}
    return Dataset(X, y, centres, (meta or {}) if use_radiomics else {}, rad, left)
