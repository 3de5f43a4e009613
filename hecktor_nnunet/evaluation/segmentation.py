"""Task 1: predicted label maps against the truth, per patient, per centre, with 95% intervals.

:func:`evaluate_segmentation` finds the label maps (:mod:`hecktor_nnunet.io.label_maps`), scores every
patient in parallel with :func:`~hecktor_nnunet.metrics.segmentation.patient_metrics`, and writes
``per_patient.csv``, ``summary.json`` and ``dice_per_centre.png`` per run (several runs: also their
comparison and Borda ranking). :func:`format_segmentation` is what ``hecktor-evaluate seg`` prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hecktor_nnunet.evaluation.common import EvaluationError, nanstat
from hecktor_nnunet.evaluation.plots import centre_boxplot
from hecktor_nnunet.evaluation.tasks import SEG_METRICS
from hecktor_nnunet.io.atomic_io import json_safe, write_json, write_table
from hecktor_nnunet.io.geometry import Grid
from hecktor_nnunet.io.ids import centre_of
from hecktor_nnunet.io.label_grid import label_map_on_grid
from hecktor_nnunet.io.label_maps import find_label_maps, find_truth_labels, label_array, read_label_map
from hecktor_nnunet.io.problems import ERROR, WARNING, CaseError, Problem, ProblemsError
from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.metrics.segmentation import (BOTH_EMPTY_DICE, IOU_THRESHOLD, MATCHING, aggregated_dice,
                                                 aggregated_f1, borda_ranking, headline_metrics, mean_dice, patient_metrics)
from hecktor_nnunet.parallel import parallel_map

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SegJob:
    patient_id: str
    truth: Path
    preds: tuple[Path | None, ...]
    resample_nearest: bool
    connectivity: int
    matching: str


def _prediction_array(job: _SegJob, pred_path: Path, grid: Grid, problems: list[Problem]) -> np.ndarray:
    """A prediction's checked array on the truth's grid (resampled, with a warning, when allowed)."""
    p_img = sitk.ReadImage(str(pred_path))
    if p_img.GetDimension() != 3 or p_img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError([Problem(job.patient_id, str(pred_path), "bad_image", "prediction must be a 3D scalar image")])
    p_img, warnings = label_map_on_grid(p_img, grid, job.patient_id, pred_path, job.resample_nearest)
    problems += warnings
    return label_array(p_img, pred_path, job.patient_id)


def _evaluate_case(job: _SegJob) -> dict:
    """Worker: metrics of every run for one patient; failures returned as problems."""
    problems: list[Problem] = []
    rows: list[dict | None] = []
    try:
        t_img, t_arr = read_label_map(job.truth, job.patient_id)
    except CaseError as e:
        return {"patient_id": job.patient_id, "rows": rows, "problems": e.problems}
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes a named problem
        return {"patient_id": job.patient_id, "rows": rows,
                "problems": [Problem(job.patient_id, str(job.truth), "failed", f"{type(e).__name__}: {e}")]}
    grid, spacing = Grid.of(t_img), t_img.GetSpacing()[::-1]
    for pred_path in job.preds:
        try:
            p_arr = np.zeros_like(t_arr) if pred_path is None else _prediction_array(job, pred_path, grid, problems)
            row = patient_metrics(t_arr, p_arr, spacing, connectivity=job.connectivity, matching=job.matching)
            rows.append({"patient_id": job.patient_id, "centre": centre_of(job.patient_id),
                         "prediction": "" if pred_path is None else str(pred_path), **row})
        except CaseError as e:
            problems += e.problems
            rows.append(None)
        except Exception as e:  # noqa: BLE001
            problems.append(Problem(job.patient_id, str(pred_path), "failed", f"{type(e).__name__}: {e}"))
            rows.append(None)
    return {"patient_id": job.patient_id, "rows": rows, "problems": problems}


def seg_core_metrics(df: pd.DataFrame, both_empty_dice: str = "zero") -> dict:
    """The headline Task 1 metrics of a per-patient table (rows from :func:`patient_metrics`).

    ``both_empty_dice`` is how the GTVp mean counts a patient with no GTVp in truth and
    prediction (:func:`~hecktor_nnunet.metrics.segmentation.mean_dice`).
    """
    return {
        **headline_metrics(df, both_empty_dice),
        "gtvp_hd95_median": nanstat(np.median, df["gtvp_hd95"]),
        "gtvn_hd95_median": nanstat(np.median, df["gtvn_hd95"]),
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
        "gtvn_dice_mean_per_patient": nanstat(np.mean, df["gtvn_dice"]),
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
        "gtvp_hd95_median": bootstrap_ci(lambda d: nanstat(np.median, d), cols["gtvp_hd95"], n=n_boot, seed=seed),
        "gtvn_hd95_median": bootstrap_ci(lambda d: nanstat(np.median, d), cols["gtvn_hd95"], n=n_boot, seed=seed),
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
        No progress bar (the printed tables are :func:`format_segmentation`'s, printed by the command).
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
    _check_options(connectivity, matching, both_empty_dice)
    pred_dirs = [Path(preds)] if isinstance(preds, (str, Path)) else [Path(p) for p in preds]
    if not pred_dirs:
        raise ValueError("no prediction folder given")
    labels, found, problems = _find_inputs(truth, pred_dirs, missing_as_empty)
    jobs = [_SegJob(pid, labels[pid], tuple(f.get(pid) for f in found), resample_nearest, connectivity, matching)
            for pid in sorted(labels)]
    results = list(parallel_map(_evaluate_case, jobs, workers=workers, desc="evaluate", quiet=quiet,
                                dask_scheduler=dask_scheduler))
    problems += [p for r in results for p in r["problems"]]
    if any(not p.usable for p in problems):
        raise EvaluationError([p for p in problems if not p.usable])
    for p in problems:
        log.warning("%s", p)
    summaries = {}
    for k, (name, d) in enumerate(zip(_run_names(pred_dirs), pred_dirs)):
        df = pd.DataFrame([r["rows"][k] for r in results]).sort_values("patient_id").reset_index(drop=True)
        run_files = {str(d), *(str(f) for f in found[k].values())}
        s = seg_summary(df, n_boot=n_boot, seed=seed, connectivity=connectivity, matching=matching,
                        both_empty_dice=both_empty_dice)
        s.update({"predictions": str(d), "truth": str(truth),
                  "warnings": [str(p) for p in problems if p.file in run_files]})
        _write_run(df, s, Path(out_dir) if len(pred_dirs) == 1 else Path(out_dir) / name, name)
        summaries[name] = s
    if len(pred_dirs) == 1:
        return next(iter(summaries.values()))
    return _write_comparison(summaries, Path(out_dir), len(labels), truth)


def _check_options(connectivity: int, matching: str, both_empty_dice: str) -> None:
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if matching not in MATCHING:
        raise ValueError(f"matching must be one of {MATCHING}, got {matching!r}")
    if both_empty_dice not in BOTH_EMPTY_DICE:
        raise ValueError(f"both_empty_dice must be one of {BOTH_EMPTY_DICE}, got {both_empty_dice!r}")


def _find_inputs(truth: str | Path, pred_dirs: Sequence[Path], missing_as_empty: bool
                 ) -> tuple[dict[str, Path], list[dict[str, Path]], list[Problem]]:
    """The true label maps, each run's predictions and the warnings (missing predictions scored as empty).

    Extra predictions, and missing ones unless ``missing_as_empty``, are an :class:`EvaluationError`.
    """
    try:
        labels = find_truth_labels(truth)
        found = [find_label_maps(d, "prediction") for d in pred_dirs]
    except ProblemsError as e:
        raise EvaluationError(e.problems) from None
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
    return labels, found, problems


def _write_run(df: pd.DataFrame, summary: dict, run_dir: Path, name: str) -> None:
    write_table(df, run_dir / "per_patient.csv")
    write_json(json_safe(summary), run_dir / "summary.json")
    centre_boxplot(df, ["gtvp_dice", "gtvn_dice"], run_dir / "dice_per_centre.png", title=f"Dice per centre: {name}")


def _write_comparison(summaries: dict[str, dict], out_dir: Path, n_patients: int, truth: str | Path) -> dict:
    """``comparison.csv``, ``ranking.csv`` (Borda) and the combined ``summary.json`` of several runs."""
    table = pd.DataFrame({n: {k: s[k] for k in (*SEG_METRICS, "n_patients")} for n, s in summaries.items()}).T
    write_table(table.rename_axis("run").reset_index(), out_dir / "comparison.csv")
    ranking = borda_ranking(table)
    write_table(ranking.rename_axis("run").reset_index(), out_dir / "ranking.csv")
    combined = {"runs": summaries, "ranking": ranking.rename_axis("run").reset_index().to_dict("records"),
                "n_patients": n_patients, "truth": str(truth)}
    write_json(json_safe(combined), out_dir / "summary.json")
    return combined


def format_segmentation(result: dict) -> str:
    """What ``hecktor-evaluate seg`` prints: each run's summary, then the ranking of several runs."""
    if "runs" not in result:
        return format_seg_summary(result, _run_names([Path(result["predictions"])])[0])
    parts = [format_seg_summary(s, name) for name, s in result["runs"].items()]
    ranking = pd.DataFrame(result["ranking"]).set_index("run")
    parts.append("\nComparison (Borda ranking; rank 1 = best):\n" + ranking.to_string(float_format=lambda v: f"{v:.4f}"))
    return "\n".join(parts)
