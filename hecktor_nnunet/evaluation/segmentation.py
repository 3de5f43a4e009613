"""Evaluation of the three HECKTOR tasks against ground truth, per patient, per centre, with CIs.

- :func:`evaluate_segmentation` (Task 1): label maps against a release or a folder of labels.
- :func:`evaluate_rfs` (Task 2): risk predictions against RFS/Relapse.
- :func:`evaluate_hpv` (Task 3): 0/1 predictions (and optional probabilities) against HPV status.

The metric definitions live in :mod:`hecktor_nnunet.metrics`; this module reads files, checks
them, runs the per-patient work in parallel and writes the tables, ``summary.json`` and figures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import json_safe, write_json, write_table
from hecktor_nnunet.io.clinical import read_clinical
from hecktor_nnunet.io.geometry import Grid, resample
from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.metrics.classification import balanced_accuracy, binary_summary, roc_auc
from hecktor_nnunet.metrics.segmentation import (BOTH_EMPTY_DICE, IOU_THRESHOLD, MATCHING, aggregated_dice,
                                                 aggregated_f1, borda_ranking, mean_dice, patient_metrics)
from hecktor_nnunet.metrics.survival import concordance_index, time_dependent_auc, uno_c
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem, format_report
from hecktor_nnunet.io.ids import IMAGE_SUFFIXES, centre_of, normalise_id, split_image_name
from hecktor_nnunet.io.release import read_release

log = logging.getLogger(__name__)

SEG_METRICS = ("gtvp_dice_mean", "gtvn_dsc_agg", "gtvn_f1_agg", "gtvp_hd95_median", "gtvn_hd95_median")
RFS_HORIZONS_DAYS = (730.0, 1095.0)
# what a truth value must satisfy (column -> (test, what it must be)); missing values are excluded before
TRUTH_RULES: dict[str, tuple[Callable[[pd.Series], pd.Series], str]] = {
    "RFS": (lambda v: v >= 0, "must be >= 0 days"),
    "Relapse": (lambda v: v.isin([0, 1]), "must be 0 (censored) or 1 (relapse)"),
    "HPV Status": (lambda v: v.isin([0, 1]), "must be 0 (negative) or 1 (positive)"),
}


class EvaluationError(ValueError):
    """Inputs cannot be evaluated; the message names every patient and file concerned."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(format_report(problems))


# --------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------

def find_truth_labels(truth: str | Path) -> dict[str, Path]:
    """Label maps of a release folder (any layout) or of a folder of ``<ID>.nii.gz``/``.mha``."""
    truth = Path(truth)
    if not truth.is_dir():
        raise EvaluationError([Problem("*", str(truth), "not_found", "truth folder does not exist")])
    rel = read_release(truth)
    # only duplicated label maps matter here (a label file has no "__KEY" in its name)
    dups = [p for p in rel.problems if p.code == "duplicate_id" and split_image_name(Path(p.file))[1] is None]
    if dups:
        raise EvaluationError(dups)
    labels = {c.patient_id: c.label for c in rel.cases if c.label is not None}
    if not labels:
        raise EvaluationError([Problem("*", str(truth), "no_labels", "no label maps (<ID>.nii.gz) found")])
    return labels


def find_predictions(folder: str | Path) -> dict[str, Path]:
    """Predicted label maps ``<ID>.nii.gz``/``.nii``/``.mha``/``.nrrd`` directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError([Problem("*", str(folder), "not_found", "prediction folder does not exist")])
    found: dict[str, Path] = {}
    problems = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or not p.name.endswith(IMAGE_SUFFIXES):
            continue
        pid, key = split_image_name(p)
        if not pid or key is not None:
            continue
        if pid in found:
            problems.append(Problem(pid, str(p), "duplicate_prediction",
                                    f"two predictions for one patient: {found[pid].name} and {p.name}"))
        found.setdefault(pid, p)
    if problems:
        raise EvaluationError(problems)
    if not found:
        raise EvaluationError([Problem("*", str(folder), "no_predictions", "no <ID>.nii.gz/.mha predictions found")])
    return found


@dataclass(frozen=True)
class _SegJob:
    patient_id: str
    truth: Path
    preds: tuple[Path | None, ...]
    resample_nearest: bool
    connectivity: int
    matching: str


def _read_label(path: Path, pid: str) -> tuple[sitk.Image, np.ndarray]:
    img = sitk.ReadImage(str(path))
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise _CaseFailure(Problem(pid, str(path), "bad_image", "label map must be a 3D scalar image"))
    return img, _label_array(img, path, pid)


def _label_array(img: sitk.Image, path: Path, pid: str) -> np.ndarray:
    arr = sitk.GetArrayViewFromImage(img)
    if arr.dtype.kind in "iu":
        bad = (arr > 2) | (arr < 0) if arr.dtype.kind == "i" else arr > 2
    else:
        bad = ~((arr == 0) | (arr == 1) | (arr == 2))
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise _CaseFailure(Problem(pid, str(path), "bad_label_values",
                                   f"labels outside {{0, 1, 2}}: {values} ({int(bad.sum())} voxels)"))
    return arr.astype(np.uint8)


class _CaseFailure(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def _grid_text(g: Grid) -> str:
    return (f"size {g.size}, spacing {tuple(round(s, 4) for s in g.spacing)}, "
            f"origin {tuple(round(o, 3) for o in g.origin)}")


def _evaluate_case(job: _SegJob) -> dict:
    """Worker: metrics of every run for one patient; failures returned as problems."""
    problems: list[Problem] = []
    rows: list[dict | None] = []
    try:
        t_img, t_arr = _read_label(job.truth, job.patient_id)
        grid = Grid.of(t_img)
        spacing = t_img.GetSpacing()[::-1]
        for pred_path in job.preds:
            try:
                if pred_path is None:
                    p_arr = np.zeros_like(t_arr)
                else:
                    p_img = sitk.ReadImage(str(pred_path))
                    if p_img.GetDimension() != 3 or p_img.GetNumberOfComponentsPerPixel() != 1:
                        raise _CaseFailure(Problem(job.patient_id, str(pred_path), "bad_image",
                                                   "prediction must be a 3D scalar image"))
                    p_grid = Grid.of(p_img)
                    if not p_grid.same_as(grid):
                        if not job.resample_nearest:
                            raise _CaseFailure(Problem(
                                job.patient_id, str(pred_path), "grid_mismatch",
                                f"prediction grid ({_grid_text(p_grid)}) differs from the truth's CT grid "
                                f"({_grid_text(grid)}); use --resample-nearest to resample it"))
                        p_img = resample(p_img, grid, "nearest", 0)
                        problems.append(Problem(job.patient_id, str(pred_path), "resampled",
                                                "prediction resampled (nearest) onto the truth grid", WARNING))
                    p_arr = _label_array(p_img, pred_path, job.patient_id)
                row = patient_metrics(t_arr, p_arr, spacing, connectivity=job.connectivity, matching=job.matching)
                rows.append({"patient_id": job.patient_id, "centre": centre_of(job.patient_id),
                             "prediction": "" if pred_path is None else str(pred_path), **row})
            except _CaseFailure as e:
                problems.append(e.problem)
                rows.append(None)
            except Exception as e:  # noqa: BLE001 - any unreadable file becomes a named problem
                problems.append(Problem(job.patient_id, str(pred_path), "failed", f"{type(e).__name__}: {e}"))
                rows.append(None)
    except _CaseFailure as e:
        problems.append(e.problem)
    except Exception as e:  # noqa: BLE001
        problems.append(Problem(job.patient_id, str(job.truth), "failed", f"{type(e).__name__}: {e}"))
    return {"patient_id": job.patient_id, "rows": rows, "problems": problems}


def _nanstat(func, values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(func(v)) if v.size else float("nan")


def seg_core_metrics(df: pd.DataFrame, both_empty_dice: str = "zero") -> dict:
    """The headline Task 1 metrics of a per-patient table (rows from :func:`patient_metrics`).

    ``both_empty_dice`` is how the GTVp mean counts a patient with no GTVp in truth and
    prediction (:func:`~hecktor_nnunet.metrics.segmentation.mean_dice`).
    """
    return {
        "gtvp_dice_mean": mean_dice(df["gtvp_dice"], both_empty_dice),
        "gtvn_dsc_agg": aggregated_dice(df["gtvn_inter_ml"], df["gtvn_true_ml"], df["gtvn_pred_ml"]),
        "gtvn_f1_agg": aggregated_f1(df["gtvn_tp"], df["gtvn_fp"], df["gtvn_fn"]),
        "gtvp_hd95_median": _nanstat(np.median, df["gtvp_hd95"]),
        "gtvn_hd95_median": _nanstat(np.median, df["gtvn_hd95"]),
        "n_patients": int(len(df)),
    }


def seg_conventions(connectivity: int = 26, matching: str = "greedy", both_empty_dice: str = "zero") -> dict:
    """The choices behind a segmentation summary, as written to ``summary.json`` (``conventions``)."""
    from importlib.metadata import version

    return {
        "gtvp_dice_both_empty": both_empty_dice,
        "gtvp_dice_both_empty_rule": ("Dice 0, counted in the GTVp mean (the organisers' convention)"
                                      if both_empty_dice == "zero" else "left out of the GTVp mean"),
        "connectivity": connectivity,
        "iou_threshold": IOU_THRESHOLD,
        "iou_rule": "a predicted lesion detects a true lesion when IoU > iou_threshold (strict)",
        "matching": matching,
        "matching_rule": ("one-to-one, greedy by descending IoU" if matching == "greedy"
                          else "one-to-one, maximum matching (the most detections possible)"),
        "hd95": f"MONAI {version('monai')} compute_hausdorff_distance(percentile=95, symmetric, voxel spacing in mm)",
        "hd95_empty": "NaN when either side is empty, excluded from the median",
        "aggregate_empty": "DSCagg and F1agg are 1.0 when there is no GTVn anywhere",
    }


def seg_summary(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, connectivity: int = 26,
                matching: str = "greedy", both_empty_dice: str = "zero") -> dict:
    """Summary of a per-patient table: headline metrics, counts, per-centre values, bootstrap CIs.

    ``connectivity`` and ``matching`` are those the table was computed with (recorded only);
    ``both_empty_dice`` decides how the GTVp mean counts patients with neither truth nor
    prediction of GTVp (``gtvp_dice_n_both_empty`` says how many there were).
    """
    s = seg_core_metrics(df, both_empty_dice)
    s.update({
        "gtvp_dice_n_both_empty": int(df["gtvp_dice"].isna().sum()),
        "gtvn_dice_mean_per_patient": _nanstat(np.mean, df["gtvn_dice"]),
        "gtvp_hd95_n_undefined": int((df["gtvp_hd95_status"] != "ok").sum()),
        "gtvn_hd95_n_undefined": int((df["gtvn_hd95_status"] != "ok").sum()),
        "gtvn_lesions": {k: int(df[f"gtvn_{k}"].sum()) for k in ("tp", "fp", "fn", "n_true", "n_pred")},
        "conventions": seg_conventions(connectivity, matching, both_empty_dice),
    })
    s["per_centre"] = {c: seg_core_metrics(sub, both_empty_dice) for c, sub in df.groupby("centre", sort=True)}
    cols = {k: df[k].to_numpy(dtype=float) for k in
            ("gtvp_dice", "gtvn_inter_ml", "gtvn_true_ml", "gtvn_pred_ml", "gtvn_tp", "gtvn_fp", "gtvn_fn",
             "gtvp_hd95", "gtvn_hd95")}
    s["ci"] = {
        "gtvp_dice_mean": bootstrap_ci(lambda d: mean_dice(d, both_empty_dice), cols["gtvp_dice"], n=n_boot, seed=seed),
        "gtvn_dsc_agg": bootstrap_ci(aggregated_dice, cols["gtvn_inter_ml"], cols["gtvn_true_ml"],
                                     cols["gtvn_pred_ml"], n=n_boot, seed=seed),
        "gtvn_f1_agg": bootstrap_ci(aggregated_f1, cols["gtvn_tp"], cols["gtvn_fp"], cols["gtvn_fn"],
                                    n=n_boot, seed=seed),
        "gtvp_hd95_median": bootstrap_ci(lambda d: _nanstat(np.median, d), cols["gtvp_hd95"], n=n_boot, seed=seed),
        "gtvn_hd95_median": bootstrap_ci(lambda d: _nanstat(np.median, d), cols["gtvn_hd95"], n=n_boot, seed=seed),
    }
    return s


def format_seg_summary(s: dict, name: str = "") -> str:
    """A printable table of a segmentation summary (overall with 95% CI, then per centre)."""
    lines = [f"Segmentation{f' ({name})' if name else ''}: {s['n_patients']} patient(s)"]
    for k in SEG_METRICS:
        lo, hi = s["ci"][k]
        lines.append(f"  {k:<18} {s[k]:8.4f}   95% CI [{lo:.4f}, {hi:.4f}]")
    c = s["conventions"]
    lines.append(f"  GTVp mean Dice: {s['gtvp_dice_n_both_empty']} patient(s) without GTVp in truth and prediction, "
                 f"{c['gtvp_dice_both_empty_rule']} (--both-empty-dice {c['gtvp_dice_both_empty']})")
    lines.append(f"  GTVn lesions: connectivity {c['connectivity']}, IoU > {c['iou_threshold']}, "
                 f"{c['matching_rule']} (--matching {c['matching']}); HD95: {c['hd95']}")
    per = pd.DataFrame(s["per_centre"]).T
    if len(per):
        per["n_patients"] = per["n_patients"].astype(int)
        lines.append(per[["n_patients", *SEG_METRICS]].to_string(float_format=lambda v: f"{v:.4f}"))
    return "\n".join(lines)


def _run_names(preds: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for p in preds:
        base = p.resolve().name or "pred"
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def evaluate_segmentation(
    truth: str | Path,
    preds: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    workers: int = 1,
    resample_nearest: bool = False,
    missing_as_empty: bool = False,
    connectivity: int = 26,
    matching: str = "greedy",
    both_empty_dice: str = "zero",
    n_boot: int = 1000,
    seed: int = 0,
    quiet: bool = False,
    dask_scheduler: str | None = None,
) -> dict:
    """Evaluate one or several prediction folders against ground-truth label maps.

    Parameters
    ----------
    truth : path
        A release folder (any layout; its labelled cases are used) or a folder of ``<ID>.nii.gz``.
    preds : path or list of paths
        Folder(s) of predicted label maps ``<ID>.nii.gz`` / ``.mha`` on the truth's CT grid.
    out_dir : path
        Output folder. One run: ``per_patient.csv``, ``summary.json``, ``dice_per_centre.png``.
        Several runs: the same in ``out_dir/<run>/``, plus ``comparison.csv`` and
        ``ranking.csv`` (Borda) and a combined ``summary.json``.
    workers : int
        Parallel processes over patients.
    resample_nearest : bool
        Resample predictions on another grid onto the truth grid (nearest) instead of failing.
    missing_as_empty : bool
        Score a missing prediction as an empty label map (with a warning) instead of failing.
    connectivity : {6, 18, 26}
        Lesion connectivity for GTVn detection.
    matching : {"greedy", "optimal"}
        One-to-one lesion matching for F1agg: greedy by descending IoU, or a maximum matching.
    both_empty_dice : {"zero", "exclude"}
        A patient with no GTVp in truth and prediction counts as Dice 0 in the GTVp mean (the
        organisers' convention), or is left out of it.
    n_boot : int
        Bootstrap resamples for the 95% intervals (0 disables them).
    seed : int
        Bootstrap seed.
    quiet : bool
        No progress bar and no printed table.
    dask_scheduler : str, optional
        Run the per-patient work on a Dask cluster.

    Returns
    -------
    dict
        The summary (one run) or ``{"runs": {name: summary}, "ranking": [...]}`` (several).

    Raises
    ------
    EvaluationError
        Missing/extra patients, unreadable files, labels outside {0, 1, 2}, grid mismatch.
    """
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if matching not in MATCHING:
        raise ValueError(f"matching must be one of {MATCHING}, got {matching!r}")
    if both_empty_dice not in BOTH_EMPTY_DICE:
        raise ValueError(f"both_empty_dice must be one of {BOTH_EMPTY_DICE}, got {both_empty_dice!r}")
    pred_dirs = [Path(preds)] if isinstance(preds, (str, Path)) else [Path(p) for p in preds]
    if not pred_dirs:
        raise ValueError("no prediction folder given")
    labels = find_truth_labels(truth)
    found = [find_predictions(d) for d in pred_dirs]
    problems: list[Problem] = []
    for d, f in zip(pred_dirs, found):
        for pid in sorted(set(f) - set(labels)):
            problems.append(Problem(pid, str(f[pid]), "extra_prediction", "prediction for a patient without truth"))
        for pid in sorted(set(labels) - set(f)):
            sev = WARNING if missing_as_empty else ERROR
            msg = "no prediction: scored as empty" if missing_as_empty else "no prediction (see --missing-as-empty)"
            problems.append(Problem(pid, str(d), "missing_prediction", msg, sev))
    if any(not p.usable for p in problems):
        raise EvaluationError(problems)
    jobs = [_SegJob(pid, labels[pid], tuple(f.get(pid) for f in found), resample_nearest, connectivity, matching)
            for pid in sorted(labels)]
    results = list(parallel_map(_evaluate_case, jobs, workers=workers, desc="evaluate", quiet=quiet,
                                dask_scheduler=dask_scheduler))
    for r in results:
        problems += r["problems"]
    if any(not p.usable for p in problems):
        raise EvaluationError([p for p in problems if not p.usable])
    warnings = [p for p in problems if p.usable]
    for p in warnings:
        log.warning("%s", p)

    out_dir = Path(out_dir)
    names = _run_names(pred_dirs)
    summaries: dict[str, dict] = {}
    for k, (name, d) in enumerate(zip(names, pred_dirs)):
        df = pd.DataFrame([r["rows"][k] for r in results]).sort_values("patient_id").reset_index(drop=True)
        run_dir = out_dir if len(pred_dirs) == 1 else out_dir / name
        s = seg_summary(df, n_boot=n_boot, seed=seed, connectivity=connectivity, matching=matching,
                        both_empty_dice=both_empty_dice)
        s["predictions"] = str(d)
        s["truth"] = str(truth)
        run_files = {str(d), *(str(f) for f in found[k].values())}
        s["warnings"] = [str(p) for p in warnings if p.file in run_files]
        write_table(df, run_dir / "per_patient.csv")
        write_json(json_safe(s), run_dir / "summary.json")
        from hecktor_nnunet.plots import centre_boxplot

        centre_boxplot(df, ["gtvp_dice", "gtvn_dice"], run_dir / "dice_per_centre.png",
                       title=f"Dice per centre: {name}")
        summaries[name] = s
        if not quiet:
            print(format_seg_summary(s, name))
    if len(pred_dirs) == 1:
        return summaries[names[0]]
    table = pd.DataFrame({n: {k: s[k] for k in (*SEG_METRICS, "n_patients")} for n, s in summaries.items()}).T
    write_table(table.rename_axis("run").reset_index(), out_dir / "comparison.csv")
    ranking = borda_ranking(table)
    write_table(ranking.rename_axis("run").reset_index(), out_dir / "ranking.csv")
    combined = {"runs": summaries, "ranking": ranking.rename_axis("run").reset_index().to_dict("records"),
                "n_patients": len(labels), "truth": str(truth)}
    write_json(json_safe(combined), out_dir / "summary.json")
    if not quiet:
        print("\nComparison (Borda ranking; rank 1 = best):")
        print(ranking.to_string(float_format=lambda v: f"{v:.4f}"))
    return combined


# --------------------------------------------------------------------------------------------
# RFS and HPV
# --------------------------------------------------------------------------------------------

def _find_col(df: pd.DataFrame, name: str) -> str | None:
    for c in df.columns:
        if str(c).strip().lower() == name.lower():
            return c
    return None


def _parse(path: Path, reader: Callable[[Path], Any], patient_id: str = "*") -> Any:
    """``reader(path)``, with a parse failure turned into an error naming the file (and patient)."""
    try:
        return reader(path)
    except ValueError as e:  # json.JSONDecodeError and pandas' parser errors are ValueErrors
        raise EvaluationError([Problem(patient_id, str(path), "bad_format", f"cannot parse: {e}")]) from e


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read challenge-style predictions into a table indexed by normalised ``PatientID``.

    Accepted: a CSV ``PatientID,Prediction[,Probability]`` (column names case-insensitive; a
    two-column CSV without these names is read as id, prediction); a JSON object
    ``{id: value}`` or ``{id: {"Prediction": .., "Probability": ..}}`` or a list of records;
    a folder of ``<ID>.json`` files each holding one number (the container output format).

    Returns
    -------
    pandas.DataFrame
        Column ``Prediction`` (float; NaN kept) and ``Probability`` when given.
    """
    path = Path(path)
    if path.is_dir():
        rows = []
        for f in sorted(path.glob("*.json")):
            v = _parse(f, lambda q: json.loads(q.read_text()), split_image_name(f)[0] or "*")
            rows.append({"PatientID": f.name[:-5], **(v if isinstance(v, dict) else {"Prediction": v})})
        if not rows:
            raise EvaluationError([Problem("*", str(path), "no_predictions", "no <ID>.json files in folder")])
        df = pd.DataFrame(rows)
    elif not path.is_file():
        raise EvaluationError([Problem("*", str(path), "not_found", "prediction file does not exist")])
    elif path.suffix.lower() == ".json":
        obj = _parse(path, lambda q: json.loads(q.read_text()))
        if isinstance(obj, dict):
            df = pd.DataFrame([{"PatientID": k, **(v if isinstance(v, dict) else {"Prediction": v})}
                               for k, v in obj.items()])
        elif isinstance(obj, list):
            df = pd.DataFrame(obj)
        else:
            raise EvaluationError([Problem("*", str(path), "bad_format", "JSON must be an object or a list")])
    else:
        df = _parse(path, pd.read_csv)
    id_col = _find_col(df, "PatientID")
    pred_col = _find_col(df, "Prediction")
    if (id_col is None or pred_col is None) and df.shape[1] == 2:
        id_col, pred_col = df.columns
    if id_col is None or pred_col is None:
        raise EvaluationError([Problem("*", str(path), "bad_format",
                                       f"need columns PatientID and Prediction, found {list(df.columns)}")])
    out = pd.DataFrame({"PatientID": df[id_col].astype(str).map(normalise_id)})
    prob_col = _find_col(df, "Probability")
    for name, col in (("Prediction", pred_col), ("Probability", prob_col)):
        if col is None:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna() & (df[col].astype(str).str.strip().str.lower() != "nan")
        if bad.any():
            raise EvaluationError([Problem(pid, str(path), "bad_value", f"{name} {v!r} is not a number")
                                   for pid, v in zip(out["PatientID"][bad], df[col][bad])])
        out[name] = num.astype(float)
    dup = out["PatientID"].duplicated(keep=False)
    if dup.any():
        raise EvaluationError([Problem(pid, str(path), "duplicate_prediction", "patient listed more than once")
                               for pid in sorted(set(out["PatientID"][dup]))])
    return out.set_index("PatientID")


def _align(truth_csv: str | Path, pred: str | Path, truth_cols: Sequence[str], drop_nan: bool,
           complete_cases: bool = False, pred_cols: Sequence[str] = ("Prediction",)) -> tuple[pd.DataFrame, dict]:
    """Join predictions with truth; exclude (and count) patients with missing truth.

    A patient with truth and no prediction is an error naming the patient unless
    ``complete_cases`` (then left out and counted); a NaN prediction is an error unless
    ``drop_nan`` or ``complete_cases`` (then dropped and counted).
    """
    truth = read_clinical(truth_csv)
    missing_cols = [c for c in truth_cols if c not in truth.columns]
    if missing_cols:
        raise EvaluationError([Problem("*", str(truth_csv), "missing_column", f"truth table lacks {missing_cols}")])
    truth = truth.drop_duplicates("PatientID").set_index("PatientID")
    preds = read_predictions(pred)
    listed = set(preds.index)
    cols = [c for c in pred_cols if c in preds.columns]
    nan_pred = preds[cols].isna().any(axis=1)
    counts: dict[str, Any] = {"missing_predictions": "complete cases" if complete_cases else "error",
                              "n_nan_predictions_dropped": 0}
    if nan_pred.any():
        if not (drop_nan or complete_cases):
            raise EvaluationError([Problem(pid, str(pred), "nan_prediction",
                                           "prediction is NaN (see --drop-nan, --complete-cases)")
                                   for pid in preds.index[nan_pred]])
        counts["n_nan_predictions_dropped"] = int(nan_pred.sum())
        log.warning("dropped %d NaN prediction(s)", int(nan_pred.sum()))
        preds = preds[~nan_pred]
    joined = preds.join(truth[list(truth_cols)], how="left")
    no_truth = joined[list(truth_cols)].isna().any(axis=1)
    counts["n_excluded_missing_truth"] = int(no_truth.sum())
    counts["excluded_missing_truth"] = sorted(joined.index[no_truth])
    without_pred = sorted(set(truth.index[truth[list(truth_cols)].notna().all(axis=1)]) - listed)
    if without_pred and not complete_cases:
        raise EvaluationError([Problem(pid, str(pred), "missing_prediction",
                                       "truth but no prediction (see --complete-cases)") for pid in without_pred])
    counts["n_truth_without_prediction"] = len(without_pred)
    counts["truth_without_prediction"] = without_pred
    if no_truth.any():
        log.warning("%d patient(s) without truth excluded: %s", int(no_truth.sum()), ", ".join(counts["excluded_missing_truth"][:10]))
    if without_pred:
        log.warning("complete cases only: %d patient(s) with truth but no prediction left out: %s",
                    len(without_pred), ", ".join(without_pred[:10]) + (" ..." if len(without_pred) > 10 else ""))
    joined = joined[~no_truth].copy()
    bad_truth = []
    for col in truth_cols:
        test, rule = TRUTH_RULES[col]
        bad_truth += [Problem(pid, str(truth_csv), "bad_value", f"truth {col} = {v!r} {rule}")
                      for pid, v in joined.loc[~test(joined[col]), col].items()]
    if bad_truth:
        raise EvaluationError(bad_truth)
    if len(joined) < 2:
        raise EvaluationError([Problem("*", str(pred), "too_few", f"only {len(joined)} patient(s) with truth and prediction")])
    joined.insert(0, "Centre", [centre_of(p) for p in joined.index])
    return joined.rename_axis("PatientID"), counts


def _left_out(s: dict) -> str:
    """The printed note on patients left out (``complete_cases``, ``drop_nan``); empty when none."""
    parts = [f"{n} {what}" for n, what in ((s["n_truth_without_prediction"], "with truth and no prediction"),
                                            (s["n_nan_predictions_dropped"], "with a NaN prediction")) if n]
    return f"; left out: {', '.join(parts)}" if parts else ""


def _safe(func, *args, **kwargs) -> float:
    try:
        return float(func(*args, **kwargs))
    except ValueError:
        return float("nan")


def evaluate_rfs(truth_csv: str | Path, pred: str | Path, out_dir: str | Path, pred_is_time: bool = False,
                 n_boot: int = 1000, seed: int = 0, drop_nan: bool = False, complete_cases: bool = False,
                 quiet: bool = False) -> dict:
    """Task 2: Harrell's C-index (+ Uno's C, time-dependent AUC at 2 and 3 years), CIs, per centre, KM plot.

    Parameters
    ----------
    truth_csv : path
        Clinical/endpoint table with ``RFS`` (days) and ``Relapse`` (1 event, 0 censored).
    pred : path
        Predictions (see :func:`read_predictions`), read as risk (higher = earlier relapse).
    out_dir : path
        Writes ``per_patient.csv``, ``summary.json`` (top-level ``c_index``), ``km_risk_groups.png``.
    pred_is_time : bool
        Predictions are predicted times (higher = later relapse): risk = -prediction.
    n_boot, seed : int
        Bootstrap resamples and seed for the 95% intervals.
    drop_nan : bool
        Drop NaN predictions (counted) instead of failing.
    complete_cases : bool
        Score only the patients with truth and a prediction; those with truth and no (or a NaN)
        prediction are left out and counted instead of failing.
    quiet : bool
        Do not print the summary.

    Raises
    ------
    EvaluationError
        Unreadable files, invalid truth, NaN predictions, patients with truth and no prediction.
    """
    from hecktor_nnunet.plots import km_risk_groups

    df, counts = _align(truth_csv, pred, ["RFS", "Relapse"], drop_nan, complete_cases)
    df["risk"] = -df["Prediction"] if pred_is_time else df["Prediction"]
    t, e, r = df["RFS"].to_numpy(float), df["Relapse"].to_numpy(float), df["risk"].to_numpy(float)
    out_dir = Path(out_dir)
    s: dict[str, Any] = {
        "c_index": concordance_index(t, e, r),
        "c_index_ci": bootstrap_ci(concordance_index, t, e, r, n=n_boot, seed=seed),
        "uno_c": _safe(uno_c, t, e, r),
        "td_auc": {f"{int(h)}": v for h, v in time_dependent_auc(t, e, r, RFS_HORIZONS_DAYS).items()},
        "n_patients": int(len(df)),
        "n_events": int(e.sum()),
        "prediction_read_as": "time (risk = -prediction)" if pred_is_time else "risk",
        "c_index_implementation": "scikit-survival concordance_index_censored (Harrell; risk ties count 0.5)",
        **counts,
    }
    s["per_centre"] = {
        c: {"n_patients": int(len(sub)), "n_events": int(sub["Relapse"].sum()),
            "c_index": _safe(concordance_index, sub["RFS"], sub["Relapse"], sub["risk"])}
        for c, sub in df.groupby("Centre", sort=True)
    }
    s["logrank_p"] = km_risk_groups(t, e, r, out_dir / "km_risk_groups.png", title="Predicted risk groups (median split)")
    write_table(df.reset_index(), out_dir / "per_patient.csv")
    write_json(json_safe(s), out_dir / "summary.json")
    if not quiet:
        lo, hi = s["c_index_ci"]
        print(f"RFS: {s['n_patients']} patient(s), {s['n_events']} event(s){_left_out(s)}\n"
              f"  C-index {s['c_index']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]\n  Uno's C {s['uno_c']:.4f}\n"
              f"  AUC(t)  {s['td_auc']}\n  log-rank p (median split) {s['logrank_p']:.3g}\n"
              + pd.DataFrame(s["per_centre"]).T.to_string(float_format=lambda v: f"{v:.4f}"))
    return s


def evaluate_hpv(truth_csv: str | Path, pred: str | Path, out_dir: str | Path, n_boot: int = 1000,
                 seed: int = 0, drop_nan: bool = False, complete_cases: bool = False, quiet: bool = False) -> dict:
    """Task 3: balanced accuracy, sensitivity, specificity (+ AUC with probabilities), CIs, per centre, ROC.

    Parameters
    ----------
    truth_csv : path
        Clinical table with ``HPV Status`` (1 positive, 0 negative).
    pred : path
        Predictions (see :func:`read_predictions`): ``Prediction`` 0/1, optional ``Probability``.
    out_dir : path
        Writes ``per_patient.csv``, ``summary.json`` (top-level ``balanced_accuracy``) and
        ``roc.png`` when probabilities are given and both classes present.
    n_boot, seed : int
        Bootstrap resamples and seed.
    drop_nan : bool
        Drop NaN predictions (counted) instead of failing.
    complete_cases : bool
        Score only the patients with truth and a prediction (see :func:`evaluate_rfs`).
    quiet : bool
        Do not print the summary.
    """
    from hecktor_nnunet.plots import roc_plot

    df, counts = _align(truth_csv, pred, ["HPV Status"], drop_nan, complete_cases,
                        pred_cols=("Prediction", "Probability"))
    y = df["HPV Status"].to_numpy(float)
    yp = df["Prediction"].to_numpy(float)
    prob = df["Probability"].to_numpy(float) if "Probability" in df.columns else None
    bad = ~np.isin(yp, (0.0, 1.0))
    if bad.any():
        raise EvaluationError([Problem(pid, str(pred), "bad_value",
                                       f"Prediction {v} is not 0/1 (give probabilities in a Probability column)")
                               for pid, v in zip(df.index[bad], yp[bad])])
    s: dict[str, Any] = dict(binary_summary(y, yp, prob))
    s["n_patients"] = s.pop("n")
    s["n_positive"] = int(y.sum())
    s["balanced_accuracy_ci"] = bootstrap_ci(balanced_accuracy, y, yp,
                                             n=n_boot, seed=seed)
    if prob is not None:
        s["auc_ci"] = bootstrap_ci(roc_auc, y, prob, n=n_boot, seed=seed)
    s.update(counts)
    s["per_centre"] = {}
    for c, sub in df.groupby("Centre", sort=True):
        ps = binary_summary(sub["HPV Status"], sub["Prediction"],
                            sub["Probability"] if prob is not None else None)
        ps["n_patients"] = ps.pop("n")
        s["per_centre"][c] = ps
    out_dir = Path(out_dir)
    if prob is not None and len(np.unique(y)) == 2:
        roc_plot(y, prob, out_dir / "roc.png", title="HPV status")
    write_table(df.reset_index(), out_dir / "per_patient.csv")
    write_json(json_safe(s), out_dir / "summary.json")
    if not quiet:
        lo, hi = s["balanced_accuracy_ci"]
        print(f"HPV: {s['n_patients']} patient(s), {s['n_positive']} positive{_left_out(s)}\n"
              f"  balanced accuracy {s['balanced_accuracy']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]\n"
              f"  sensitivity {s['sensitivity']:.4f}  specificity {s['specificity']:.4f}  AUC {s['auc']}\n"
              + pd.DataFrame(s["per_centre"]).T.to_string())
    return s
