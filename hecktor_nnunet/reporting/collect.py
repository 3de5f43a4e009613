"""The report's data: what the tools wrote, read into plain JSON-ready sections (``report.json``).

:mod:`.render` turns these sections into the self-contained ``report.html`` and the CSV tables
(:mod:`.tables`). Sections:

- conversion: ``conversion_manifest.json`` of the nnU-Net raw dataset (cases, problems, label
  volume kept by the crop/resampling per patient and per region, settings, splits);
- cohort: the clinical table (``clinical.csv`` of the dataset), all patients and the given groups
  (:mod:`.cohort`);
- segmentation: a ``hecktor-evaluate seg`` folder (``summary.json``, ``per_patient.csv``; the
  per-centre Dice figure redrawn from the table) and, with the release and the prediction folder,
  axial and coronal PET/CT overlays of a few patients with truth and prediction contours;
- radiomics: the features table's metadata (``<table>.meta.json`` or the Parquet metadata);
- RFS and HPV: ``hecktor-evaluate rfs|hpv`` folders (for RFS the report adds intervals of Uno's C
  and AUC(t) and redraws the Kaplan-Meier figure with the numbers at risk, :mod:`.rfs`) and
  ``hecktor-prognosis`` folders (model comparison, cross-validation report and plot, model settings,
  feature importance);
- provenance: the exact commands (when given), this project's version and commit, and the library
  versions recorded by each tool and of the environment that built the report (:mod:`.provenance`).

Every section is optional; a missing input leaves the section out and says so in ``missing``. Paths
under the run's work folder are written relative to it, and numbers are kept to 7 significant digits
(float32 noise such as 4.199999809 is 4.2).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.plots import centre_boxplot_figure, figure_png
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS
from hecktor_nnunet.io.atomic_io import json_safe
from hecktor_nnunet.reporting.cohort import cohort_section
from hecktor_nnunet.reporting.figures import learning_curve, overlay_section
from hecktor_nnunet.reporting.inputs import ReportError, ReportInputs
from hecktor_nnunet.reporting.provenance import environment_versions, package_source, recorded_versions, relative_paths
from hecktor_nnunet.reporting.rfs import rfs_additions

log = logging.getLogger(__name__)

PER_PATIENT_COLUMNS = ("patient_id", "centre", "gtvp_dice", "gtvn_dice", "gtvp_hd95", "gtvn_hd95",
                       "gtvp_true_ml", "gtvp_pred_ml", "gtvn_true_ml", "gtvn_pred_ml", "gtvn_tp", "gtvn_fp",
                       "gtvn_fn")
#: Per-patient columns drawn per centre in the segmentation figure.
DICE_COLUMNS = ("gtvp_dice", "gtvn_dice")
#: Significant digits kept of every number of report.json.
SIGNIFICANT_DIGITS = 7


def tidy_numbers(obj: Any, significant: int = SIGNIFICANT_DIGITS) -> Any:
    """A copy of JSON-ready data with every float kept to ``significant`` digits (4.199999809265137 -> 4.2)."""
    if isinstance(obj, float):
        return float(f"{obj:.{significant}g}")
    if isinstance(obj, dict):
        return {k: tidy_numbers(v, significant) for k, v in obj.items()}
    if isinstance(obj, list):
        return [tidy_numbers(v, significant) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# reading the tools' outputs
# --------------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from e


def _png(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def volume_summary(volumes: list[dict]) -> list[dict]:
    """Per region: patients, median volume before and after conversion (mL), smallest and median fraction kept."""
    if not volumes:
        return []
    out = []
    for region, rows in pd.DataFrame(volumes).groupby("region", sort=True):
        entry: dict[str, Any] = {"region": region, "n_patients": int(len(rows))}
        for col, how in (("original_ml", "median"), ("converted_ml", "median"), ("kept_fraction", "min"),
                         ("kept_fraction", "median")):
            values = pd.to_numeric(rows[col], errors="coerce").dropna() if col in rows else pd.Series(dtype=float)
            entry[f"{col}_{how}"] = float(getattr(values, how)()) if len(values) else None
        out.append(entry)
    return out


def conversion_section(dataset_dir: Path) -> dict:
    """Cases, problems and label volumes kept, from a dataset's ``conversion_manifest.json``."""
    path = Path(dataset_dir) / "conversion_manifest.json"
    if not path.is_file():
        raise ReportError(f"{path} not found: --dataset-dir must be a folder written by hecktor-convert")
    m = _read_json(path)
    cases = m.get("cases", {})
    problems = list(m.get("release_problems", []))
    for rec in cases.values():
        problems += rec.get("problems", [])
    for pid, probs in m.get("failed", {}).items():
        problems += [{**p, "patient_id": p.get("patient_id", pid)} for p in probs]
    volumes = []
    for pid, rec in sorted(cases.items()):
        for region, v in rec.get("label_volumes", {}).items():
            volumes.append({"patient_id": pid, "region": region, **v})
    kept = [v["kept_fraction"] for v in volumes if v.get("kept_fraction") is not None]
    return {
        "manifest": str(path),
        "release": m.get("release"),
        "n_converted": len(cases),
        "n_training": sum(bool(r.get("labelled")) for r in cases.values()),
        "n_test": sum(not r.get("labelled") for r in cases.values()),
        "n_failed": len(m.get("failed", {})),
        "failed": sorted(m.get("failed", {})),
        "centres": dict(pd.Series([r.get("centre") for r in cases.values()]).value_counts().sort_index())
        if cases else {},
        "problems": sorted(problems, key=lambda p: (p.get("patient_id", ""), p.get("code", ""))),
        "label_volumes": volumes,
        "label_volume_summary": volume_summary(volumes),
        "kept_fraction_min": min(kept) if kept else None,
        "kept_fraction_median": float(np.median(kept)) if kept else None,
        "settings": m.get("settings"),
        "channels": m.get("channels"),
        "splits": m.get("splits"),
        "versions": {k: m[k] for k in ("hecktor_nnunet_version", "simpleitk_version") if k in m},
    }


def segmentation_section(seg_eval: Path) -> tuple[dict, dict[str, bytes]]:
    """Headline metrics with intervals, per centre and per patient, from a ``hecktor-evaluate seg`` folder."""
    seg_eval = Path(seg_eval)
    s = _read_json(seg_eval / "summary.json") if (seg_eval / "summary.json").is_file() else None
    if s is None:
        raise ReportError(f"{seg_eval / 'summary.json'} not found: --seg-eval must be a hecktor-evaluate seg folder")
    if "runs" in s:
        raise ReportError(f"{seg_eval} compares several runs; point --seg-eval at one run's sub-folder")
    table = seg_eval / "per_patient.csv"
    per_patient = pd.read_csv(table) if table.is_file() else pd.DataFrame()
    cols = [c for c in PER_PATIENT_COLUMNS if c in per_patient.columns]
    section = {
        "folder": str(seg_eval),
        "n_patients": s.get("n_patients"),
        "metrics": {k: {"value": s.get(k), "ci95": s.get("ci", {}).get(k)} for k in SEG_METRICS},
        "gtvn_lesions": s.get("gtvn_lesions"),
        "per_centre": s.get("per_centre", {}),
        "per_patient": per_patient[cols].to_dict("records"),
        "conventions": s.get("conventions"),
        "warnings": s.get("warnings", []),
    }
    if {"centre", *DICE_COLUMNS} <= set(per_patient.columns):
        png = figure_png(centre_boxplot_figure(per_patient, list(DICE_COLUMNS), title="Dice per centre"))
    else:
        png = _png(seg_eval / "dice_per_centre.png")
    return section, ({"seg_dice_per_centre": png} if png else {})


def outcome_section(eval_dir: Path, task: str, n_boot: int = 1000, seed: int = 0) -> tuple[dict, dict[str, bytes]]:
    """RFS (C-index, KM plot) or HPV (balanced accuracy, ROC) from a ``hecktor-evaluate`` folder.

    For RFS with a ``per_patient.csv``, :func:`~hecktor_nnunet.reporting.rfs.rfs_additions` adds
    intervals of Uno's C and AUC(t) (``n_boot`` resamples, ``seed``) and redraws the Kaplan-Meier
    figure with the numbers at risk.
    """
    eval_dir = Path(eval_dir)
    path = eval_dir / "summary.json"
    if not path.is_file():
        raise ReportError(f"{path} not found: --{task}-eval must be a hecktor-evaluate {task} folder")
    s = _read_json(path)
    if task == "rfs":
        keys = ("c_index", "c_index_ci", "uno_c", "td_auc", "logrank_p", "n_patients", "n_events")
        fig_name = "rfs_km"
    else:
        keys = ("balanced_accuracy", "balanced_accuracy_ci", "sensitivity", "specificity", "auc", "auc_ci",
                "n_patients", "n_positive")
        fig_name = "hpv_roc"
    section = {"folder": str(eval_dir), **{k: s.get(k) for k in keys}, "per_centre": s.get("per_centre", {})}
    png = _png(eval_dir / OUTCOME_TASKS[task].figure)
    if task == "rfs" and (eval_dir / "per_patient.csv").is_file():
        more, png = rfs_additions(eval_dir / "per_patient.csv", s, n_boot, seed)
        section.update(more)
    return section, ({fig_name: png} if png else {})


def _model_and_cv(task_dir: Path) -> tuple[Path | None, Path | None]:
    model = next((d for d in (task_dir, task_dir / "model") if (d / "prognosis.json").is_file()), None)
    cv = next((d for d in (task_dir / "cv", task_dir) + ((model,) if model else ())
               if (d / "cv_report.json").is_file()), None)
    return model, cv


def _comparison(folder: Path) -> dict:
    """The rows of ``hecktor-prognosis compare``'s ``comparison.json`` as the report shows them."""
    r = _read_json(folder / "comparison.json")
    rows = [{"model": row["label"], "score": row["score"], "95% CI": row["ci"], "vs. default": row["diff_vs_default"],
             "95% CI of the difference": row["diff_ci"], "p": row["p_value"],
             "note": (f"could not be fitted: {row['error']}" if row["error"] else "")} for row in r["rows"]]
    chosen = next((row.get("chosen") for row in r["rows"] if row["model"] == r["default"]), None) or {}
    return {"folder": str(folder), "rows": rows, "chosen": chosen,
            **{k: r.get(k) for k in ("metric", "cv", "n_splits", "repeats", "n_patients", "n_boot")}}


def prognosis_section(prognosis_dir: Path, top: int = 15) -> tuple[dict, dict[str, bytes]]:
    """Per task: the model comparison, cross-validation estimate and plot, model settings, feature importance."""
    prognosis_dir = Path(prognosis_dir)
    out: dict[str, Any] = {"folder": str(prognosis_dir)}
    figures: dict[str, bytes] = {}
    for task, spec in OUTCOME_TASKS.items():
        model, cv = _model_and_cv(prognosis_dir / task)
        compare = prognosis_dir / task / "compare"
        if not (compare / "comparison.json").is_file():
            compare = None
        if model is None and cv is None and compare is None:
            continue
        key = spec.metric
        entry: dict[str, Any] = {}
        if compare is not None:
            entry["comparison"] = _comparison(compare)
            png = _png(compare / "comparison.png")
            if png:
                figures[f"{task}_comparison"] = png
        if cv is not None:
            r = _read_json(cv / "cv_report.json")
            entry["cv"] = {k: r.get(k) for k in ("cv", "n_splits", "repeats", "n_patients", "n_events", "n_positive",
                                                  key, f"{key}_ci95", f"{key}_fold_sd", "auc", "model",
                                                  "use_radiomics")}
            entry["cv"]["folder"] = str(cv)
            entry["cv"]["per_centre"] = r.get("per_centre", {})
            png = _png(cv / spec.figure)
            if png:
                figures[f"{task}_cv_plot"] = png
        if model is not None:
            info = _read_json(model / "prognosis.json")
            entry["model"] = {"folder": str(model), "model": info.get("model"), "chosen": info.get("chosen"),
                              "best_params": info.get("best_params"),
                              "n_inputs": len(info.get("feature_names_in", [])),
                              "selected_features": info.get("selected_features", []),
                              "threshold": info.get("threshold"), "params_hash": info.get("params_hash"),
                              "versions": info.get("versions", {})}
            imp = model / "feature_importance.csv"
            if imp.is_file():
                entry["feature_importance"] = pd.read_csv(imp).head(top).to_dict("records")
            png = _png(model / "feature_importance.png")
            if png:
                figures[f"{task}_importance"] = png
        out[task] = entry
    if not any(t in out for t in OUTCOME_TASKS):
        raise ReportError(f"{prognosis_dir} holds no rfs/ or hpv/ model folder (prognosis.json) or cv_report.json")
    return out, figures


def radiomics_section(features: Path) -> dict:
    """Size, settings hash, versions and empty/tiny-region counts of a features table."""
    from hecktor_nnunet.prognosis.radiomics import read_features

    df, meta = read_features(features)
    flags = {c: int(pd.to_numeric(df[c], errors="coerce").fillna(0).sum()) for c in df.columns
             if c.startswith("flag_")}
    return {"table": str(features), "n_patients": int(len(df)), "n_columns": int(df.shape[1] - 1),
            "params_hash": meta.get("params_hash"), "versions": meta.get("versions", {}),
            "n_problems": len(meta.get("problems", [])), "flag_counts": flags}


def _clinical_table(inputs: ReportInputs) -> Path | None:
    """The clinical table of the cohort: given, or ``clinical.csv`` of the dataset when it has one."""
    if inputs.clinical is not None:
        return Path(inputs.clinical)
    if inputs.dataset is not None and (Path(inputs.dataset) / "clinical.csv").is_file():
        return Path(inputs.dataset) / "clinical.csv"
    return None


def collect_report(inputs: ReportInputs, base: Path | None = None) -> tuple[dict, dict[str, bytes]]:
    """Read every given input; returns the JSON-ready data and the figures (name -> PNG bytes).

    Parameters
    ----------
    inputs : ReportInputs
    base : path, optional
        The folder paths are shown relative to when ``inputs.workdir`` is not given (the report's folder).

    Raises
    ------
    ReportError
        When no input is given, or a given input is not what it should be.
    """
    data: dict[str, Any] = {"title": inputs.title, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "notes": list(inputs.notes), "missing": []}
    figures: dict[str, bytes] = {}
    given = [inputs.dataset, inputs.seg_eval, inputs.rfs_eval, inputs.hpv_eval, inputs.prognosis_dir,
             inputs.features, inputs.release, inputs.training_progress, inputs.prognosis_comparison, inputs.clinical]
    if all(g is None for g in given):
        raise ReportError("nothing to report: give a demo --workdir or at least one of --dataset-dir, --seg-eval, "
                          "--rfs-eval, --hpv-eval, --prognosis-dir, --features, --release")

    def add(key: str, path, func, *args) -> Any:
        if path is None:
            data[key] = None
            data["missing"].append(key)
            return None
        result = func(Path(path), *args)
        section, figs = result if isinstance(result, tuple) else (result, {})
        data[key] = section
        figures.update(figs)
        return section

    data["pass_marks"] = list(inputs.pass_marks)
    add("cohort", _clinical_table(inputs), cohort_section, inputs.cohort_groups)
    add("conversion", inputs.dataset, conversion_section)
    if inputs.training_progress is not None:
        figures.update(learning_curve(inputs.training_progress))
        data["training"] = {"progress": str(inputs.training_progress)}
    else:
        data["training"] = None
    seg = add("segmentation", inputs.seg_eval, segmentation_section)
    if inputs.release is not None:
        entries, figs = overlay_section(Path(inputs.release), Path(inputs.pred) if inputs.pred else None,
                                        seg["per_patient"] if seg else [], inputs.n_overlays)
        data["overlays"] = entries
        figures.update(figs)
    else:
        data["overlays"] = None
        data["missing"].append("overlays")
    add("radiomics", inputs.features, radiomics_section)
    add("rfs", inputs.rfs_eval, outcome_section, "rfs", inputs.n_boot, inputs.seed)
    add("hpv", inputs.hpv_eval, outcome_section, "hpv")
    data["prognosis_comparison"] = inputs.prognosis_comparison
    add("prognosis", inputs.prognosis_dir, prognosis_section)
    data["commands"] = list(inputs.commands)
    data["versions"] = {"hecktor_nnunet": package_source(), "environment": environment_versions(),
                        "recorded": recorded_versions(data)}
    data["figures"] = sorted(figures)
    folder = Path(inputs.workdir or base or Path.cwd())
    data["paths"] = {"relative_to": "the work folder" if inputs.workdir else "the folder of this report",
                     "folder_name": folder.resolve().name}
    return tidy_numbers(relative_paths(json_safe(data), folder)), figures
