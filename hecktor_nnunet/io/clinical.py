"""The clinical table: 2022 and 2025 column names mapped once to one schema.

The schema keeps the 2025 challenge names (what users know) plus a derived ``Centre`` column:

======================  ==========================================================
column                  values
======================  ==========================================================
PatientID               ``CHUM-001`` (normalised)
Centre                  id prefix (``CHUM``)
CenterID                numeric centre code as released
Age                     years
Gender                  0 female, 1 male (2022 ``F``/``M`` mapped)
Tobacco Consumption     0/1
Alcohol Consumption     0/1
Performance Status      0-4
Treatment               0 radiotherapy only, 1 chemoradiotherapy (2022: from Chemotherapy)
M-stage                 ``M0``/``M1`` (also T-stage, N-stage when present)
HPV Status              0 negative, 1 positive
Relapse                 1 event, 0 censored
RFS                     days from end of treatment
Surgery, Chemotherapy, Weight   2022 extras (kept when present)
======================  ==========================================================

Missing values stay missing (NaN / empty string), never imputed here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hecktor_nnunet.io.ids import centre_of, normalise_id
from hecktor_nnunet.io.problems import WARNING, Problem

log = logging.getLogger(__name__)

SCHEMA = ["PatientID", "Centre", "CenterID", "Age", "Gender", "Tobacco Consumption",
          "Alcohol Consumption", "Performance Status", "Treatment", "M-stage", "T-stage",
          "N-stage", "HPV Status", "Relapse", "RFS", "Surgery", "Chemotherapy", "Weight"]
NUMERIC = ["CenterID", "Age", "Gender", "Tobacco Consumption", "Alcohol Consumption",
           "Performance Status", "Treatment", "HPV Status", "Relapse", "RFS", "Surgery",
           "Chemotherapy", "Weight"]
CATEGORICAL = ["M-stage", "T-stage", "N-stage"]

# lower-cased, punctuation-free source names -> schema name
_ALIASES = {
    "patientid": "PatientID", "patient": "PatientID", "id": "PatientID",
    "centerid": "CenterID", "centreid": "CenterID", "center": "CenterID",
    "age": "Age", "gender": "Gender", "sex": "Gender",
    "tobaccoconsumption": "Tobacco Consumption", "tobacco": "Tobacco Consumption",
    "alcoholconsumption": "Alcohol Consumption", "alcohol": "Alcohol Consumption",
    "performancestatus": "Performance Status",
    "treatment": "Treatment",
    "mstage": "M-stage", "tstage": "T-stage", "nstage": "N-stage",
    "hpvstatus": "HPV Status", "hpvstatus01": "HPV Status", "hpv": "HPV Status",
    "relapse": "Relapse", "rfs": "RFS",
    "surgery": "Surgery", "chemotherapy": "Chemotherapy", "weight": "Weight",
}


def _key(name: str) -> str:
    # "HPV status (0=-, 1=+)" -> "hpvstatus01"
    return re.sub(r"[^a-z0-9]", "", name.lower())


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Rename a 2022 or 2025 table's columns to the schema; unknown columns are kept as they are."""
    mapping = {}
    for col in df.columns:
        target = _ALIASES.get(_key(col))
        if target and target not in mapping.values():
            mapping[col] = target
    return df.rename(columns=mapping)


def normalise_table(df: pd.DataFrame, source: str = "") -> tuple[pd.DataFrame, list[Problem]]:
    """Map one raw clinical table to the schema (codes included) and report oddities."""
    problems: list[Problem] = []
    df = normalise_columns(df.copy())
    if "PatientID" not in df.columns:
        raise ValueError(f"clinical table {source or '(unnamed)'} has no PatientID column; "
                         f"columns are {list(df.columns)}")
    df["PatientID"] = df["PatientID"].astype(str).map(normalise_id)
    if "Gender" in df.columns and df["Gender"].dtype == object:
        g = df["Gender"].astype(str).str.strip().str.upper()
        df["Gender"] = g.map({"M": 1, "MALE": 1, "1": 1, "1.0": 1, "F": 0, "FEMALE": 0, "0": 0, "0.0": 0})
    if "Treatment" not in df.columns and "Chemotherapy" in df.columns:
        df["Treatment"] = pd.to_numeric(df["Chemotherapy"], errors="coerce")
    for col in NUMERIC:
        if col in df.columns:
            before = df[col].notna() & (df[col].astype(str).str.strip() != "")
            df[col] = pd.to_numeric(df[col], errors="coerce")
            bad = before & df[col].isna()
            for pid in df.loc[bad, "PatientID"]:
                problems.append(Problem(pid, source, "clinical_value",
                                        f"non-numeric value in column {col!r} read as missing", WARNING))
    for col in CATEGORICAL:
        if col in df.columns:
            df[col] = df[col].where(df[col].isna(), df[col].astype(str).str.strip().str.upper())
            df[col] = df[col].replace({"": np.nan, "NAN": np.nan})
    df["Centre"] = df["PatientID"].map(centre_of)
    return df, problems


def _differ(a: pd.Series, b: pd.Series, numeric: bool) -> pd.Series:
    """Element-wise "the values differ": as numbers in numeric columns (57 and 57.0 agree), else as text."""
    if numeric:
        x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        return ~np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=0.0, equal_nan=True)
    return a.astype(str) != b.astype(str)


def read_clinical_tables(paths: Iterable[Path], extra_rows: list[dict] | None = None
                         ) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and merge clinical CSVs (any edition) into one row per patient in the schema.

    Values for one patient from several files are combined (first non-missing wins);
    conflicting non-missing values are reported as warnings.
    """
    frames: list[pd.DataFrame] = []
    problems: list[Problem] = []
    for p in paths:
        raw = pd.read_csv(p)
        df, probs = normalise_table(raw, str(p))
        problems += probs
        dup = df["PatientID"].duplicated(keep="first")
        for pid in df.loc[dup, "PatientID"]:
            problems.append(Problem(pid, str(p), "duplicate_id", "patient listed twice; first row kept", WARNING))
        frames.append(df.loc[~dup].set_index("PatientID"))
    if extra_rows:
        df, probs = normalise_table(pd.DataFrame(extra_rows), "ehr.json")
        frames.append(df.set_index("PatientID"))
        problems += probs
    if not frames:
        return pd.DataFrame(columns=SCHEMA), problems
    merged = frames[0]
    for nxt in frames[1:]:
        common = merged.index.intersection(nxt.index)
        for col in merged.columns.intersection(nxt.columns):
            a, b = merged.loc[common, col], nxt.loc[common, col]
            numeric = col in NUMERIC or (pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b))
            clash = a.notna() & b.notna() & _differ(a, b, numeric)
            for pid in common[clash.to_numpy()]:
                problems.append(Problem(pid, "", "clinical_conflict",
                                        f"column {col!r} differs between clinical files "
                                        f"({a[pid]!r} vs {b[pid]!r}); first kept", WARNING))
        merged = merged.combine_first(nxt)
    merged = merged.reset_index()
    cols = [c for c in SCHEMA if c in merged.columns] + [c for c in merged.columns if c not in SCHEMA]
    return merged[cols].sort_values("PatientID").reset_index(drop=True), problems


def read_clinical(path: str | Path) -> pd.DataFrame:
    """Read one clinical table (CSV or Parquet, any edition) in the schema.

    Oddities (non-numeric values read as missing) are logged as warnings naming patient and file,
    and kept in ``df.attrs["problems"]`` (a list of :class:`~hecktor_nnunet.io.problems.Problem`).
    """
    path = Path(path)
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    df, problems = normalise_table(raw, str(path))
    for p in problems:
        log.warning("%s", p)
    df.attrs["problems"] = problems
    return df
