"""The run report: one self-contained ``report.html`` (figures embedded as base64 PNG) and ``report.json``.

The report reads what the tools wrote and recomputes nothing but the PET/CT overlay images:

- conversion: ``conversion_manifest.json`` of the nnU-Net raw dataset (cases, problems, label
  volume kept by the crop/resampling, settings, splits);
- segmentation: a ``hecktor-evaluate seg`` folder (``summary.json``, ``per_patient.csv``,
  ``dice_per_centre.png``) and, with the release and the prediction folder, axial and coronal
  PET/CT overlays of a few patients with truth and prediction contours;
- radiomics: the features table's metadata (``<table>.meta.json`` or the Parquet metadata);
- RFS and HPV: ``hecktor-evaluate rfs|hpv`` folders and ``hecktor-prognosis`` folders
  (cross-validation report and plot, model settings, feature importance);
- provenance: the exact commands (when given) and the library versions recorded by each tool
  and of the environment that built the report.

Every section is optional; a missing input leaves the section out and says so in ``missing``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hecktor_nnunet.io.atomic_io import json_safe, write_json, write_text
from hecktor_nnunet.evaluation.tasks import SEG_METRICS

log = logging.getLogger(__name__)

#: Soft-tissue window of the CT in the overlays (level 40 HU, width 400 HU).
CT_WINDOW_HU = (-160.0, 240.0)
#: Contour colours (truth solid, prediction dashed).
LABEL_COLOURS = {1: ("GTVp", "#39ff14"), 2: ("GTVn", "#00bfff")}
PACKAGES = ("hecktor-nnunet", "nnunetv2", "torch", "SimpleITK", "pyradiomics-bhklab", "xgboost",
            "scikit-survival", "scikit-learn", "numpy", "pandas", "matplotlib")
PER_PATIENT_COLUMNS = ("patient_id", "centre", "gtvp_dice", "gtvn_dice", "gtvp_hd95", "gtvn_hd95",
                       "gtvp_true_ml", "gtvp_pred_ml", "gtvn_true_ml", "gtvn_pred_ml", "gtvn_tp", "gtvn_fp",
                       "gtvn_fn")


class ReportError(ValueError):
    """An input of the report is unusable (the message names the file)."""


@dataclass
class ReportInputs:
    """Where a run's outputs are; every field is optional.

    Attributes
    ----------
    dataset : path
        nnU-Net raw dataset folder holding ``conversion_manifest.json``.
    seg_eval, rfs_eval, hpv_eval : path
        ``hecktor-evaluate seg|rfs|hpv`` output folders (one run each).
    prognosis_dir : path
        Folder with ``rfs/`` and ``hpv/``; each holds a model folder (``prognosis.json``) directly or
        in ``model/``, and a cross-validation report ``cv_report.json`` in the model folder or in ``cv/``.
    features : path
        Features table from ``hecktor-radiomics`` (its metadata is read).
    release, pred : path
        The release (CT, PET, truth labels) and the predicted label maps on the CT grids, for overlays.
    training_progress : path
        nnU-Net's ``progress.png`` (learning curve) of the trained fold.
    prognosis_comparison : dict
        Held-out RFS / HPV figures per source of the features (``{"held_out_patients", "rows": [...]}``,
        rows with ``source``, ``rfs_c_index``, ``hpv_balanced_accuracy``, ``hpv_auc``...).
    pass_marks : list of dict
        ``{"metric", "value", "rule", "mark", "met"}`` targets the run is judged by.
    commands : list of dict
        ``{"step", "command", "seconds"}`` records of the commands that produced the run.
    notes : list of str
        Shown at the top (e.g. that a demo model is not a real model).
    n_overlays : int
        Patients shown as PET/CT overlays (best, median and worst GTVp Dice first).
    """

    dataset: Path | None = None
    seg_eval: Path | None = None
    rfs_eval: Path | None = None
    hpv_eval: Path | None = None
    prognosis_dir: Path | None = None
    features: Path | None = None
    release: Path | None = None
    pred: Path | None = None
    training_progress: Path | None = None
    prognosis_comparison: dict | None = None
    pass_marks: list[dict] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = "HECKTOR run report"
    n_overlays: int = 3


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


def conversion_section(dataset_dir: Path) -> dict:
    """Cases, problems and label volumes kept, from a dataset's ``conversion_manifest.json``."""
    path = Path(dataset_dir) / "conversion_manifest.json"
    if not path.is_file():
        raise ReportError(f"{path} not found: --dataset must be a folder written by hecktor-convert")
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
    figures = {}
    png = _png(seg_eval / "dice_per_centre.png")
    if png:
        figures["seg_dice_per_centre"] = png
    return section, figures


def outcome_section(eval_dir: Path, task: str) -> tuple[dict, dict[str, bytes]]:
    """RFS (C-index, KM plot) or HPV (balanced accuracy, ROC) from a ``hecktor-evaluate`` folder."""
    eval_dir = Path(eval_dir)
    path = eval_dir / "summary.json"
    if not path.is_file():
        raise ReportError(f"{path} not found: --{task}-eval must be a hecktor-evaluate {task} folder")
    s = _read_json(path)
    if task == "rfs":
        keys = ("c_index", "c_index_ci", "uno_c", "td_auc", "logrank_p", "n_patients", "n_events")
        fig_name, fig_file = "rfs_km", "km_risk_groups.png"
    else:
        keys = ("balanced_accuracy", "balanced_accuracy_ci", "sensitivity", "specificity", "auc", "auc_ci",
                "n_patients", "n_positive")
        fig_name, fig_file = "hpv_roc", "roc.png"
    section = {"folder": str(eval_dir), **{k: s.get(k) for k in keys}, "per_centre": s.get("per_centre", {})}
    png = _png(eval_dir / fig_file)
    return section, ({fig_name: png} if png else {})


def _model_and_cv(task_dir: Path) -> tuple[Path | None, Path | None]:
    model = next((d for d in (task_dir, task_dir / "model") if (d / "prognosis.json").is_file()), None)
    cv = next((d for d in (task_dir / "cv", task_dir) + ((model,) if model else ())
               if (d / "cv_report.json").is_file()), None)
    return model, cv


def prognosis_section(prognosis_dir: Path, top: int = 15) -> tuple[dict, dict[str, bytes]]:
    """Per task: cross-validation estimate and plot, model settings, feature importance."""
    prognosis_dir = Path(prognosis_dir)
    out: dict[str, Any] = {"folder": str(prognosis_dir)}
    figures: dict[str, bytes] = {}
    for task in ("rfs", "hpv"):
        model, cv = _model_and_cv(prognosis_dir / task)
        if model is None and cv is None:
            continue
        key = "c_index" if task == "rfs" else "balanced_accuracy"
        entry: dict[str, Any] = {}
        if cv is not None:
            r = _read_json(cv / "cv_report.json")
            entry["cv"] = {k: r.get(k) for k in ("cv", "n_splits", "repeats", "n_patients", "n_events", "n_positive",
                                                  key, f"{key}_ci95", f"{key}_fold_sd", "auc", "model",
                                                  "use_radiomics")}
            entry["cv"]["folder"] = str(cv)
            entry["cv"]["per_centre"] = r.get("per_centre", {})
            png = _png(cv / ("km_risk_groups.png" if task == "rfs" else "roc.png"))
            if png:
                figures[f"{task}_cv_plot"] = png
        if model is not None:
            info = _read_json(model / "prognosis.json")
            entry["model"] = {"folder": str(model), "model": info.get("model"), "best_params": info.get("best_params"),
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
    if not any(t in out for t in ("rfs", "hpv")):
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


# --------------------------------------------------------------------------------------------
# PET/CT overlays
# --------------------------------------------------------------------------------------------

def _array(image) -> tuple[np.ndarray, tuple[float, float, float]]:
    import SimpleITK as sitk

    image = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(image), tuple(image.GetSpacing())


def overlay_png(ct, pet, truth=None, pred=None, title: str = "") -> tuple[bytes, dict]:
    """Axial and coronal PET/CT slices with truth (solid) and prediction (dashed) contours.

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU (shown in a soft-tissue window, :data:`CT_WINDOW_HU`).
    pet : SimpleITK.Image
        PET in SUV, on any grid sharing the CT's physical frame (resampled linearly onto the CT grid;
        shown with the ``hot`` colormap over the CT).
    truth, pred : SimpleITK.Image, optional
        Label maps (1 GTVp, 2 GTVn) on the CT grid.
    title : str
        Figure title.

    Returns
    -------
    bytes, dict
        The PNG and the slices shown (``axial_index``, ``coronal_index``: voxel indices in LPS order).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from hecktor_nnunet.io.geometry import Grid, resample

    ct_arr, (sx, sy, sz) = _array(ct)
    pet_arr, _ = _array(resample(pet, Grid.of(ct), "linear", 0.0))
    labels = {name: _array(img)[0] for name, img in (("truth", truth), ("pred", pred)) if img is not None}
    for name, arr in labels.items():
        if arr.shape != ct_arr.shape:
            raise ReportError(f"{name} label map shape {arr.shape} differs from the CT {ct_arr.shape} (z, y, x)")
    fg = next((a > 0 for a in labels.values() if (a > 0).any()), None)
    if fg is None:
        z, y = ct_arr.shape[0] // 2, ct_arr.shape[1] // 2
    else:
        z, y = int(np.argmax(fg.sum(axis=(1, 2)))), int(np.argmax(fg.sum(axis=(0, 2))))
    positive = pet_arr[pet_arr > 0]
    vmax = max(2.5, float(np.percentile(positive, 99.5))) if positive.size else 2.5
    views = (("axial", lambda a: a[z], sy / sx, "upper"), ("coronal", lambda a: a[:, y, :], sz / sx, "lower"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, (name, cut, aspect, origin) in zip(axes, views):
        ax.imshow(cut(ct_arr), cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], aspect=aspect,
                  origin=origin, interpolation="nearest")
        p = cut(pet_arr)
        im = ax.imshow(np.ma.masked_less(p, 0.15 * vmax), cmap="hot", vmin=0, vmax=vmax, alpha=0.6, aspect=aspect,
                       origin=origin, interpolation="bilinear")
        for source, style in (("truth", "solid"), ("pred", "dashed")):
            if source not in labels:
                continue
            sl = cut(labels[source])
            for value, (_, colour) in LABEL_COLOURS.items():
                if (sl == value).any():
                    ax.contour((sl == value).astype(float), levels=[0.5], colors=[colour], linestyles=style,
                               linewidths=1.4, origin=origin)
        ax.set_title(f"{name} (slice {z if name == 'axial' else y})", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.7, label="SUV")
    handles = [Line2D([], [], color=c, ls=ls, label=f"{src} {n}") for src, ls in (("truth", "-"), ("prediction", "--"))
               for n, c in LABEL_COLOURS.values()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue(), {"axial_index": z, "coronal_index": y}


def _pick_patients(per_patient: Sequence[dict], available: Sequence[str], n: int) -> list[str]:
    """Best, median and worst GTVp Dice first (then the rest in id order), among ``available``."""
    ok = set(available)
    scored = sorted(((r["gtvp_dice"], r["patient_id"]) for r in per_patient
                     if r.get("patient_id") in ok and r.get("gtvp_dice") is not None
                     and math.isfinite(r["gtvp_dice"])), reverse=True)
    chosen: list[str] = []
    if scored:
        for i in (0, len(scored) // 2, len(scored) - 1):
            if scored[i][1] not in chosen:
                chosen.append(scored[i][1])
    chosen += [p for p in sorted(ok) if p not in chosen]
    return chosen[:n]


def overlay_section(release: Path, pred: Path | None, per_patient: Sequence[dict], n: int
                    ) -> tuple[list[dict], dict[str, bytes]]:
    """Overlays of ``n`` patients of the release (with their predictions when ``pred`` is given)."""
    import SimpleITK as sitk

    from hecktor_nnunet.io.label_maps import find_label_maps
    from hecktor_nnunet.io.release import read_release

    rel = read_release(release)
    cases = {c.patient_id: c for c in rel.cases if c.ct is not None and c.pet is not None}
    preds = find_label_maps(pred) if pred is not None else {}
    available = [p for p in cases if (p in preds if pred is not None else cases[p].label is not None)]
    entries, figures = [], {}
    for pid in _pick_patients(per_patient, available, n):
        case = cases[pid]
        truth = sitk.ReadImage(str(case.label)) if case.label else None
        prediction = sitk.ReadImage(str(preds[pid])) if pid in preds else None
        row = next((r for r in per_patient if r.get("patient_id") == pid), {})
        dice = row.get("gtvp_dice")
        title = pid + (f": GTVp Dice {dice:.3f}" if dice is not None and math.isfinite(dice) else "")
        png, where = overlay_png(sitk.ReadImage(str(case.ct)), sitk.ReadImage(str(case.pet)), truth, prediction,
                                 title)
        name = f"overlay_{pid}"
        figures[name] = png
        entries.append({"patient_id": pid, "figure": name, "gtvp_dice": dice, **where,
                        "ct": str(case.ct), "pet": str(case.pet), "truth": str(case.label) if case.label else None,
                        "prediction": str(preds[pid]) if pid in preds else None})
    return entries, figures


# --------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------

def environment_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages the pipeline uses (installed now)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def collect_report(inputs: ReportInputs) -> tuple[dict, dict[str, bytes]]:
    """Read every given input; returns the JSON-ready data and the figures (name -> PNG bytes).

    Raises
    ------
    ReportError
        When no input is given, or a given input is not what it should be.
    """
    data: dict[str, Any] = {"title": inputs.title, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "notes": list(inputs.notes), "missing": []}
    figures: dict[str, bytes] = {}
    given = [inputs.dataset, inputs.seg_eval, inputs.rfs_eval, inputs.hpv_eval, inputs.prognosis_dir,
             inputs.features, inputs.release, inputs.training_progress, inputs.prognosis_comparison]
    if all(g is None for g in given):
        raise ReportError("nothing to report: give a demo --workdir or at least one of --dataset, --seg-eval, "
                          "--rfs-eval, --hpv-eval, --prognosis-dir, --features, --release")
    recorded: dict[str, dict] = {}

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
    conv = add("conversion", inputs.dataset, conversion_section)
    if inputs.training_progress is not None:
        figures["training_progress"] = Path(inputs.training_progress).read_bytes()
        data["training"] = {"progress": str(inputs.training_progress)}
    else:
        data["training"] = None
    if conv:
        recorded["conversion"] = conv["versions"]
    seg = add("segmentation", inputs.seg_eval, segmentation_section)
    if inputs.release is not None:
        entries, figs = overlay_section(Path(inputs.release), Path(inputs.pred) if inputs.pred else None,
                                        seg["per_patient"] if seg else [], inputs.n_overlays)
        data["overlays"] = entries
        figures.update(figs)
    else:
        data["overlays"] = None
        data["missing"].append("overlays")
    rad = add("radiomics", inputs.features, radiomics_section)
    if rad:
        recorded["radiomics"] = rad["versions"]
    add("rfs", inputs.rfs_eval, outcome_section, "rfs")
    add("hpv", inputs.hpv_eval, outcome_section, "hpv")
    data["prognosis_comparison"] = inputs.prognosis_comparison
    prog = add("prognosis", inputs.prognosis_dir, prognosis_section)
    for task in ("rfs", "hpv"):
        if prog and "model" in prog.get(task, {}):
            recorded[f"prognosis_{task}"] = prog[task]["model"]["versions"]
    data["commands"] = list(inputs.commands)
    data["versions"] = {"environment": environment_versions(), "recorded": recorded}
    data["figures"] = sorted(figures)
    return json_safe(data), figures


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
 padding:0 1em;line-height:1.4}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}td,th{border:1px solid #ccc;padding:.25em .5em;
 text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em}.muted{color:#777}
img{max-width:100%;display:block;margin:.5em 0}details{margin:.5em 0}code,pre{font-size:.85em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
"""

# Sets <body data-images="ok|broken"> once the page has loaded (used by the headless-browser test).
IMAGE_CHECK_JS = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images", ok ? "ok" : "broken");
  document.body.setAttribute("data-image-count", String(imgs.length));
});
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) or x is None for x in v):
        return f"[{_fmt(v[0], digits)}, {_fmt(v[1], digits)}]"
    return str(v)


def _table(rows: Sequence[dict], columns: Sequence[str], left: Sequence[str] = ()) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{html.escape(_fmt(r.get(c)))}</td>'
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(figures: dict[str, bytes], name: str, alt: str) -> str:
    if name not in figures:
        return f'<p class="muted">figure {html.escape(name)} not available</p>'
    b64 = base64.b64encode(figures[name]).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _per_centre_rows(per_centre: dict) -> list[dict]:
    return [{"centre": c, **v} for c, v in sorted(per_centre.items())]


def _html_conversion(c: dict) -> str:
    parts = [f"<p>{c['n_converted']} case(s) converted ({c['n_training']} training, {c['n_test']} test), "
             f"{c['n_failed']} failed{': ' + html.escape(', '.join(c['failed'])) if c['failed'] else ''}. "
             f"Release: <code>{html.escape(str((c.get('release') or {}).get('root')))}</code> "
             f"(layout {html.escape(str((c.get('release') or {}).get('layout')))}).</p>",
             _table([{"centre": k, "cases": v} for k, v in c["centres"].items()], ["centre", "cases"], ["centre"]),
             f"<p>Label volume kept after cropping/resampling: min {_fmt(c['kept_fraction_min'])}, "
             f"median {_fmt(c['kept_fraction_median'])} (1.000 = nothing lost).</p>",
             f"<h3>Problems found ({len(c['problems'])})</h3>",
             _table(c["problems"], ["patient_id", "severity", "code", "message", "file"],
                    ["patient_id", "severity", "code", "message", "file"]),
             "<details><summary>Label volumes per patient (mL)</summary>",
             _table(c["label_volumes"], ["patient_id", "region", "original_ml", "converted_ml", "kept_fraction"],
                    ["patient_id", "region"]), "</details>",
             f"<details><summary>Conversion settings</summary><pre>{html.escape(json.dumps(c['settings'], indent=1))}"
             f"\nchannels: {html.escape(str(c['channels']))}\nsplits: {html.escape(str(c['splits']))}</pre></details>"]
    return "".join(parts)


def _html_segmentation(s: dict, figures: dict) -> str:
    rows = [{"metric": k, "value": v["value"], "95% CI": v["ci95"]} for k, v in s["metrics"].items()]
    per_patient_cols = [c for c in PER_PATIENT_COLUMNS if any(c in r for r in s["per_patient"])]
    return "".join([
        f"<p>{s['n_patients']} patient(s) evaluated on their original CT grids "
        f"(<code>{html.escape(s['folder'])}</code>). GTVn lesions: {html.escape(str(s.get('gtvn_lesions')))}.</p>",
        _table(rows, ["metric", "value", "95% CI"], ["metric"]),
        "<h3>Per centre</h3>",
        _table(_per_centre_rows(s["per_centre"]), ["centre", "n_patients", *SEG_METRICS], ["centre"]),
        _img(figures, "seg_dice_per_centre", "Dice per centre"),
        "<details><summary>Per patient</summary>",
        _table(s["per_patient"], per_patient_cols, ["patient_id", "centre"]), "</details>",
        f"<details><summary>Conventions</summary><pre>{html.escape(json.dumps(s.get('conventions'), indent=1))}"
        "</pre></details>",
    ])


def _html_overlays(entries: list[dict], figures: dict) -> str:
    if not entries:
        return '<p class="muted">no patient with both images and a label map</p>'
    intro = ("<p>PET (SUV, <i>hot</i> colormap) over CT (soft-tissue window, level 40 / width 400 HU); "
             "truth contours solid, prediction dashed; GTVp green, GTVn blue. The slices are those with the "
             "most labelled voxels.</p>")
    return intro + "".join(_img(figures, e["figure"], f"PET/CT overlay of {e['patient_id']}") for e in entries)


def _html_outcome(s: dict, task: str, figures: dict) -> str:
    if task == "rfs":
        rows = [{"metric": "C-index (Harrell)", "value": s["c_index"], "95% CI": s["c_index_ci"]},
                {"metric": "Uno's C", "value": s["uno_c"]}, {"metric": "log-rank p (median split)",
                                                              "value": s["logrank_p"]}]
        rows += [{"metric": f"AUC at {h} days", "value": v} for h, v in (s.get("td_auc") or {}).items()]
        head = f"<p>{s['n_patients']} patient(s), {s['n_events']} relapse(s).</p>"
        cols = ["centre", "n_patients", "n_events", "c_index"]
        fig = _img(figures, "rfs_km", "Kaplan-Meier curves of predicted risk groups")
    else:
        rows = [{"metric": "balanced accuracy", "value": s["balanced_accuracy"], "95% CI": s["balanced_accuracy_ci"]},
                {"metric": "sensitivity", "value": s["sensitivity"]},
                {"metric": "specificity", "value": s["specificity"]},
                {"metric": "AUC", "value": s["auc"], "95% CI": s.get("auc_ci")}]
        head = f"<p>{s['n_patients']} patient(s), {s['n_positive']} HPV positive.</p>"
        cols = ["centre", "n_patients", "balanced_accuracy", "sensitivity", "specificity"]
        fig = _img(figures, "hpv_roc", "ROC curve of HPV status")
    return "".join([head, _table(rows, ["metric", "value", "95% CI"], ["metric"]), fig,
                    "<h3>Per centre</h3>", _table(_per_centre_rows(s["per_centre"]), cols, ["centre"])])


def _html_prognosis(p: dict, figures: dict) -> str:
    parts = []
    for task, key in (("rfs", "c_index"), ("hpv", "balanced_accuracy")):
        if task not in p:
            continue
        e = p[task]
        parts.append(f"<h3>{task.upper()}</h3>")
        if "cv" in e:
            cv = e["cv"]
            parts.append(f"<p>Cross-validation ({html.escape(str(cv['cv']))}, {cv['n_splits']} folds x {cv['repeats']} "
                         f"repeat(s), {cv['n_patients']} patients): {key} {_fmt(cv.get(key))} "
                         f"(95% CI {_fmt(cv.get(f'{key}_ci95'))}, fold SD {_fmt(cv.get(f'{key}_fold_sd'))}).</p>")
            parts.append(_img(figures, f"{task}_cv_plot", f"{task} out-of-fold plot"))
        if "model" in e:
            m = e["model"]
            parts.append(f"<p>Model <code>{html.escape(str(m['model']))}</code> "
                         f"(<code>{html.escape(m['folder'])}</code>): {m['n_inputs']} input column(s), "
                         f"{len(m['selected_features'])} selected; parameters "
                         f"<code>{html.escape(json.dumps(m['best_params']))}</code>"
                         + (f"; HPV threshold {_fmt(m['threshold'])}" if m.get("threshold") is not None else "")
                         + ".</p>")
        if e.get("feature_importance"):
            parts.append("<p>Feature importance (mean |SHAP| on the training patients):</p>")
            parts.append(_table(e["feature_importance"], ["feature", "mean_abs_shap", "gain"], ["feature"]))
            parts.append(_img(figures, f"{task}_importance", f"{task} feature importance"))
    return "".join(parts)


SOURCE_TITLES = {"predicted": "predicted masks (this network)", "true": "true masks",
                 "clinical": "clinical variables only", "oracle": "oracle (the planted risk / HPV probability)"}


def _html_comparison(c: dict) -> str:
    rows = [{"features from": SOURCE_TITLES.get(r["source"], r["source"]), "RFS C-index": r["rfs_c_index"],
             "RFS 95% CI": r.get("rfs_c_index_ci"), "HPV balanced accuracy": r["hpv_balanced_accuracy"],
             "HPV 95% CI": r.get("hpv_balanced_accuracy_ci"), "HPV AUC": r.get("hpv_auc")} for r in c["rows"]]
    return (f"<p>The same {c['held_out_patients']} held-out patients, models trained on the same other patients; "
            "only the masks the radiomics come from differ (clinical variables are inputs of every model but "
            "the oracle).</p>"
            + _table(rows, ["features from", "RFS C-index", "RFS 95% CI", "HPV balanced accuracy", "HPV 95% CI",
                            "HPV AUC"], ["features from"]))


def _html_pass_marks(marks: list[dict]) -> str:
    rows = [{"metric": m["metric"], "value": m["value"], "pass mark": f"{m['rule']} {m['mark']}",
             "met": "not measured" if m["met"] is None else ("yes" if m["met"] else "NO")} for m in marks]
    return _table(rows, ["metric", "value", "pass mark", "met"], ["metric", "pass mark", "met"])


def _html_provenance(data: dict) -> str:
    cmds = data.get("commands") or []
    if cmds:
        lines = "\n".join(f"# {c.get('step', '')}" + (f" ({c['seconds']:.1f} s)" if c.get("seconds") is not None
                                                       else "") + f"\n{c['command']}" for c in cmds)
        cmd_html = f"<pre>{html.escape(lines)}</pre>"
    else:
        cmd_html = '<p class="muted">commands not recorded (hecktor-report --commands FILE adds them)</p>'
    env = data["versions"]["environment"]
    rec = data["versions"]["recorded"]
    rec_rows = [{"recorded by": src, "package": k, "version": v} for src, d in rec.items() for k, v in (d or {}).items()]
    return "".join(["<h3>Commands</h3>", cmd_html, "<h3>Versions recorded by the tools</h3>",
                    _table(rec_rows, ["recorded by", "package", "version"], ["recorded by", "package", "version"]),
                    "<h3>Environment that built this report</h3>",
                    _table([{"package": k, "version": v} for k, v in env.items()], ["package", "version"],
                           ["package", "version"])])


def render_html(data: dict, figures: dict[str, bytes]) -> str:
    """The self-contained HTML page of a report (figures inlined as base64 PNG data URIs)."""
    sections = []
    for key, title, render in (
            ("pass_marks", "Pass marks (held-out patients)", _html_pass_marks),
            ("conversion", "Conversion", lambda s: _html_conversion(s)),
            ("training", "Training (nnU-Net learning curve)", lambda s: _img(
                figures, "training_progress", "nnU-Net progress.png: losses, pseudo Dice, learning rate")),
            ("segmentation", "Segmentation (Task 1)", lambda s: _html_segmentation(s, figures)),
            ("overlays", "PET/CT overlays", lambda s: _html_overlays(s, figures)),
            ("radiomics", "Radiomics", lambda s: (
                f"<p>{s['n_patients']} patient(s) x {s['n_columns']} column(s) from <code>{html.escape(s['table'])}"
                f"</code>; params hash <code>{html.escape(str(s['params_hash']))}</code>; "
                f"{s['n_problems']} problem(s).</p>"
                + _table([{"flag": k, "patients": v} for k, v in s["flag_counts"].items()], ["flag", "patients"],
                         ["flag"]))),
            ("rfs", "Relapse-free survival (Task 2)", lambda s: _html_outcome(s, "rfs", figures)),
            ("hpv", "HPV status (Task 3)", lambda s: _html_outcome(s, "hpv", figures)),
            ("prognosis_comparison", "Prognosis from predicted vs true masks", _html_comparison),
            ("prognosis", "Prognosis models", lambda s: _html_prognosis(s, figures))):
        if not data.get(key):
            continue
        sections.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>{render(data[key])}</section>')
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.get("notes", []))
    missing = (f'<p class="muted">Not part of this report: {html.escape(", ".join(data["missing"]))}.</p>'
               if data.get("missing") else "")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(data['title'])}</title><style>{CSS}</style>"
            f"<script>{IMAGE_CHECK_JS}</script></head>\n<body>"
            f"<h1>{html.escape(data['title'])}</h1><p class=\"muted\">Generated {html.escape(data['generated'])}."
            f"</p>{notes}{missing}{''.join(sections)}"
            f'<section id="provenance"><h2>Provenance</h2>{_html_provenance(data)}</section>'
            "</body></html>\n")


def build_report(inputs: ReportInputs, out_html: str | Path, out_json: str | Path | None = None) -> dict:
    """Build ``report.html`` and ``report.json`` (default: beside the HTML, same stem).

    Returns
    -------
    dict
        The report data (as written to the JSON).
    """
    out_html = Path(out_html)
    out_json = Path(out_json) if out_json else out_html.with_suffix(".json")
    data, figures = collect_report(inputs)
    write_text(render_html(data, figures), out_html)
    write_json(data, out_json)
    log.info("report written to %s (%d figure(s)) and %s", out_html, len(figures), out_json)
    return data
