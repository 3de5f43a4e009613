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

Coded columns are mapped explicitly, case-insensitively, and the spellings seen are recorded
(``df.attrs["reading"]``): ``HPV Status`` and ``Relapse`` accept 1/0, positive/negative, pos/neg, +/-,
yes/no, true/false; ``Gender`` 1/0, M/F, male/female; ``unknown``, ``NA`` and empty mean missing.
The outcome columns (``HPV Status``, ``Relapse``, ``RFS``) must be readable: another spelling, a
non-numeric RFS or an RFS <= 0 days is an error naming patient, file, column and value (a table
without outcome columns reads fine). Elsewhere an unreadable value is read as missing with a
warning. Each file is read by :func:`~hecktor_nnunet.io.tables.read_table` (comma, semicolon or
tab, decimal commas) and a patient listed twice follows
:func:`~hecktor_nnunet.io.tables.collapse_duplicates`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hecktor_nnunet.io.ids import centre_of, normalise_id
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem, ProblemsError
from hecktor_nnunet.io.tables import collapse_duplicates, read_table, shown, values_differ

log = logging.getLogger(__name__)

SCHEMA = ["PatientID", "Centre", "CenterID", "Age", "Gender", "Tobacco Consumption",
          "Alcohol Consumption", "Performance Status", "Treatment", "M-stage", "T-stage",
          "N-stage", "HPV Status", "Relapse", "RFS", "Surgery", "Chemotherapy", "Weight"]
NUMERIC = ["CenterID", "Age", "Gender", "Tobacco Consumption", "Alcohol Consumption",
           "Performance Status", "Treatment", "HPV Status", "Relapse", "RFS", "Surgery",
           "Chemotherapy", "Weight"]
CATEGORICAL = ["M-stage", "T-stage", "N-stage"]
#: columns whose unreadable values are errors rather than missing values
OUTCOMES = ("HPV Status", "Relapse", "RFS")
#: spellings (lower-cased, stripped) meaning "missing" in a coded column
MISSING_SPELLINGS = frozenset({"", "unknown", "na", "n/a", "nan", "none", "null"})
BINARY_SPELLINGS = {"1": 1, "0": 0, "positive": 1, "negative": 0, "pos": 1, "neg": 0, "+": 1, "-": 0,
                    "yes": 1, "no": 0, "true": 1, "false": 0}
GENDER_SPELLINGS = {"1": 1, "0": 0, "m": 1, "f": 0, "male": 1, "female": 0}
#: coded column -> its accepted spellings (lower-case) and codes
CODED = {"Gender": GENDER_SPELLINGS, "HPV Status": BINARY_SPELLINGS, "Relapse": BINARY_SPELLINGS}

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


class ClinicalTableError(ProblemsError):
    """A clinical table that cannot be used as it is; the message names patient, file, column and value."""


def _key(name: str) -> str:
    # "HPV status (0=-, 1=+)" -> "hpvstatus01"
    return re.sub(r"[^a-z0-9]", "", name.lower())


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Rename a 2022 or 2025 table's columns to the schema; unknown columns are kept as they are."""
    mapping = {}
    for col in df.columns:
        target = _ALIASES.get(_key(str(col)))
        if target and target not in mapping.values():
            mapping[col] = target
    return df.rename(columns=mapping)


def _spelling(value) -> str | None:
    """The text a code is looked up by: stripped, lower-case, a whole number as ``1`` (``1.0``, ``1,0``
    and ``1`` alike); None when missing."""
    if pd.isna(value):
        return None
    text = str(value).strip().lower()
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _code_column(df: pd.DataFrame, col: str, source: str) -> tuple[pd.Series, dict, list[Problem]]:
    """A coded column's values as codes, the spellings seen (as written -> code; None = missing), problems."""
    spellings, strict = CODED[col], col in OUTCOMES
    seen: dict[str, int | None] = {}
    codes, problems = [], []
    for pid, value in zip(df["PatientID"], df[col]):
        key = _spelling(value)
        if key is not None and key not in MISSING_SPELLINGS and key not in spellings:
            problems.append(Problem(pid, source, "clinical_value",
                                    f"column {col!r}: value {shown(value)} is not an accepted spelling "
                                    f"({'/'.join(spellings)}, any case; unknown, NA or empty for missing); "
                                    + ("fix the cell or empty it" if strict else "read as missing"),
                                    ERROR if strict else WARNING))
            codes.append(np.nan)
            continue
        code = spellings.get(key)
        if key is not None:
            seen[value.strip() if isinstance(value, str) else key] = code
        codes.append(np.nan if code is None else code)
    return pd.Series(codes, index=df.index, dtype=float), seen, problems


def _numeric_column(df: pd.DataFrame, col: str, source: str) -> tuple[pd.Series, list[Problem]]:
    """A column as numbers; a problem per value that is not one (an error in an outcome column)."""
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & (raw.astype(str).str.strip() != "") & values.isna()
    strict = col in OUTCOMES
    what = "(fix the cell or empty it)" if strict else "read as missing"
    problems = [Problem(pid, source, "clinical_value", f"column {col!r}: non-numeric value {shown(v)} {what}",
                        ERROR if strict else WARNING)
                for pid, v in zip(df.loc[bad, "PatientID"], raw[bad])]
    return values, problems


def _without_id(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[Problem]]:
    """The rows that have a PatientID; a warning for each row left out (it has values, but no id)."""
    no_id = df["PatientID"].isna() | (df["PatientID"].astype(str).str.strip() == "")
    problems = [Problem("*", source, "no_patient_id",
                        "a row without PatientID left out: "
                        + ", ".join(f"{k}={shown(v)}" for k, v in row.dropna().items()), WARNING)
                for _, row in df[no_id].iterrows()]
    return df[~no_id].copy(), problems


def normalise_table(df: pd.DataFrame, source: str = "") -> tuple[pd.DataFrame, list[Problem]]:
    """Map one raw clinical table to the schema (codes included) and report oddities.

    ``df.attrs["value_maps"]`` of the result holds, per coded column, each spelling seen and its
    code (None = missing). Problems of severity ``error`` mean the table must not be used as is.
    """
    df = normalise_columns(df.copy())
    if "PatientID" not in df.columns:
        raise ValueError(f"clinical table {source or '(unnamed)'} has no PatientID column; "
                         f"columns are {list(df.columns)}")
    df, problems = _without_id(df, source)
    df["PatientID"] = df["PatientID"].astype(str).map(normalise_id)
    value_maps = {}
    for col in CODED:
        if col in df.columns:
            df[col], value_maps[col], probs = _code_column(df, col, source)
            problems += probs
    if "Treatment" not in df.columns and "Chemotherapy" in df.columns:
        df["Treatment"] = pd.to_numeric(df["Chemotherapy"], errors="coerce")
    for col in NUMERIC:
        if col in df.columns and col not in CODED:
            df[col], probs = _numeric_column(df, col, source)
            problems += probs
    if "RFS" in df.columns:
        problems += [Problem(pid, source, "clinical_value", f"column 'RFS': {v:g} days; RFS must be > 0 days "
                             "(end of treatment to relapse or last follow-up)")
                     for pid, v in zip(df["PatientID"], df["RFS"]) if v <= 0]
    for col in CATEGORICAL:
        if col in df.columns:
            df[col] = df[col].where(df[col].isna(), df[col].astype(str).str.strip().str.upper())
            df[col] = df[col].replace({"": np.nan, "NAN": np.nan})
    df["Centre"] = df["PatientID"].map(centre_of)
    df.attrs["value_maps"] = value_maps
    return df, problems


def _read_file(path: Path) -> tuple[pd.DataFrame, list[Problem], dict]:
    """One clinical file in the schema, one row per patient; its problems; how it was read (dialect, codes)."""
    raw, reading = read_table(path)
    df, problems = normalise_table(raw, str(path))
    reading["value_maps"] = df.attrs["value_maps"]
    df, dups = collapse_duplicates(df, str(path))
    return df, problems + dups, reading


def _conflicts(a: pd.DataFrame, b: pd.DataFrame, file_a: str, file_b: str) -> list[Problem]:
    """A problem per patient and column whose non-missing values differ between two files (indexed by id).

    An outcome column (the target of a model) is an error; another column a warning, the earlier
    file's value kept: the release ships one table per task, and refusing a whole conversion over
    an age written twice would leave the user nothing to run.
    """
    common = a.index.intersection(b.index)
    problems = []
    for col in a.columns.intersection(b.columns):
        x, y = a.loc[common, col], b.loc[common, col]
        clash = x.notna().to_numpy() & y.notna().to_numpy() & values_differ(x, y)
        strict = col in OUTCOMES
        problems += [Problem(pid, file_b, "clinical_conflict",
                             f"column {col!r} is {shown(y[pid])} here but {shown(x[pid])} in {file_a}"
                             + ("" if strict else f"; the value of {file_a} kept"), ERROR if strict else WARNING)
                     for pid in common[clash]]
    return problems


def read_clinical_tables(paths: Iterable[Path], extra_rows: list[dict] | None = None
                         ) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and merge clinical tables (any edition) into one row per patient in the schema.

    Values for one patient from several files are combined (a value missing in one file is taken
    from another); non-missing values that differ between files are errors naming both files in an
    outcome column (``HPV Status``, ``Relapse``, ``RFS``), warnings (the earlier file's value kept)
    elsewhere.
    Nothing is raised for bad values: problems of severity ``error`` say the table must not be used.
    ``df.attrs["reading"]`` lists, per file, its dialect and the spellings of its coded columns.
    """
    frames: list[tuple[str, pd.DataFrame]] = []
    problems: list[Problem] = []
    readings: list[dict] = []
    for p in paths:
        df, probs, reading = _read_file(Path(p))
        frames.append((str(p), df.set_index("PatientID")))
        problems += probs
        readings.append(reading)
    if extra_rows:
        df, probs = normalise_table(pd.DataFrame(extra_rows), "ehr.json")
        frames.append(("ehr.json", df.set_index("PatientID")))
        problems += probs
        readings.append({"file": "ehr.json", "format": "json", "value_maps": df.attrs["value_maps"]})
    if not frames:
        return pd.DataFrame(columns=SCHEMA), problems
    for i, (file_b, b) in enumerate(frames):
        for file_a, a in frames[:i]:
            problems += _conflicts(a, b, file_a, file_b)
    merged = frames[0][1]
    for _, nxt in frames[1:]:
        merged = merged.combine_first(nxt)
    merged = merged.reset_index()
    cols = [c for c in SCHEMA if c in merged.columns] + [c for c in merged.columns if c not in SCHEMA]
    merged = merged[cols].sort_values("PatientID").reset_index(drop=True)
    merged.attrs["reading"] = readings
    return merged, problems


def read_clinical(path: str | Path) -> pd.DataFrame:
    """Read one clinical table (CSV in any common dialect, or Parquet; any edition) in the schema.

    Warnings (values read as missing, identical repeated rows read as one) are logged naming
    patient and file, and kept in ``df.attrs["problems"]`` (a list of
    :class:`~hecktor_nnunet.io.problems.Problem`); ``df.attrs["reading"]`` says how it was read.

    Raises
    ------
    ClinicalTableError
        An outcome value that cannot be read (spelling, non-numeric, RFS <= 0) or a patient listed
        twice with different values: every such patient, with file, column and value.
    """
    path = Path(path)
    df, problems, reading = _read_file(path)
    errors = [p for p in problems if not p.usable]
    if errors:
        raise ClinicalTableError(errors)
    for p in problems:
        log.warning("%s", p)
    df.attrs["problems"] = problems
    df.attrs["reading"] = [reading]
    return df
