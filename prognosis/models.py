"""Outcome models as scikit-learn style estimators.

The estimators themselves live in :mod:`hecktor_nnunet.prognosis.estimators` (imported here too):

* :class:`XGBSurvival`: xgboost with the Cox objective; ``predict`` is the log-hazard (higher =
  earlier relapse).
* scikit-survival baselines by name (:func:`make_estimator`): ``coxnet`` (penalised Cox),
  ``rsf`` (random survival forest), ``gbsa`` (gradient-boosted Cox), each behind a median-imputation
  and scaling pipeline.
* :class:`XGBHPVClassifier`: xgboost classifier weighted by the class ratio, whose decision
  threshold maximises balanced accuracy on out-of-fold predictions of its own training data.

Here, what turns them into a model:

* :class:`FeatureSelector`: drops sparse and near-constant columns, ranks the rest by a univariate
  screen and prunes correlated ones down to ``k``.
* :class:`PrognosisModel`: selector + small inner-CV grid search + final estimator; everything is
  learned from the data given to ``fit``, so cross-validation around it has no leakage.

Targets: survival models take one structured array ``Surv.from_arrays(event, time)``; the HPV
classifier takes 0/1 labels (1 = HPV positive).
"""

from __future__ import annotations

import logging
from itertools import product

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.metrics.classification import roc_auc
from hecktor_nnunet.metrics.survival import concordance_index
# the estimators were defined here before the split and are still imported from this module
from hecktor_nnunet.prognosis.estimators import (HPV_MODELS, SURVIVAL_MODELS, XGBHPVClassifier,  # noqa: F401
                                                 XGBSurvival, check_survival_target, make_estimator)

log = logging.getLogger(__name__)

#: Small grids searched by inner cross-validation (each entry: parameter -> candidate values).
GRIDS: dict[tuple[str, str], dict[str, list]] = {
    ("rfs", "xgb"): {"max_depth": [1, 2], "n_estimators": [150, 400]},
    ("rfs", "coxnet"): {"alpha": [0.02, 0.1]},
    ("rfs", "rsf"): {"min_samples_leaf": [5, 20]},
    ("rfs", "gbsa"): {"learning_rate": [0.05, 0.1]},
    ("hpv", "xgb"): {"max_depth": [1, 2], "n_estimators": [100, 300]},
}



def martingale_residuals(y) -> np.ndarray:
    """Null-model martingale residuals ``event - H(time)`` (Nelson-Aalen): the survival screen's target."""
    from sksurv.nonparametric import nelson_aalen_estimator

    event, time = check_survival_target(y)
    times, cumhaz = nelson_aalen_estimator(event, time)
    return event - cumhaz[np.searchsorted(times, time, side="right") - 1]


class FeatureSelector(BaseEstimator):
    """Unsupervised filters, a univariate screen and correlation pruning, fitted on training rows only.

    Parameters
    ----------
    k : int
        Columns kept from the screened set (``always_keep`` columns come on top).
    max_missing : float
        Drop columns with a larger fraction of missing values.
    max_dominant : float
        Drop near-constant columns: the most frequent value covers more than this fraction.
    corr_threshold : float
        A column is skipped when its |Spearman correlation| with an already kept column is higher.
    always_keep : tuple of str
        Columns kept without screening (the few clinical variables).

    Notes
    -----
    The screen is |Spearman correlation| of each column with the target: the null-model martingale
    residual for survival targets, the label for binary ones.
    """

    def __init__(self, *, k: int = 20, max_missing: float = 0.5, max_dominant: float = 0.95,
                 corr_threshold: float = 0.85, always_keep: tuple[str, ...] = ()):
        self.k = k
        self.max_missing = max_missing
        self.max_dominant = max_dominant
        self.corr_threshold = corr_threshold
        self.always_keep = always_keep

    def fit(self, X: pd.DataFrame, y) -> "FeatureSelector":
        """Choose columns of ``X`` (DataFrame) for target ``y`` (structured survival array or 0/1)."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("FeatureSelector needs a DataFrame (column names are the selection)")
        y = np.asarray(y)
        score_target = martingale_residuals(y) if y.dtype.names else y.astype(float)
        keep = [c for c in self.always_keep if c in X.columns]
        cand = X.drop(columns=keep)
        missing = cand.isna().mean()
        cand = cand.loc[:, missing <= self.max_missing]
        dominant = cand.apply(lambda s: s.value_counts(normalize=True).iloc[0] if s.notna().any() else 1.0)
        cand = cand.loc[:, (dominant <= self.max_dominant) & (cand.nunique() > 1)]
        ranks = cand.rank()
        target_rank = pd.Series(score_target, index=X.index).rank()
        score = ranks.corrwith(target_rank).abs().fillna(0.0).sort_values(ascending=False)
        self.scores_ = score
        chosen: list[str] = []
        pool = list(score.index[: max(5 * self.k, 50)])
        corr = ranks[pool].corr().abs() if pool else pd.DataFrame()
        for col in pool:
            if len(chosen) >= self.k:
                break
            if all(corr.at[col, c] <= self.corr_threshold or np.isnan(corr.at[col, c]) for c in chosen):
                chosen.append(col)
        self.selected_ = chosen + keep
        self.feature_names_in_ = [str(c) for c in X.columns]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "selected_")
        missing = [c for c in self.selected_ if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks selected feature column(s) {missing[:5]}")
        return X[self.selected_]


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


class PrognosisModel(BaseEstimator):
    """Feature selection, inner-CV grid search and the final model for one task.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    model : str
        ``xgb`` (default), or for rfs ``coxnet``, ``rsf``, ``gbsa``.
    k_features : int
        Screened columns kept (clinical ``CLIN_`` columns are always kept on top).
    corr_threshold : float
        Correlation pruning level of the selector.
    inner_folds : int
        Folds of the hyper-parameter search (< 2: no search, first grid values).
    grid : dict, optional
        Parameter -> candidate values (default :data:`GRIDS`).
    random_state : int
    n_jobs : int

    Attributes
    ----------
    selector_ : FeatureSelector
    estimator_ : estimator
        Fitted on the selected columns of all training rows with ``best_params_``.
    best_params_ : dict
    search_ : list of dict
        Mean inner-CV score of every candidate.
    feature_names_in_ : list of str
    """

    def __init__(self, *, task: str = "rfs", model: str = "xgb", k_features: int = 20,
                 corr_threshold: float = 0.85, inner_folds: int = 3, grid: dict | None = None,
                 random_state: int = 0, n_jobs: int = 1):
        self.task = task
        self.model = model
        self.k_features = k_features
        self.corr_threshold = corr_threshold
        self.inner_folds = inner_folds
        self.grid = grid
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _candidates(self) -> list[dict]:
        grid = self.grid if self.grid is not None else GRIDS[(self.task, self.model)]
        keys = sorted(grid)
        return [dict(zip(keys, values)) for values in product(*(grid[k] for k in keys))]

    def _estimator(self, params: dict, search: bool = False) -> BaseEstimator:
        extra = {"threshold_folds": 0} if (search and self.task == "hpv") else {}
        return make_estimator(self.task, self.model, self.random_state, self.n_jobs, **params, **extra)

    def _predict_score(self, est, X) -> np.ndarray:
        return est.predict_proba(X)[:, 1] if self.task == "hpv" else est.predict(X)

    def fit(self, X: pd.DataFrame, y) -> "PrognosisModel":
        """Select features, search the grid by inner CV, fit the final model (all on ``X``, ``y``)."""
        models = {"rfs": SURVIVAL_MODELS, "hpv": HPV_MODELS}
        if self.task not in models:
            raise ValueError(f"unknown task {self.task!r}; choose 'rfs' or 'hpv'")
        if self.model not in models[self.task]:
            raise ValueError(f"model {self.model!r} is not available for {self.task}; "
                             f"choose one of {models[self.task]}")
        if not isinstance(X, pd.DataFrame):
            raise TypeError("PrognosisModel needs a DataFrame of features")
        self.feature_names_in_ = [str(c) for c in X.columns]
        clinical = tuple(c for c in X.columns if str(c).startswith("CLIN_"))
        self.selector_ = FeatureSelector(k=self.k_features, corr_threshold=self.corr_threshold,
                                         always_keep=clinical).fit(X, y)
        Xs = self.selector_.transform(X)
        candidates = self._candidates()
        self.search_ = []
        if self.inner_folds >= 2 and len(candidates) > 1:
            folds = list(StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.random_state)
                         .split(Xs, stratify_labels(self.task, y)))
            for params in candidates:
                scores = []
                for tr, te in folds:
                    est = self._estimator(params, search=True).fit(Xs.iloc[tr], y[tr])
                    try:
                        scores.append(score(self.task, y[te], self._predict_score(est, Xs.iloc[te])))
                    except ValueError:  # an inner fold without events
                        continue
                self.search_.append({"params": params, "score": float(np.nanmean(scores)) if scores else float("nan")})
            best = max(self.search_, key=lambda r: -np.inf if np.isnan(r["score"]) else r["score"])
            self.best_params_ = best["params"]
        else:
            self.best_params_ = candidates[0]
        log.debug("%s/%s: %d columns selected, best %s", self.task, self.model, len(self.selector_.selected_),
                  self.best_params_)
        self.estimator_ = self._estimator(self.best_params_).fit(Xs, y)
        return self

    def _select(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "estimator_")
        return self.selector_.transform(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """rfs: risk (higher = earlier relapse); hpv: hard 0/1 labels."""
        return self.estimator_.predict(self._select(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """hpv only: probabilities (n, 2) of HPV negative / positive."""
        if self.task != "hpv":
            raise AttributeError("predict_proba is only defined for the hpv task")
        return self.estimator_.predict_proba(self._select(X))

    def decision_score(self, X: pd.DataFrame) -> np.ndarray:
        """The continuous output: risk (rfs) or P(HPV+) (hpv)."""
        return self._predict_score(self.estimator_, self._select(X))

    @property
    def selected_features_(self) -> list[str]:
        check_is_fitted(self, "selector_")
        return list(self.selector_.selected_)

