"""How people read the metric keys: one readable name (with its unit) and one rounding per key.

A key is read in parts, so that each part is spelled once: an optional prefix (a region, ``gtvp``,
``gtvn``, or a task of :data:`~hecktor_nnunet.evaluation.tasks.OUTCOME_TASKS`), a measure of
:data:`MEASURES`, and an optional statistic of :data:`STATISTICS`. ``gtvp_hd95_median`` reads
"GTVp HD95 (median, mm)", ``gtvn_dsc_agg`` "GTVn aggregated Dice", ``rfs_c_index_predicted``
"RFS Harrell's C-index (predicted masks)". The report's tables and the evaluation figures take their
headers and axis titles from :func:`quantity`; numbers are shown by :func:`format_number` and
:func:`format_p`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS

#: p-values below this are shown as "< 0.001".
P_FLOOR = 0.001


@dataclass(frozen=True)
class Measure:
    """What a key measures.

    Attributes
    ----------
    name : str
        Readable name ("HD95").
    unit : str
        Unit shown in the label ("mm", "mL"); empty for a ratio or a count.
    digits : int or None
        Decimals shown; None for counts and text (shown as they are).
    p_value : bool
        A p-value (shown by :func:`format_p`).
    """

    name: str
    unit: str = ""
    digits: int | None = 3
    p_value: bool = False


#: Region and task prefixes of the keys.
PREFIXES = {"gtvp": "GTVp", "gtvn": "GTVn", **{name: name.upper() for name in OUTCOME_TASKS}}
#: Statistic suffixes of the keys (shown in brackets after the measure).
STATISTICS = {"mean": "mean", "median": "median", "min": "smallest", "predicted": "predicted masks",
              "gap_to_true": "gap to true masks"}
#: The measures: metric parts of ``summary.json`` and ``per_patient.csv`` keys, and the plain columns of the report.
MEASURES: dict[str, Measure] = {
    "dice": Measure("Dice"),
    "dsc_agg": Measure("aggregated Dice"),
    "f1_agg": Measure("aggregated F1"),
    "hd95": Measure("HD95", "mm", 1),
    "hd95_status": Measure("HD95 status", digits=None),
    "true_ml": Measure("true volume", "mL", 1),
    "pred_ml": Measure("predicted volume", "mL", 1),
    "inter_ml": Measure("overlap volume", "mL", 1),
    "tp": Measure("lesions detected", digits=None),
    "fp": Measure("false-positive lesions", digits=None),
    "fn": Measure("lesions missed", digits=None),
    "n_true": Measure("true lesions", digits=None),
    "n_pred": Measure("predicted lesions", digits=None),
    OUTCOME_TASKS["rfs"].metric: Measure("Harrell's C-index"),
    OUTCOME_TASKS["hpv"].metric: Measure("balanced accuracy"),
    "uno_c": Measure("Uno's C"),
    "td_auc": Measure("time-dependent AUC"),
    "auc": Measure("AUC"),
    "sensitivity": Measure("sensitivity"),
    "specificity": Measure("specificity"),
    "logrank_p": Measure("log-rank p (median split)", p_value=True),
    "p_value": Measure("p", p_value=True),
    "patient_id": Measure("patient", digits=None),
    "centre": Measure("centre", digits=None),
    "region": Measure("region", digits=None),
    "n_patients": Measure("patients", digits=None),
    "n_events": Measure("relapses", digits=None),
    "n_positive": Measure("HPV positive", digits=None),
    "original_ml": Measure("volume before conversion", "mL", 1),
    "converted_ml": Measure("volume after conversion", "mL", 1),
    "kept_fraction": Measure("fraction kept"),
    "feature": Measure("feature", digits=None),
    "mean_abs_shap": Measure("mean |SHAP|"),
    "gain": Measure("gain"),
}


@dataclass(frozen=True)
class Quantity:
    """A key as people read it: ``label`` (name, statistic, unit), decimals, whether a p-value, whether known."""

    label: str
    digits: int | None = 3
    p_value: bool = False
    known: bool = True


def quantity(key: str) -> Quantity:
    """The readable label and rounding of a metric or column key.

    Parameters
    ----------
    key : str
        A key of ``summary.json``, ``per_patient.csv``, the pass marks, or a plain column of the report.

    Returns
    -------
    Quantity
        For a key not made of known parts: the key with spaces for underscores, 3 decimals, ``known`` False.
    """
    prefix, rest = "", key
    for part, name in PREFIXES.items():
        if key.startswith(part + "_") and key[len(part) + 1:]:
            prefix, rest = name, key[len(part) + 1:]
            break
    statistic = ""
    for part, name in STATISTICS.items():
        if rest.endswith("_" + part) and rest[:-len(part) - 1] in MEASURES:
            statistic, rest = name, rest[:-len(part) - 1]
            break
    measure = MEASURES.get(rest)
    if measure is None:
        return Quantity(key.replace("_", " "), known=False)
    details = ", ".join(d for d in (statistic, measure.unit) if d)
    label = " ".join(p for p in (prefix, measure.name) if p) + (f" ({details})" if details else "")
    return Quantity(label, measure.digits, measure.p_value)


def label(key: str) -> str:
    """The readable name of a key, with statistic and unit ("GTVp HD95 (median, mm)")."""
    return quantity(key).label


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def format_p(p: float | None) -> str:
    """A p-value with 3 decimals, "< 0.001" below :data:`P_FLOOR`, "–" when missing."""
    if _missing(p):
        return "–"
    return f"< {P_FLOOR:g}" if p < P_FLOOR else f"{p:.3f}"


def p_equation(p: float | None, name: str = "p") -> str:
    """``name = 0.116`` or ``name < 0.001`` (figure titles)."""
    text = format_p(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def format_number(v: Any, digits: int | None = 3) -> str:
    """A number with ``digits`` decimals ("–" when missing or not finite, yes/no for booleans); with
    ``digits`` None, integers and text as they are and other numbers in their shortest form."""
    if _missing(v):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and digits is not None:
        return f"{v:.{digits}f}"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
