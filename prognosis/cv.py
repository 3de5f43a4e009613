"""Cross-validation of a :class:`~hecktor_nnunet.prognosis.models.PrognosisModel`, repeated with seeds.

Splits (``cv=``, the names of ``hecktor-convert --splits``):

``centre-stratified``
    k folds stratified by centre and outcome (event or HPV class) jointly, so every fold sees every
    centre; reshuffled for each repeat.
``leave-one-centre-out``
    Leave one centre out: each centre is a test fold once (a harder, more honest estimate of how a
    model travels to a new hospital); repeats change the model seeds only.

Each fold fits the whole model (feature selection, the inner cross-validation that chooses the
family and ``k`` or a family's settings, final fit) on the training rows alone: the outer test folds
only score. The report gives the mean fold metric (``c_index`` for rfs, ``balanced_accuracy`` for
hpv), its spread over folds, a 95% bootstrap interval on the pooled out-of-fold predictions, the same
metric per centre, and for every fold what its inner cross-validation chose and the inner scores
behind the choice.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold

from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.metrics.classification import balanced_accuracy, binary_summary
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import stratify_labels

log = logging.getLogger(__name__)

#: the split kinds, named as ``hecktor-convert --splits`` names them
CV_KINDS = ("centre-stratified", "leave-one-centre-out")


@dataclass
class CVResult:
    """The report (JSON-ready dict) and the out-of-fold predictions.

    ``oof`` columns: PatientID, Centre, repeat, fold, score (risk or P(HPV+)), prediction (hpv 0/1),
    and the truth (``time``/``event`` or ``label``).
    """

    report: dict
    oof: pd.DataFrame

    def write_oof(self, folder: str | Path, task: str, model: str) -> None:
        """``folder/oof_predictions.csv`` and the first repeat's out-of-fold KM (rfs) or ROC (hpv) plot."""
        from hecktor_nnunet.evaluation.plots import outcome_plot  # matplotlib: not at the CLI's import
        from hecktor_nnunet.io.atomic_io import write_table

        folder = Path(folder)
        write_table(self.oof, folder / "oof_predictions.csv")
        first = self.oof[self.oof["repeat"] == 0]
        key = OUTCOME_TASKS[task].metric
        outcome_plot(task, first, first["score"].to_numpy(), folder / OUTCOME_TASKS[task].figure,
                     f"{task} {model}, out-of-fold ({self.report['cv']}); {key} {self.report[key]:.3f}")


def splits(centres: np.ndarray, strata: np.ndarray, cv: str, n_splits: int, seed: int
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs of one repeat.

    Parameters
    ----------
    centres : ndarray of str
        Centre of each patient.
    strata : ndarray of int
        Outcome class (event indicator or HPV label) used with the centre for stratification.
    cv : {"centre-stratified", "leave-one-centre-out"}
    n_splits : int
        Folds of ``centre-stratified``.
    seed : int
        Shuffling seed (``centre-stratified`` only).
    """
    if cv == "leave-one-centre-out":
        if len(set(centres)) < 2:
            raise ValueError("leave-one-centre-out needs at least two centres")
        return list(LeaveOneGroupOut().split(centres, groups=centres))
    if cv != "centre-stratified":
        raise ValueError(f"unknown cv {cv!r}; choose one of {CV_KINDS}")
    labels = np.asarray([f"{c}|{s}" for c, s in zip(centres, strata)])
    counts = Counter(labels)
    # strata smaller than the number of folds are pooled by outcome only
    labels = np.asarray([lab if counts[lab] >= n_splits else f"*|{s}" for lab, s in zip(labels, strata)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(labels, labels))


def outcome_truth(task: str, y, index=None) -> pd.DataFrame:
    """The target as a table: ``event`` and ``time`` (rfs, from the structured array) or ``label`` (hpv)."""
    if task == "rfs":
        names = y.dtype.names
        return pd.DataFrame({"event": y[names[0]].astype(int), "time": y[names[1]].astype(float)}, index=index)
    return pd.DataFrame({"label": np.asarray(y).astype(int)}, index=index)


def _metric(task: str, truth: pd.DataFrame, score: np.ndarray, pred: np.ndarray | None) -> float:
    if task == "rfs":
        return concordance_index(truth["time"], truth["event"], score)
    return balanced_accuracy(truth["label"].to_numpy(), pred)


def _ci(task: str, truth: pd.DataFrame, score: np.ndarray, pred: np.ndarray | None, n_bootstrap: int,
        seed: int) -> tuple[float, float]:
    if task == "rfs":
        return bootstrap_ci(concordance_index, truth["time"].to_numpy(), truth["event"].to_numpy(), score,
                            n=n_bootstrap, seed=seed)
    return bootstrap_ci(balanced_accuracy, truth["label"].to_numpy(), pred, n=n_bootstrap, seed=seed)


def _fit_fold(job: tuple) -> tuple[int, int, np.ndarray, np.ndarray, PrognosisModel]:
    """Fit one outer fold's model on its training rows (runs in a worker process)."""
    make_model, X, y, r, f, tr, te, seed = job
    return r, f, tr, te, make_model(seed).fit(X.iloc[tr], y[tr])


def cross_validate(X: pd.DataFrame, y: np.ndarray, centres: np.ndarray, *, task: str,
                   make_model: Callable[[int], PrognosisModel], cv: str = "centre-stratified", n_splits: int = 5,
                   repeats: int = 3, seed: int = 0, n_bootstrap: int = 1000, workers: int = 1,
                   quiet: bool = False) -> CVResult:
    """Repeated cross-validation with no leakage: every fold fits a fresh model on its training rows.

    Parameters
    ----------
    X : DataFrame (n, p)
        Features indexed by PatientID.
    y : ndarray (n,)
        Structured (event, time) array for rfs, 0/1 labels for hpv.
    centres : ndarray of str (n,)
    task : {"rfs", "hpv"}
    make_model : callable
        ``make_model(random_state) -> PrognosisModel`` (unfitted).
    cv : {"centre-stratified", "leave-one-centre-out"}
    n_splits : int
        Folds of ``centre-stratified``.
    repeats : int
        Repeats with seeds ``seed, seed + 1, ...``.
    n_bootstrap : int
        Resamples of the 95% intervals.
    workers : int
        Processes fitting folds in parallel.

    Returns
    -------
    CVResult
    """
    key = OUTCOME_TASKS[task].metric
    truth = outcome_truth(task, y, X.index)
    strata = stratify_labels(task, y)
    folds, oof_parts, selected, chosen = [], [], Counter(), Counter()
    plan = [(make_model, X, y, r, f, tr, te, seed + r) for r in range(repeats)
            for f, (tr, te) in enumerate(splits(centres, strata, cv, n_splits, seed + r))]
    fitted = sorted(parallel_map(_fit_fold, plan, workers=workers, desc=f"cv {task}", quiet=quiet),
                    key=lambda d: (d[0], d[1]))
    for r, f, tr, te, model in fitted:
        selected.update(model.selected_features_)
        chosen[f"{model.chosen_['model']} (k={model.chosen_['k_features']})"] += 1
        score = model.decision_score(X.iloc[te])
        pred = model.predict(X.iloc[te]) if task == "hpv" else None
        part = truth.iloc[te].copy()
        part.insert(0, "Centre", centres[te])
        part["repeat"], part["fold"], part["score"] = r, f, score
        if pred is not None:
            part["prediction"] = pred
        oof_parts.append(part)
        try:
            value = _metric(task, truth.iloc[te], score, pred)
        except ValueError as exc:  # e.g. a test fold without events
            log.warning("repeat %d fold %d: %s undefined (%s)", r, f, key, exc)
            value = float("nan")
        entry = {"repeat": r, "fold": f, "n_train": len(tr), "n_test": len(te),
                 "test_centres": sorted(set(centres[te])), key: value}
        if task == "hpv":
            entry.update({k: v for k, v in binary_summary(truth["label"].iloc[te], pred, score).items() if k != "n"})
        entry.update({"chosen": model.chosen_, "params": model.best_params_, "inner_scores": model.search_})
        folds.append(entry)
    oof = pd.concat(oof_parts).rename_axis("PatientID").reset_index()
    values = np.asarray([fd[key] for fd in folds], dtype=float)
    report = {"task": task, "cv": cv, "n_splits": len(plan) // repeats, "repeats": repeats, "seed": seed,
              "n_patients": len(X), "n_features_in": X.shape[1],
              key: float(np.nanmean(values)), f"{key}_fold_sd": float(np.nanstd(values)),
              f"{key}_fold_range": [float(np.nanmin(values)), float(np.nanmax(values))]}
    if task == "rfs":
        report["n_events"] = int(truth["event"].sum())
    else:
        report["n_positive"] = int(truth["label"].sum())
        for k in ("sensitivity", "specificity", "auc"):
            report[k] = float(np.nanmean([fd[k] for fd in folds]))
    # 95% interval: bootstrap of the pooled out-of-fold predictions of each repeat, bounds averaged
    cis = [_ci(task, g, g["score"].to_numpy(), g["prediction"].to_numpy() if task == "hpv" else None,
               n_bootstrap, seed + r) for r, g in oof.groupby("repeat")]
    report[f"{key}_ci95"] = [float(np.nanmean([c[0] for c in cis])), float(np.nanmean([c[1] for c in cis]))]
    report["per_centre"] = _per_centre(task, key, oof, n_bootstrap, seed)
    report["chosen"] = {k: v / len(plan) for k, v in chosen.most_common()}
    report["folds"] = folds
    report["selection_frequency"] = {k: v / len(plan) for k, v in selected.most_common()}
    return CVResult(report, oof)


def _per_centre(task: str, key: str, oof: pd.DataFrame, n_bootstrap: int, seed: int) -> dict:
    out = {}
    for centre, g in oof.groupby("Centre"):
        values, cis = [], []
        for r, gr in g.groupby("repeat"):
            pred = gr["prediction"].to_numpy() if task == "hpv" else None
            try:
                values.append(_metric(task, gr, gr["score"].to_numpy(), pred))
                cis.append(_ci(task, gr, gr["score"].to_numpy(), pred, n_bootstrap, seed + int(r)))
            except ValueError:
                continue
        out[str(centre)] = {"n": int(len(g) // g["repeat"].nunique()),
                            key: float(np.mean(values)) if values else None,
                            f"{key}_ci95": [float(np.nanmean([c[0] for c in cis])),
                                            float(np.nanmean([c[1] for c in cis]))] if cis else None}
    return out
