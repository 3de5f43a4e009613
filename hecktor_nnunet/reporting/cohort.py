"""The cohort table ("Table 1"): who the patients are, from the clinical table written by hecktor-convert.

One column of all patients, then one per group (for the demo: the prognosis training and held-out
patients). Rows: patients, age (median [IQR]), sex, HPV status, T, N and M stage, relapses and the
median follow-up by reverse Kaplan-Meier. A category is listed when some patient has it; counts are
``n`` and the percentage of the column's patients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from hecktor_nnunet.io.clinical import read_clinical

#: Coded clinical columns as rows of the table: column -> (row title, {code: category}).
CODED_ROWS = {"Gender": ("Sex", {1: "male", 0: "female"}),
              "HPV Status": ("HPV status", {1: "positive", 0: "negative"})}
#: Staging columns of the clinical schema and their row titles.
STAGE_ROWS = {"T-stage": "T stage", "N-stage": "N stage", "M-stage": "M stage"}
ALL = "all patients"


def median_follow_up(time: Sequence[float], event: Sequence[float]) -> float | None:
    """Median follow-up by reverse Kaplan-Meier: censoring is the event, a relapse censors follow-up.

    Parameters
    ----------
    time : array-like, shape (n,)
        RFS (days).
    event : array-like, shape (n,)
        1 relapse, 0 censored.

    Returns
    -------
    float or None
        The first time where the reverse Kaplan-Meier estimate is at most 0.5 (days); None when it
        never falls that low (e.g. no patient censored) or there is no patient.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    ok = np.isfinite(t) & np.isfinite(e)
    if not ok.any():
        return None
    x, s = kaplan_meier_estimator(e[ok] == 0, t[ok])
    below = np.nonzero(s <= 0.5)[0]
    return float(x[below[0]]) if below.size else None


def _count(values: pd.Series, n: int) -> dict:
    k = int(values.sum())
    return {"n": k, "percent": 100.0 * k / n if n else None}


def _stage_order(level: str) -> tuple:
    """``T1 < T2 < T3 < T4 < T4A < TX``: by the number, then the rest."""
    digits = "".join(c for c in level if c.isdigit())
    return (int(digits) if digits else 99, level)


def _rows(df: pd.DataFrame, columns: Mapping[str, pd.DataFrame]) -> list[dict]:
    """The rows of the table: ``characteristic``, ``category``, one cell per column."""
    rows: list[dict] = [{"characteristic": "Patients", "category": "", "values": {c: {"n": len(d)}
                                                                                 for c, d in columns.items()}}]

    def categories(title: str, series_of, levels: Sequence, names: Mapping) -> None:
        for level in list(levels) + [None]:
            cells = {}
            for c, d in columns.items():
                s = series_of(d)
                cells[c] = _count(s.isna() if level is None else s == level, len(d))
            if level is None and not any(v["n"] for v in cells.values()):
                continue
            rows.append({"characteristic": title, "category": "unknown" if level is None else names.get(level, level),
                         "values": cells})

    if "Age" in df.columns:
        cells = {}
        for c, d in columns.items():
            age = pd.to_numeric(d["Age"], errors="coerce").dropna()
            q1, med, q3 = (np.percentile(age, [25, 50, 75]) if len(age) else (None, None, None))
            cells[c] = {"median": med, "q1": q1, "q3": q3, "n": int(len(age))}
        rows.append({"characteristic": "Age (years)", "category": "median [IQR]", "values": cells})
    for col, (title, names) in CODED_ROWS.items():
        if col in df.columns:
            categories(title, lambda d, col=col: pd.to_numeric(d[col], errors="coerce"), list(names), names)
    for col, title in STAGE_ROWS.items():
        if col in df.columns:
            levels = sorted({str(v) for v in df[col].dropna()}, key=_stage_order)
            categories(title, lambda d, col=col: d[col].map(lambda v: v if pd.isna(v) else str(v)), levels, {})
    if "Relapse" in df.columns:
        categories("Outcome", lambda d: pd.to_numeric(d["Relapse"], errors="coerce"), [1], {1: "relapse"})
    if {"RFS", "Relapse"} <= set(df.columns):
        rows.append({"characteristic": "Follow-up (days)", "category": "median (reverse Kaplan-Meier)",
                     "values": {c: {"median": median_follow_up(d["RFS"], d["Relapse"])} for c, d in columns.items()}})
    return rows


def cohort_section(clinical_csv: Path, groups: Mapping[str, Sequence[str]] | None = None) -> dict:
    """The cohort table of a clinical table (any edition, read by :func:`~hecktor_nnunet.io.clinical.read_clinical`).

    Parameters
    ----------
    clinical_csv : path
        The clinical table (``clinical.csv`` of a dataset written by hecktor-convert).
    groups : mapping of str to list of str, optional
        Further columns: group name -> patient ids (ids missing from the table are counted in
        ``not_in_table``).

    Returns
    -------
    dict
        ``table`` (the file), ``columns`` (name -> patients), ``not_in_table`` (group -> ids without a
        row), ``rows`` (``characteristic``, ``category``, ``values``: column -> cell). A cell is a count
        ``{"n", "percent"}``, an age ``{"median", "q1", "q3", "n"}`` or a follow-up ``{"median"}``.
    """
    df = read_clinical(clinical_csv)
    ids = df["PatientID"].astype(str)
    columns = {ALL: df}
    missing = {}
    for name, members in (groups or {}).items():
        wanted = {str(p) for p in members}
        columns[name] = df[ids.isin(wanted)]
        missing[name] = sorted(wanted - set(ids))
    return {"table": str(clinical_csv), "columns": {c: len(d) for c, d in columns.items()},
            "not_in_table": {k: v for k, v in missing.items() if v}, "rows": _rows(df, columns)}


def _number(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}".removesuffix(".0")


def format_cell(cell: Mapping[str, Any]) -> str:
    """A cohort cell as printed: ``12 (40%)``, ``62 [55–70]`` (median [IQR]), ``812`` (median follow-up)."""
    if "q1" in cell:
        if cell["median"] is None:
            return "–"
        return f"{_number(cell['median'])} [{_number(cell['q1'])}–{_number(cell['q3'])}]"
    if "n" in cell:
        return str(cell["n"]) if cell.get("percent") is None else f"{cell['n']} ({cell['percent']:.0f}%)"
    return "not reached" if cell.get("median") is None else _number(cell["median"])
