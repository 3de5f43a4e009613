"""Inner cross-validation: the choice of family and ``k`` (``auto``) and a family's grid search.

Both run on the rows given to them only (a training fold of the outer cross-validation, or all
patients for the final model), so what they choose never sees an outer test fold. Every candidate
is scored on the same inner folds; each inner fold fits its own column screen, so the screen is
part of what is validated. Scores: Harrell's C-index of the risk (rfs), ROC AUC of P(HPV+) (hpv);
the HPV threshold is chosen afterwards, inside the final fit.
"""

from __future__ import annotations

import logging
from itertools import product

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from hecktor_nnunet.metrics.classification import roc_auc
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.ensemble import EnsembleSurvival
from hecktor_nnunet.prognosis.estimators import check_survival_target
from hecktor_nnunet.prognosis.families import ENSEMBLE, GRIDS, families, make_estimator, model_names
from hecktor_nnunet.prognosis.screen import FeatureSelector

log = logging.getLogger(__name__)

#: Screened columns ``auto`` chooses among (clinical columns come on top).
K_GRID = (5, 10, 20)
#: Below these the inner folds have no events (or no positives) and models fall back to constants.
MIN_PATIENTS = 20
MIN_EVENTS = 10
MIN_PER_CLASS = 8


def score(task: str, y, prediction: np.ndarray) -> float:
    """Model-selection score: C-index of the risk (rfs) or ROC AUC of P(HPV+) (hpv)."""
    if task == "rfs":
        event, time = check_survival_target(y)
        return concordance_index(time, event, prediction)
    return roc_auc(np.asarray(y).astype(int), prediction)


def stratify_labels(task: str, y) -> np.ndarray:
    """Labels to stratify folds by: the event indicator (rfs) or the class (hpv)."""
    y = np.asarray(y)
    return y[y.dtype.names[0]].astype(int) if y.dtype.names else y.astype(int)


def decision_output(task: str, estimator, X) -> np.ndarray:
    """The continuous output of a fitted estimator: risk (rfs) or P(HPV+) (hpv)."""
    return estimator.predict_proba(X)[:, 1] if task == "hpv" else estimator.predict(X)


def check_learnable(task: str, y) -> None:
    """Refuse a training set too small to learn from, saying how many patients (events, classes) it needs."""
    y = np.asarray(y)
    counts = {"patients": (len(y), MIN_PATIENTS)}
    if task == "rfs":
        counts["events"] = (int(stratify_labels(task, y).sum()), MIN_EVENTS)
    else:
        labels = stratify_labels(task, y)
        counts["HPV-positive patients"] = (int(labels.sum()), MIN_PER_CLASS)
        counts["HPV-negative patients"] = (int((labels == 0).sum()), MIN_PER_CLASS)
    short = [f"{have} {what} (at least {need} needed)" for what, (have, need) in counts.items() if have < need]
    if short:
        raise ValueError(f"too few to train a {task} model: {'; '.join(short)}")


def _inner_folds(task: str, y, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    labels = stratify_labels(task, y)
    n_folds = min(n_folds, int(np.bincount(labels).min()))
    if n_folds < 2:
        raise ValueError(f"too few patients in the smaller {task} class for inner cross-validation")
    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(labels, labels))


def _screen(X: pd.DataFrame, y, k: int, corr_threshold: float) -> FeatureSelector:
    clinical = tuple(c for c in X.columns if str(c).startswith("CLIN_"))
    return FeatureSelector(k=k, corr_threshold=corr_threshold, always_keep=clinical).fit(X, y)


def _fit_predict(task: str, model: str, params: dict, Xtr, ytr, Xte, seed: int, n_jobs: int):
    """(fitted estimator, test output) or (None, error text) when the family cannot fit these rows."""
    extra = {"threshold_folds": 0} if task == "hpv" else {}
    try:
        est = make_estimator(task, model, seed, n_jobs, **params, **extra).fit(Xtr, ytr)
        return est, decision_output(task, est, Xte)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        return None, f"{type(e).__name__}: {e}"


def _ensemble_output(task: str, fitted: dict, Xtr, Xte) -> np.ndarray:
    if task == "rfs":
        return EnsembleSurvival([]).set_fitted(list(fitted.items()), Xtr).predict(Xte)
    return np.mean([est.predict_proba(Xte)[:, 1] for est in fitted.values()], axis=0)


def _summary(scores: list[float], errors: list[str]) -> dict:
    ok = not errors and all(np.isfinite(scores))
    return {"score": float(np.mean(scores)) if ok else None, "fold_scores": [round(float(s), 6) for s in scores],
            "error": errors[0] if errors else None}


def select_model(X: pd.DataFrame, y, task: str, *, candidates: tuple[str, ...] | None = None,
                 k_grid: tuple[int, ...] | None = None, inner_folds: int = 3, corr_threshold: float = 0.85,
                 random_state: int = 0, n_jobs: int = 1) -> tuple[dict, list[dict]]:
    """Choose the family and ``k`` with the best mean inner-fold score.

    Parameters
    ----------
    X : DataFrame (n, p)
    y : ndarray (n,)
        Structured (event, time) array (rfs) or 0/1 labels (hpv).
    task : {"rfs", "hpv"}
    candidates : tuple of str, optional
        Families (and ``ensemble``) to choose among, each at its defaults; default all of them.
    k_grid : tuple of int, optional
        Screened-column counts (default :data:`K_GRID`).
    inner_folds : int
        Stratified folds (by event or class), fewer when the smaller class is smaller.

    Returns
    -------
    chosen : dict
        ``{"model": name, "k_features": k, "inner_score": mean score}``.
    table : list of dict
        Every candidate: ``model``, ``k_features``, ``score`` (None when it failed), ``fold_scores``,
        ``error`` (the first failure's message, or None).

    Raises
    ------
    ValueError
        When no candidate could be fitted on every inner fold.
    """
    names = tuple(candidates) if candidates else model_names(task)[1:]
    unknown = [m for m in names if m not in model_names(task)[1:]]
    if unknown:
        raise ValueError(f"unknown {task} model(s) {unknown}; choose among {model_names(task)[1:]}")
    fitted_families = sorted(set(families(task)) if ENSEMBLE in names else set(names),
                             key=list(families(task)).index)
    y = np.asarray(y)
    scores: dict[tuple[str, int], list[float]] = {}
    errors: dict[tuple[str, int], list[str]] = {}
    for tr, te in _inner_folds(task, y, inner_folds, random_state):
        for k in (k_grid or K_GRID):
            screen = _screen(X.iloc[tr], y[tr], k, corr_threshold)
            Xtr, Xte = screen.transform(X.iloc[tr]), screen.transform(X.iloc[te])
            outputs, fitted = {}, {}
            for family in fitted_families:
                est, out = _fit_predict(task, family, {}, Xtr, y[tr], Xte, random_state, n_jobs)
                if est is None:
                    errors.setdefault((family, k), []).append(out)
                    continue
                fitted[family], outputs[family] = est, out
            if ENSEMBLE in names:
                if len(fitted) == len(fitted_families):
                    outputs[ENSEMBLE] = _ensemble_output(task, fitted, Xtr, Xte)
                else:
                    errors.setdefault((ENSEMBLE, k), []).append("a member family could not be fitted")
            for name, out in outputs.items():
                try:
                    scores.setdefault((name, k), []).append(score(task, y[te], out))
                except ValueError:  # an inner fold without a comparable pair or without both classes
                    scores.setdefault((name, k), []).append(float("nan"))
    table = [{"model": m, "k_features": k, **_summary(scores.get((m, k), []), errors.get((m, k), []))}
             for m in names for k in (k_grid or K_GRID)]
    usable = [row for row in table if row["score"] is not None]
    if not usable:
        raise ValueError(f"no {task} model could be fitted on every inner fold: "
                         + "; ".join(f"{r['model']}: {r['error']}" for r in table if r["error"])[:500])
    best = max(usable, key=lambda r: r["score"])  # ties: the earlier (simpler, fewer columns) candidate
    return {"model": best["model"], "k_features": best["k_features"], "inner_score": best["score"]}, table


def grid_search(X: pd.DataFrame, y, task: str, model: str, *, k: int, grid: dict | None = None,
                inner_folds: int = 3, corr_threshold: float = 0.85, random_state: int = 0,
                n_jobs: int = 1) -> tuple[dict, list[dict]]:
    """A named family's settings with the best mean inner-fold score (defaults when nothing to search).

    Returns
    -------
    best_params : dict
    table : list of dict
        ``params``, ``score`` (None when a fold failed), ``fold_scores``, ``error``.
    """
    grid = grid if grid is not None else GRIDS.get((task, model), {})
    keys = sorted(grid)
    points = [dict(zip(keys, values)) for values in product(*(grid[k] for k in keys))] or [{}]
    if inner_folds < 2 or len(points) == 1 or model == ENSEMBLE:
        return points[0] if model != ENSEMBLE else {}, []
    y = np.asarray(y)
    results = {i: ([], []) for i in range(len(points))}
    for tr, te in _inner_folds(task, y, inner_folds, random_state):
        screen = _screen(X.iloc[tr], y[tr], k, corr_threshold)
        Xtr, Xte = screen.transform(X.iloc[tr]), screen.transform(X.iloc[te])
        for i, params in enumerate(points):
            est, out = _fit_predict(task, model, params, Xtr, y[tr], Xte, random_state, n_jobs)
            if est is None:
                results[i][1].append(out)
                continue
            try:
                results[i][0].append(score(task, y[te], out))
            except ValueError:
                results[i][0].append(float("nan"))
    table = [{"params": p, **_summary(*results[i])} for i, p in enumerate(points)]
    usable = [row for row in table if row["score"] is not None]
    if not usable:
        raise ValueError(f"{model} could not be fitted on every inner fold: {table[0]['error']}")
    return max(usable, key=lambda r: r["score"])["params"], table
