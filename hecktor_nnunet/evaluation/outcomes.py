"""Tasks 2 and 3: RFS risk and HPV status predictions against the clinical truth, with 95% intervals.

:func:`evaluate_rfs` (Harrell's C-index, Uno's C, AUC(t), Kaplan-Meier risk groups) and
:func:`evaluate_hpv` (balanced accuracy, sensitivity, specificity, AUC, ROC) read challenge-style
prediction files (:func:`read_predictions`), join them with the truth, and write ``per_patient.csv``,
``summary.json`` and the task's figure. :func:`format_outcome` is what ``hecktor-evaluate`` prints.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.common import EvaluationError, or_nan
from hecktor_nnunet.evaluation.plots import km_risk_groups, roc_plot
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.atomic_io import json_safe, write_json, write_table
from hecktor_nnunet.io.clinical import read_clinical
from hecktor_nnunet.io.ids import centre_of, normalise_id, split_image_name
from hecktor_nnunet.io.problems import Problem, ProblemsError
from hecktor_nnunet.io.tables import collapse_duplicates, read_table
from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.metrics.classification import balanced_accuracy, binary_summary, roc_auc
from hecktor_nnunet.metrics.survival import concordance_index, time_dependent_auc, uno_c

log = logging.getLogger(__name__)

RFS_HORIZONS_DAYS = (730.0, 1095.0)


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
    a folder of ``<ID>.json`` files each holding one number (the container output format). A CSV
    may be comma-, semicolon- or tab-separated, with decimal commas (:func:`~hecktor_nnunet.io.tables.read_table`).
    Ids are normalised (``chum_001`` is ``CHUM-001``); a patient listed twice with the same values
    is read once (warning), with different values is an error.

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
        df = _parse(path, lambda q: read_table(q)[0])
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
    return _one_row_per_patient(out, path).set_index("PatientID")


def _one_row_per_patient(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table with identical repeated rows read once (warning); EvaluationError when repeated rows differ."""
    df, problems = collapse_duplicates(df, str(path))
    errors = [p for p in problems if not p.usable]
    if errors:
        raise EvaluationError(errors)
    for p in problems:
        log.warning("%s", p)
    return df


def _align(truth_csv: str | Path, pred: str | Path, truth_cols: Sequence[str], drop_nan: bool,
           complete_cases: bool = False, pred_cols: Sequence[str] = ("Prediction",)) -> tuple[pd.DataFrame, dict]:
    """Join predictions with truth; exclude (and count) patients with missing truth.

    A patient with truth and no prediction is an error naming the patient unless
    ``complete_cases`` (then left out and counted); a NaN prediction is an error unless
    ``drop_nan`` or ``complete_cases`` (then dropped and counted).
    """
    try:  # outcome spellings, RFS > 0 and one row per patient are checked by the reader
        truth = read_clinical(truth_csv)
    except ProblemsError as e:
        raise EvaluationError(e.problems) from e
    missing_cols = [c for c in truth_cols if c not in truth.columns]
    if missing_cols:
        raise EvaluationError([Problem("*", str(truth_csv), "missing_column", f"truth table lacks {missing_cols}")])
    truth = truth.set_index("PatientID")
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
    if len(joined) < 2:
        raise EvaluationError([Problem("*", str(pred), "too_few", f"only {len(joined)} patient(s) with truth and prediction")])
    joined.insert(0, "Centre", [centre_of(p) for p in joined.index])
    return joined.rename_axis("PatientID"), counts


def _left_out(s: dict) -> str:
    """The printed note on patients left out (``complete_cases``, ``drop_nan``); empty when none."""
    parts = [f"{n} {what}" for n, what in ((s["n_truth_without_prediction"], "with truth and no prediction"),
                                            (s["n_nan_predictions_dropped"], "with a NaN prediction")) if n]
    return f"; left out: {', '.join(parts)}" if parts else ""


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
        Deprecated, without effect: the summary is printed by ``hecktor-evaluate`` (:func:`format_outcome`).

    Raises
    ------
    EvaluationError
        Unreadable files, invalid truth (an unreadable Relapse or RFS, RFS <= 0 days, a patient listed
        twice with different values: see :func:`~hecktor_nnunet.io.clinical.read_clinical`), NaN
        predictions, patients with truth and no prediction.
    """
    df, counts = _align(truth_csv, pred, ["RFS", "Relapse"], drop_nan, complete_cases)
    df["risk"] = -df["Prediction"] if pred_is_time else df["Prediction"]
    t, e, r = df["RFS"].to_numpy(float), df["Relapse"].to_numpy(float), df["risk"].to_numpy(float)
    out_dir = Path(out_dir)
    s: dict[str, Any] = {
        "c_index": concordance_index(t, e, r),
        "c_index_ci": bootstrap_ci(concordance_index, t, e, r, n=n_boot, seed=seed),
        "uno_c": or_nan(uno_c, t, e, r),
        "td_auc": {f"{int(h)}": v for h, v in time_dependent_auc(t, e, r, RFS_HORIZONS_DAYS).items()},
        "n_patients": int(len(df)),
        "n_events": int(e.sum()),
        "prediction_read_as": "time (risk = -prediction)" if pred_is_time else "risk",
        "c_index_implementation": "scikit-survival concordance_index_censored (Harrell; risk ties count 0.5)",
        **counts,
    }
    s["per_centre"] = {
        c: {"n_patients": int(len(sub)), "n_events": int(sub["Relapse"].sum()),
            "c_index": or_nan(concordance_index, sub["RFS"], sub["Relapse"], sub["risk"])}
        for c, sub in df.groupby("Centre", sort=True)
    }
    s["logrank_p"] = km_risk_groups(t, e, r, out_dir / OUTCOME_TASKS["rfs"].figure,
                                    title="Predicted risk groups (median split)")
    write_table(df.reset_index(), out_dir / "per_patient.csv")
    write_json(json_safe(s), out_dir / "summary.json")
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
        Deprecated, without effect (see :func:`evaluate_rfs`).
    """
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
        roc_plot(y, prob, out_dir / OUTCOME_TASKS["hpv"].figure, title="HPV status")
    write_table(df.reset_index(), out_dir / "per_patient.csv")
    write_json(json_safe(s), out_dir / "summary.json")
    return s


def format_outcome(task: str, s: dict) -> str:
    """What ``hecktor-evaluate rfs|hpv`` prints for a summary of :func:`evaluate_rfs` / :func:`evaluate_hpv`."""
    if task == "rfs":
        lo, hi = s["c_index_ci"]
        return (f"RFS: {s['n_patients']} patient(s), {s['n_events']} event(s){_left_out(s)}\n"
                f"  C-index {s['c_index']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]\n  Uno's C {s['uno_c']:.4f}\n"
                f"  AUC(t)  {s['td_auc']}\n  log-rank p (median split) {s['logrank_p']:.3g}\n"
                + pd.DataFrame(s["per_centre"]).T.to_string(float_format=lambda v: f"{v:.4f}"))
    lo, hi = s["balanced_accuracy_ci"]
    return (f"HPV: {s['n_patients']} patient(s), {s['n_positive']} positive{_left_out(s)}\n"
            f"  balanced accuracy {s['balanced_accuracy']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]\n"
            f"  sensitivity {s['sensitivity']:.4f}  specificity {s['specificity']:.4f}  AUC {s['auc']}\n"
            + pd.DataFrame(s["per_centre"]).T.to_string())
