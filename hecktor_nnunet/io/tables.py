"""Tables as people write them: the CSV dialect found, and the one rule for a patient listed twice.

Every table the tools read by patient (clinical tables, SUV factors, RFS/HPV predictions) is read
with :func:`read_table`: the separator (comma, semicolon or tab) is detected from the first lines,
quotes respected; decimal commas (``57,5``) are detected in semicolon- and tab-separated files; a
UTF-8 byte-order mark is dropped; rows with every cell empty (``;;;;`` lines of spreadsheet
exports) are skipped. :func:`collapse_duplicates` applies one rule to ids listed twice (after
:func:`~hecktor_nnunet.io.ids.normalise_id`): identical rows become one, with a warning; rows that
differ are an error naming the patient, the file and the columns that differ.
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.io.problems import ERROR, WARNING, Problem

SEPARATORS = (",", ";", "\t")
SNIFF_LINES = 50  #: lines read to detect the dialect
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


def sniff_dialect(lines: list[str]) -> dict[str, str]:
    """The separator and decimal mark of CSV text lines: ``{"separator": ";", "decimal": ","}``.

    The separator is the one whose rows most often have as many fields as the header, then the one
    giving the most columns (comma on a tie, e.g. a one-column table). The decimal mark is a comma
    when the separator is not and some field is a number written with a comma.
    """
    best, best_score = ",", (-1.0, 0)
    for sep in SEPARATORS:
        rows = [r for r in csv.reader(lines, delimiter=sep) if any(f.strip() for f in r)]
        if not rows:
            continue
        body = rows[1:] or rows
        score = (sum(len(r) == len(rows[0]) for r in body) / len(body), len(rows[0]))
        if score > best_score:
            best, best_score = sep, score
    decimal = "."
    if best != ",":
        fields = itertools.chain.from_iterable(csv.reader(lines[1:], delimiter=best))
        decimal = "," if any(_DECIMAL_COMMA.match(f) for f in fields) else "."
    return {"separator": best, "decimal": decimal}


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a CSV (any common dialect, see the module docstring) or Parquet table.

    Returns
    -------
    (DataFrame, dict)
        The table, and how it was read: ``{"file", "format", "separator", "decimal"}`` (separator
        spelled ``comma``/``semicolon``/``tab``), for manifests and messages.

    Raises
    ------
    ValueError
        The file cannot be parsed or decoded; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path), {"file": str(path), "format": "parquet"}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            dialect = sniff_dialect(list(itertools.islice(f, SNIFF_LINES)))
        df = pd.read_csv(path, sep=dialect["separator"], decimal=dialect["decimal"], encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"cannot read table {path}: {str(e).strip().splitlines()[-1]}") from e
    df = df.dropna(how="all").reset_index(drop=True)
    return df, {"file": str(path), "format": "csv", "separator": _SEPARATOR_NAMES[dialect["separator"]],
                "decimal": "comma" if dialect["decimal"] == "," else "point"}


def values_differ(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise "the values differ" (missing equals missing): as numbers when both are numeric
    (57 and 57.0 agree), else as stripped text."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return ~np.isclose(x, y, rtol=1e-9, atol=0.0, equal_nan=True)
    na_a, na_b = pd.isna(np.asarray(a, dtype=object)), pd.isna(np.asarray(b, dtype=object))
    text = np.char.strip(np.asarray(a, dtype=str)) != np.char.strip(np.asarray(b, dtype=str))
    return (na_a != na_b) | (~na_a & ~na_b & text)


def collapse_duplicates(df: pd.DataFrame, source: str, id_col: str = "PatientID"
                        ) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per id: identical repeated rows collapsed (warning); rows that differ refused (error).

    Ids must already be normalised. The table returned keeps the first row of each id (for a
    conflict too: the caller refuses the table when any problem is an error).

    Returns
    -------
    (DataFrame, list of Problem)
        Code ``duplicate_row``; an error names the columns that differ and their values.
    """
    repeated = df[id_col].duplicated(keep=False)
    if not repeated.any():
        return df, []
    problems = []
    for pid, rows in df[repeated].groupby(id_col, sort=True):
        n = len(rows)
        first = np.zeros(n - 1, dtype=int)
        differ = [c for c in rows.columns if c != id_col and values_differ(rows[c].iloc[1:], rows[c].iloc[first]).any()]
        if differ:
            detail = "; ".join(f"{c}: {' vs '.join(shown(v) for v in rows[c])}" for c in differ)
            problems.append(Problem(str(pid), source, "duplicate_row",
                                    f"listed {n} times with different values in column(s) {differ} ({detail}); "
                                    "keep one row per patient", ERROR))
        else:
            problems.append(Problem(str(pid), source, "duplicate_row",
                                    f"listed {n} times with identical values; read as one row", WARNING))
    return df[~df[id_col].duplicated(keep="first")].reset_index(drop=True), problems


def shown(value) -> str:
    """A cell's value for a message: ``'maybe'``, ``3``, ``2.5`` or ``missing``."""
    return "missing" if pd.isna(value) else repr(value.item() if isinstance(value, np.generic) else value)
