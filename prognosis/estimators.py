"""The estimators of the prognosis models, scikit-learn style (settings in ``__init__``, ``fit`` returns self).

* :class:`XGBSurvival`: xgboost with the Cox objective; ``predict`` is the log-hazard (higher =
  earlier relapse).
* scikit-survival baselines by name (:func:`make_estimator`): ``coxnet`` (penalised Cox),
  ``rsf`` (random survival forest), ``gbsa`` (gradient-boosted Cox), each behind a median-imputation
  and scaling pipeline.
* :class:`XGBHPVClassifier`: xgboost classifier weighted by the class ratio, whose decision
  threshold maximises balanced accuracy on out-of-fold predictions of its own training data.

Targets: survival models take one structured array ``Surv.from_arrays(event, time)``; the HPV
classifier takes 0/1 labels (1 = HPV positive).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.metrics.classification import best_threshold

SURVIVAL_MODELS = ("xgb", "coxnet", "rsf", "gbsa")
HPV_MODELS = ("xgb",)
#: Small grids searched by inner cross-validation (each entry: parameter -> candidate values).

def _array(X) -> np.ndarray:
    return np.asarray(X, dtype=float)


def _names(X, n: int) -> list[str]:
    return [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else [f"f{i}" for i in range(n)]


def check_survival_target(y) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    if y.dtype.names is None or len(y.dtype.names) != 2:
        raise ValueError("survival target must be a structured array (event, time) from sksurv.util.Surv.from_arrays")
    event, time = y[y.dtype.names[0]].astype(bool), y[y.dtype.names[1]].astype(float)
    if not event.any():
        raise ValueError("All samples are censored: a survival model cannot be fitted")
    return event, time


class _XGBMixin:
    """What both xgboost estimators share: the fitted booster's input as a DMatrix."""

    def dmatrix(self, X) -> xgb.DMatrix:
        """``X`` as a DMatrix with the training feature names (missing values stay NaN)."""
        check_is_fitted(self, "booster_")
        return xgb.DMatrix(_array(X), missing=np.nan, feature_names=self.feature_names_in_)


class XGBSurvival(_XGBMixin, BaseEstimator):
    """Gradient-boosted trees with xgboost's ``survival:cox`` objective.

    Parameters
    ----------
    n_estimators : int
        Boosting rounds.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda
        xgboost tree settings.
    random_state : int
    n_jobs : int
        xgboost threads.
    """

    def __init__(self, *, n_estimators: int = 300, learning_rate: float = 0.03, max_depth: int = 2,
                 min_child_weight: float = 5.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, random_state: int = 0, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _booster_params(self) -> dict:
        return {"eta": self.learning_rate, "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "lambda": self.reg_lambda, "seed": self.random_state, "nthread": self.n_jobs,
                "tree_method": "hist"}

    def fit(self, X, y) -> "XGBSurvival":
        """Fit on features ``X`` (n, p; NaN allowed) and a structured (event, time) target."""
        event, time = check_survival_target(y)
        Xa = _array(X)
        self.feature_names_in_ = _names(X, Xa.shape[1])
        # xgboost's Cox label: time of event, negative time when censored
        label = np.where(event, time, -time)
        dm = xgb.DMatrix(Xa, label=label, missing=np.nan, feature_names=self.feature_names_in_)
        self.booster_ = xgb.train({**self._booster_params(), "objective": "survival:cox"}, dm,
                                  num_boost_round=self.n_estimators)
        return self

    def predict(self, X) -> np.ndarray:
        """Risk score (log relative hazard): higher = earlier relapse."""
        dm = self.dmatrix(X)
        return self.booster_.predict(dm, output_margin=True)


class XGBHPVClassifier(_XGBMixin, BaseEstimator):
    """xgboost binary classifier for HPV status with a balanced-accuracy threshold.

    Parameters
    ----------
    n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree
        xgboost settings.
    threshold_folds : int
        Folds of the out-of-fold predictions on the training data used to choose the threshold
        (0: keep 0.5; used inside the hyper-parameter search, which scores AUC).
    random_state : int
    n_jobs : int
    """

    def __init__(self, *, n_estimators: int = 200, learning_rate: float = 0.05, max_depth: int = 2,
                 min_child_weight: float = 2.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 threshold_folds: int = 3, random_state: int = 0, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.threshold_folds = threshold_folds
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _train(self, Xa: np.ndarray, y: np.ndarray, names: list[str]) -> xgb.Booster:
        n_pos = int(y.sum())
        params = {"objective": "binary:logistic", "eta": self.learning_rate, "max_depth": self.max_depth,
                  "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                  "colsample_bytree": self.colsample_bytree, "seed": self.random_state,
                  "nthread": self.n_jobs, "tree_method": "hist",
                  "scale_pos_weight": (len(y) - n_pos) / max(n_pos, 1)}
        dm = xgb.DMatrix(Xa, label=y, missing=np.nan, feature_names=names)
        return xgb.train(params, dm, num_boost_round=self.n_estimators)

    def fit(self, X, y) -> "XGBHPVClassifier":
        """Fit on ``X`` (n, p; NaN allowed) and labels ``y`` (0/1, both present)."""
        y = np.asarray(y).astype(int)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError(f"HPV labels must contain both 0 and 1, got {sorted(set(np.unique(y)))}")
        Xa = _array(X)
        self.feature_names_in_ = _names(X, Xa.shape[1])
        self.threshold_ = 0.5
        if self.threshold_folds >= 2:
            oof = np.zeros(len(y))
            folds = StratifiedKFold(self.threshold_folds, shuffle=True, random_state=self.random_state)
            for tr, te in folds.split(Xa, y):
                booster = self._train(Xa[tr], y[tr], self.feature_names_in_)
                oof[te] = booster.predict(xgb.DMatrix(Xa[te], missing=np.nan, feature_names=self.feature_names_in_))
            self.threshold_ = best_threshold(y, oof)
        self.booster_ = self._train(Xa, y, self.feature_names_in_)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, shape (n, 2): columns HPV negative, HPV positive."""
        dm = self.dmatrix(X)
        p = self.booster_.predict(dm)
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        """Hard labels 0/1 (1 when P(HPV+) >= ``threshold_``)."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)


def make_estimator(task: str, model: str, random_state: int = 0, n_jobs: int = 1, **params) -> BaseEstimator:
    """A fresh estimator by task and name.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    model : str
        rfs: one of :data:`SURVIVAL_MODELS`; hpv: one of :data:`HPV_MODELS`.
    **params
        Settings of the estimator (``alpha`` for coxnet).
    """
    if task == "hpv":
        if model not in HPV_MODELS:
            raise ValueError(f"unknown HPV model {model!r}; choose one of {HPV_MODELS}")
        return XGBHPVClassifier(random_state=random_state, n_jobs=n_jobs, **params)
    if task != "rfs":
        raise ValueError(f"unknown task {task!r}; choose 'rfs' or 'hpv'")
    if model == "xgb":
        return XGBSurvival(random_state=random_state, n_jobs=n_jobs, **params)
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    if model == "coxnet":
        alpha = params.pop("alpha", 0.05)
        est = CoxnetSurvivalAnalysis(alphas=[alpha], l1_ratio=0.5, max_iter=100000, **params)
    elif model == "rsf":
        est = RandomSurvivalForest(**{"n_estimators": 200, "min_samples_leaf": 10, "max_features": "sqrt",
                                      "random_state": random_state, "n_jobs": n_jobs, **params})
    elif model == "gbsa":
        est = GradientBoostingSurvivalAnalysis(**{"n_estimators": 150, "max_depth": 2, "subsample": 0.8,
                                                  "random_state": random_state, **params})
    else:
        raise ValueError(f"unknown survival model {model!r}; choose one of {SURVIVAL_MODELS}")
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("model", est)])
