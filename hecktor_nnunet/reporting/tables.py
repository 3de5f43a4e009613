"""The report's tables, built once from its data: shown in ``report.html`` and written as CSV beside it.

A :class:`Table` holds readable headers (:func:`~hecktor_nnunet.evaluation.labels.quantity` of each
key) and the values of ``report.json`` unrounded; the page rounds them (:meth:`Table.cells`: 3
decimals for metrics, 1 for mm and mL, p-values as ``< 0.001``), the CSV keeps them as they are
(:meth:`Table.frame`, an interval split into ``low`` and ``high`` columns). :func:`report_tables`
builds every table of a report; :func:`write_tables` writes them to ``<report>_tables/<name>.csv``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from hecktor_nnunet.evaluation.labels import format_number, format_p, label, quantity
from hecktor_nnunet.evaluation.plots import FEW_PATIENTS
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS
from hecktor_nnunet.io.atomic_io import atomic_folder, write_table
from hecktor_nnunet.reporting.cohort import format_cell as cohort_cell
from hecktor_nnunet.reporting.collect import PER_PATIENT_COLUMNS

#: The note of a per-centre row with fewer than :data:`~hecktor_nnunet.evaluation.plots.FEW_PATIENTS` patients.
FEW_NOTE = f"n < {FEW_PATIENTS}"
FEW_EXPLAINED = (f"{FEW_NOTE}: fewer than {FEW_PATIENTS} patients in the centre; its figures are too unstable "
                 "to compare centres by.")
#: How the comparison table names each source of the prognosis features.
SOURCE_TITLES = {"predicted": "predicted masks (this network)",
                 "deep": "network on PET/CT crops (predicted masks)", "true": "true masks",
                 "clinical": "clinical variables only", "oracle": "oracle (the planted risk / HPV probability)"}


@dataclass(frozen=True)
class Column:
    """A column: its header, how its numbers are rounded, whether it holds text or [low, high] intervals."""

    header: str
    digits: int | None = None
    p_value: bool = False
    text: bool = False
    interval: bool = False


@dataclass(frozen=True)
class Cell:
    """A value rounded unlike the rest of its column (a metric in a table of several metrics)."""

    value: Any
    digits: int | None = 3
    p_value: bool = False


def key_column(key: str, header: str | None = None, interval: bool = False) -> Column:
    """The column of a metric or table key: its readable label and rounding."""
    q = quantity(key)
    return Column(header or q.label, q.digits, q.p_value, interval=interval)


def key_cell(key: str, value: Any) -> Cell:
    """``value`` rounded as the metric ``key`` is."""
    q = quantity(key)
    return Cell(value, q.digits, q.p_value)


def text(header: str) -> Column:
    return Column(header, text=True)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def format_value(v: Any, digits: int | None = None, p_value: bool = False, interval: bool = False) -> str:
    """A cell as the page shows it: ``–`` when missing, ``[lo, hi]``, ``< 0.001``, ``k = v`` pairs, rounded."""
    if isinstance(v, Cell):
        return format_value(v.value, v.digits, v.p_value, interval)
    if interval or (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) or x is None
                                                                          for x in v)):
        if not v or any(_missing(x) for x in v):
            return "–"
        return f"[{format_number(v[0], digits)}, {format_number(v[1], digits)}]"
    if p_value:
        return format_p(v)
    if isinstance(v, dict):
        return ", ".join(f"{k} = {format_value(x, digits)}" for k, x in v.items()) or "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x, digits) for x in v) or "–"
    if isinstance(v, int) and not isinstance(v, bool) and digits is None:
        return str(v)
    return format_number(v, digits)


@dataclass
class Table:
    """One table of the report.

    Attributes
    ----------
    name : str
        File stem of its CSV.
    columns : list of Column
    rows : list of list
        One value per column: numbers as in ``report.json``, text, ``[low, high]`` or :class:`Cell`.
    notes : list of str
        Shown under the table.
    place : {"page", "details", "csv"}
        Shown in the page, folded away (``<details>``), or written as CSV only.
    """

    name: str
    columns: list[Column]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    place: str = "page"

    def __post_init__(self) -> None:
        headers = [c.header for c in self.columns]
        if len(set(headers)) != len(headers):
            raise ValueError(f"table {self.name}: repeated column header in {headers}")

    def frame(self) -> pd.DataFrame:
        """The CSV: readable headers, values unrounded, each interval as ``<header> low`` and ``<header> high``."""
        out: dict[str, list] = {}
        for i, c in enumerate(self.columns):
            values = [r[i].value if isinstance(r[i], Cell) else r[i] for r in self.rows]
            if c.interval:
                pairs = [v if isinstance(v, (list, tuple)) and len(v) == 2 else (None, None) for v in values]
                out[f"{c.header} low"] = [p[0] for p in pairs]
                out[f"{c.header} high"] = [p[1] for p in pairs]
            else:
                out[c.header] = [format_value(v) if isinstance(v, (dict, list, tuple)) else v for v in values]
        return pd.DataFrame(out, dtype=object)

    def cells(self) -> list[list[str]]:
        """The rows as the page shows them."""
        return [[format_value(v, c.digits, c.p_value, c.interval) for c, v in zip(self.columns, r)]
                for r in self.rows]


# --------------------------------------------------------------------------------------------
# one builder per section; each returns the section's tables
# --------------------------------------------------------------------------------------------

def _per_centre(name: str, per_centre: dict, keys: Iterable[str]) -> Table:
    keys = list(keys)
    rows = [[c, v.get("n_patients"), *(v.get(k) for k in keys),
             FEW_NOTE if (v.get("n_patients") or 0) < FEW_PATIENTS else ""] for c, v in sorted(per_centre.items())]
    notes = [FEW_EXPLAINED] if any(r[-1] for r in rows) else []
    return Table(name, [text("centre"), key_column("n_patients"), *map(key_column, keys), text("note")], rows,
                 notes)


def pass_mark_tables(marks: list[dict]) -> list[Table]:
    rows = [[label(m["metric"]), key_cell(m["metric"], m["value"]),
             f"{'≤' if m['rule'] == '<=' else '≥'} {m['mark']:.2f}",
             "not measured" if m["met"] is None else ("yes" if m["met"] else "NO")] for m in marks]
    return [Table("pass_marks", [text("measure"), Column("value", 3), text("pass mark"), text("met")], rows)]


def cohort_tables(c: dict) -> list[Table]:
    names = list(c["columns"])
    rows = [[r["characteristic"], r["category"], *(cohort_cell(r["values"][n]) for n in names)] for r in c["rows"]]
    notes = ["Counts are n (% of the column's patients); age is the median [interquartile range]; the median "
             "follow-up is that of the reverse Kaplan-Meier estimate (a relapse ends follow-up)."]
    notes += [f"{g}: {len(ids)} patient(s) without a row in the clinical table: {', '.join(ids)}"
              for g, ids in c.get("not_in_table", {}).items()]
    columns = [text("characteristic"), text("category")] + [text(f"{n} (n = {k})") for n, k in c["columns"].items()]
    return [Table("cohort", columns, rows, notes)]


def _setting_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return " x ".join(format_value(x) for x in v) if v and all(isinstance(x, (int, float)) for x in v) \
            else (", ".join(map(str, v)) or "none")
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return format_value(v)


def _parameter_docs(cls: type) -> dict[str, str]:
    """The first sentence of each parameter's description in a numpydoc docstring."""
    out, name = {}, None
    for line in (cls.__doc__ or "").splitlines():
        m = re.match(r"^    (\w+) : ", line)
        if m:
            name = m[1]
            out[name] = ""
        elif name and line.startswith("        ") and "." not in out[name]:
            out[name] = (out[name] + " " + line.strip()).strip()
    return {k: re.split(r"\.\s+(?=[A-Z])", v.replace("``", ""))[0].rstrip(".") for k, v in out.items()}


def conversion_tables(c: dict) -> list[Table]:
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

    meaning = _parameter_docs(ConversionSettings)
    settings = [[k.replace("_mm", " (mm)").replace("_", " "), _setting_value(v), meaning.get(k, "")]
                for k, v in (c.get("settings") or {}).items() if k in meaning]
    settings.append(["channels", _setting_value(c.get("channels")), "channel order: _0000, _0001, ..."])
    if c.get("splits"):
        s = c["splits"]
        settings.append(["splits", ", ".join(f"{k.replace('n_', '').replace('_', ' ')} {v}" for k, v in s.items()),
                         "cross-validation folds written to splits_final.json"])
    problem_cols = ["patient_id", "severity", "code", "message", "file"]
    problem_headers = ["patient", "severity", "code", "message", "file"]
    volume_keys = ["original_ml", "converted_ml", "kept_fraction"]
    summary_keys = ["n_patients", "original_ml_median", "converted_ml_median", "kept_fraction_min",
                    "kept_fraction_median"]
    return [
        Table("conversion_centres", [text("centre"), Column("cases")], [[k, v] for k, v in c["centres"].items()]),
        Table("conversion_problems", [text(h) for h in problem_headers],
              [[p.get(k) for k in problem_cols] for p in c["problems"]]),
        Table("conversion_settings", [text("setting"), text("value"), text("meaning")], settings, place="details"),
        Table("label_volumes_by_region", [text("region"), *map(key_column, summary_keys)],
              [[s["region"], *(s.get(k) for k in summary_keys)] for s in c.get("label_volume_summary", [])],
              [f"Every patient's volumes are in label_volumes.csv ({len(c['label_volumes'])} rows)."]),
        Table("label_volumes", [text("patient"), text("region"), *map(key_column, volume_keys)],
              [[v["patient_id"], v["region"], *(v.get(k) for k in volume_keys)] for v in c["label_volumes"]],
              place="csv"),
    ]


def segmentation_tables(s: dict) -> list[Table]:
    metrics = [[label(k), key_cell(k, v["value"]), key_cell(k, v["ci95"])] for k, v in s["metrics"].items()]
    lesions = s.get("gtvn_lesions") or {}
    cols = [k for k in PER_PATIENT_COLUMNS if any(k in r for r in s["per_patient"])]
    return [
        Table("segmentation_metrics", [text("measure"), Column("value"), Column("95% CI", interval=True)], metrics,
              ["95% CI: percentile bootstrap over patients (hecktor-evaluate seg).", *s.get("warnings", [])]),
        Table("segmentation_lesions", [text("GTVn lesions"), Column("count")],
              [[label(f"gtvn_{k}"), v] for k, v in lesions.items()]),
        _per_centre("segmentation_per_centre", s["per_centre"], SEG_METRICS),
        Table("segmentation_per_patient", [key_column(k) if k not in ("patient_id", "centre") else text(label(k))
                                           for k in cols], [[r.get(k) for k in cols] for r in s["per_patient"]],
              place="details"),
        Table("segmentation_conventions", [text("convention"), text("value")],
              [[k.replace("_", " "), _setting_value(v)] for k, v in (s.get("conventions") or {}).items()],
              place="details"),
    ]


def radiomics_tables(r: dict) -> list[Table]:
    return [Table("radiomics_flags", [text("flag"), Column("patients")],
                  [[k.removeprefix("flag_").replace("_", " "), v] for k, v in r["flag_counts"].items()])]


def rfs_tables(s: dict) -> list[Table]:
    rows = [[label("c_index"), key_cell("c_index", s.get("c_index")), key_cell("c_index", s.get("c_index_ci"))],
            [label("uno_c"), key_cell("uno_c", s.get("uno_c")), key_cell("uno_c", s.get("uno_c_ci"))]]
    for h, v in (s.get("td_auc") or {}).items():
        rows.append([f"{label('td_auc')} at {h} days", key_cell("td_auc", v),
                     key_cell("td_auc", (s.get("td_auc_ci") or {}).get(h))])
    rows.append([label("logrank_p"), key_cell("logrank_p", s.get("logrank_p")), None])
    notes = ["95% CI of Harrell's C-index: hecktor-evaluate rfs"
             + (f"; of Uno's C and AUC(t): {s['intervals']}." if s.get("intervals") else ".")]
    out = [Table("rfs_metrics", [text("measure"), Column("value"), Column("95% CI", interval=True)], rows, notes)]
    risk = s.get("numbers_at_risk")
    if risk:
        times = risk["time_days"]
        out.append(Table("rfs_numbers_at_risk", [text("risk group"), *(Column(f"{t:g} days") for t in times)],
                         [[g, *v] for g, v in risk.items() if g != "time_days"],
                         ["Patients still followed without relapse at each time (the x ticks of the figure)."]))
    out.append(_per_centre("rfs_per_centre", s.get("per_centre", {}), ["n_events", OUTCOME_TASKS["rfs"].metric]))
    return out


def hpv_tables(s: dict) -> list[Table]:
    rows = [[label(k), key_cell(k, s.get(k)), key_cell(k, s.get(f"{k}_ci"))]
            for k in (OUTCOME_TASKS["hpv"].metric, "sensitivity", "specificity", "auc")]
    return [Table("hpv_metrics", [text("measure"), Column("value"), Column("95% CI", interval=True)], rows),
            _per_centre("hpv_per_centre", s.get("per_centre", {}),
                        [OUTCOME_TASKS["hpv"].metric, "sensitivity", "specificity"])]


def comparison_tables(c: dict) -> list[Table]:
    keys = [("rfs", OUTCOME_TASKS["rfs"].metric), ("hpv", OUTCOME_TASKS["hpv"].metric)]
    columns = [text("features from")]
    for task, metric in keys:
        columns += [key_column(f"{task}_{metric}"),
                    key_column(f"{task}_{metric}", f"{task.upper()} 95% CI", interval=True)]
    columns.append(key_column("hpv_auc"))
    rows = [[SOURCE_TITLES.get(r["source"], r["source"]), r.get("rfs_c_index"), r.get("rfs_c_index_ci"),
             r.get("hpv_balanced_accuracy"), r.get("hpv_balanced_accuracy_ci"), r.get("hpv_auc")] for r in c["rows"]]
    return [Table("prognosis_comparison", columns, rows)]


def prognosis_tables(p: dict) -> list[Table]:
    out = []
    for task in OUTCOME_TASKS:
        e = p.get(task)
        if not e:
            continue
        if "comparison" in e:
            metric = label(e["comparison"].get("metric") or OUTCOME_TASKS[task].metric)
            cols = [text("model"), Column(f"{metric} (mean of folds)", 3), Column("95% CI", 3, interval=True),
                    Column("difference to the default", 3), Column("95% CI of the difference", 3, interval=True),
                    Column("p", p_value=True), text("note")]
            keys = ["model", "score", "95% CI", "vs. default", "95% CI of the difference", "p", "note"]
            out.append(Table(f"{task}_model_comparison", cols,
                             [[r.get(k) for k in keys] for r in e["comparison"]["rows"]]))
        if "model" in e:
            params = e["model"].get("best_params") or {}
            out.append(Table(f"{task}_model_parameters", [text("parameter"), text("value")],
                             [[k, _setting_value(v)] for k, v in params.items()], place="details"))
        if e.get("feature_importance"):
            keys = ["feature", "mean_abs_shap", "gain"]
            out.append(Table(f"{task}_feature_importance", [text("feature"), key_column("mean_abs_shap"),
                                                            key_column("gain")],
                             [[r.get(k) for k in keys] for r in e["feature_importance"]]))
    return out


def provenance_tables(v: dict) -> list[Table]:
    recorded = [[src.replace("_", " "), k.removesuffix("_version"), x] for src, d in v["recorded"].items()
                for k, x in (d or {}).items()]
    return [Table("versions_recorded", [text("recorded by"), text("package"), text("version")], recorded),
            Table("versions_environment", [text("package"), text("version")],
                  [[k, x] for k, x in v["environment"].items()])]


BUILDERS = {"pass_marks": pass_mark_tables, "cohort": cohort_tables, "conversion": conversion_tables,
            "segmentation": segmentation_tables, "radiomics": radiomics_tables, "rfs": rfs_tables,
            "hpv": hpv_tables, "prognosis_comparison": comparison_tables, "prognosis": prognosis_tables,
            "versions": provenance_tables}


def report_tables(data: dict) -> dict[str, Table]:
    """Every table of a report's data (sections left out of the report have none), by name."""
    tables = [t for key, build in BUILDERS.items() if data.get(key) for t in build(data[key])]
    return {t.name: t for t in tables}


def write_tables(tables: dict[str, Table], folder: Path) -> list[str]:
    """Write each table as ``<folder>/<name>.csv``; the folder is replaced whole (no stale table is left).

    Returns
    -------
    list of str
        The file names written.
    """
    with atomic_folder(folder, overwrite=True) as tmp:
        for name, t in tables.items():
            write_table(t.frame(), Path(tmp) / f"{name}.csv")
    return [f"{name}.csv" for name in tables]
