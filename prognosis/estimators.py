"""The estimators of the prognosis models, scikit-learn style (settings in ``__init__``, ``fit`` returns self).

* :class:`XGBSurvival`: xgboost with the Cox objective; ``predict`` is the log-hazard (higher =
  earlier relapse).
* :func:`survival_pipeline`: the scikit-survival models (``coxnet`` penalised Cox, ``gbsa``
  gradient-boosted Cox, ``rsf`` random survival forest) behind median imputation and scaling.
* :class:`ThresholdedClassifier`: what every HPV classifier shares: probabilities, and a decision
  threshold that maximises balanced accuracy on out-of-fold probabilities of its own training data.
  :class:`XGBHPVClassifier` (xgboost, weighted by the class ratio) and
  :class:`LogisticHPVClassifier` (penalised logistic regression, balanced class weights) are two.

Targets: survival models take one structured array ``Surv.from_arrays(event, time)``; the HPV
classifiers take 0/1 labels (1 = HPV positive). The ICARE-style models are in
:mod:`~hecktor_nnunet.prognosis.icare`, the ensembles in :mod:`~hecktor_nnunet.prognosis.ensemble`,
and the registry of families by name in :mod:`~hecktor_nnunet.prognosis.families`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PowerTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.metrics.classification import best_threshold


def as_array(X) -> np.ndarray:
    """``X`` as a float array (NaN kept)."""
    return np.asarray(X, dtype=float)


def column_names(X, n: int) -> list[str]:
    """The column names of a DataFrame, ``f0, f1, ...`` for an array."""
    return [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else [f"f{i}" for i in range(n)]


def rows(X, index: np.ndarray):
    """Rows of a DataFrame or an array by position."""
    return X.iloc[index] if isinstance(X, pd.DataFrame) else np.asarray(X)[index]


def check_survival_target(y) -> tuple[np.ndarray, np.ndarray]:
    """(event, time) of a structured survival target; refuses one where every patient is censored."""
    y = np.asarray(y)
    if y.dtype.names is None or len(y.dtype.names) != 2:
        raise ValueError("survival target must be a structured array (event, time) from sksurv.util.Surv.from_arrays")
    event, time = y[y.dtype.names[0]].astype(bool), y[y.dtype.names[1]].astype(float)
    if not event.any():
        raise ValueError("All samples are censored: a survival model cannot be fitted")
    return event, time


def check_binary_target(y) -> np.ndarray:
    """0/1 labels as int; refuses a target without both classes."""
    y = np.asarray(y).astype(int)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"HPV labels must contain both 0 and 1, got {sorted(set(np.unique(y).tolist()))}")
    return y


def linear_preprocessing() -> list[tuple[str, BaseEstimator]]:
    """Median imputation, then a Yeo-Johnson transform to zero mean and unit variance.

    Radiomics columns are skewed (volumes, TLG, SUVs): the power transform keeps a few large tumours
    from setting a linear model's scale.
    """
    return [("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", PowerTransformer(method="yeo-johnson", standardize=True))]


def survival_pipeline(model: str, random_state: int = 0, n_jobs: int = 1, **params) -> Pipeline:
    """A scikit-survival model by name behind imputation and scaling.

    Parameters
    ----------
    model : {"coxnet", "gbsa", "rsf"}
    **params
        The model's settings; ``coxnet`` takes ``alpha`` (one penalty) and ``l1_ratio``.
    """
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    if model == "coxnet":
        params = {"alpha": 0.05, "l1_ratio": 0.5, **params}
        est = CoxnetSurvivalAnalysis(alphas=[params.pop("alpha")], max_iter=100000, **params)
        return Pipeline([*linear_preprocessing(), ("model", est)])
    if model == "rsf":
        # low_memory: only the risk is predicted (no survival functions kept), 3-6x faster to predict
        est = RandomSurvivalForest(**{"n_estimators": 100, "min_samples_leaf": 10, "max_features": "sqrt",
                                      "low_memory": True, "random_state": random_state, "n_jobs": n_jobs,
                                      **params})
    elif model == "gbsa":
        est = GradientBoostingSurvivalAnalysis(**{"n_estimators": 150, "max_depth": 2, "subsample": 0.8,
                                                  "random_state": random_state, **params})
    else:
        raise ValueError(f"unknown scikit-survival model {model!r}; choose coxnet, gbsa or rsf")
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("model", est)])


class _XGBMixin:
    """What both xgboost estimators share: the fitted booster and its input as a DMatrix."""

    @property
    def booster_(self) -> xgb.Booster:
        check_is_fitted(self, "model_")
        return self.model_

    def dmatrix(self, X) -> xgb.DMatrix:
        """``X`` as a DMatrix with the training feature names (missing values stay NaN)."""
        check_is_fitted(self, "model_")
        return xgb.DMatrix(as_array(X), missing=np.nan, feature_names=self.feature_names_in_)


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

    def fit(self, X, y) -> "XGBSurvival":
        """Fit on features ``X`` (n, p; NaN allowed) and a structured (event, time) target."""
        event, time = check_survival_target(y)
        Xa = as_array(X)
        self.feature_names_in_ = column_names(X, Xa.shape[1])
        # xgboost's Cox label: time of event, negative time when censored
        dm = xgb.DMatrix(Xa, label=np.where(event, time, -time), missing=np.nan, feature_names=self.feature_names_in_)
        params = {"objective": "survival:cox", "eta": self.learning_rate, "max_depth": self.max_depth,
                  "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                  "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda,
                  "seed": self.random_state, "nthread": self.n_jobs, "tree_method": "hist"}
        self.model_ = xgb.train(params, dm, num_boost_round=self.n_estimators)
        return self

    def predict(self, X) -> np.ndarray:
        """Risk score (log relative hazard): higher = earlier relapse."""
        return self.booster_.predict(self.dmatrix(X), output_margin=True)


class ThresholdedClassifier(BaseEstimator):
    """Base of the HPV classifiers: probabilities, and a threshold chosen for balanced accuracy.

    ``fit`` learns the threshold that maximises balanced accuracy on out-of-fold probabilities of
    the training data (``threshold_folds`` stratified folds; in-sample probabilities are
    overconfident), keeps those probabilities as ``oof_proba_`` (an ensemble chooses its own
    threshold from its members'), then fits on all rows. Subclasses define ``_fit_proba(X, y)``
    (returns a fitted state) and ``_proba(state, X)`` (P(class 1)), and carry ``threshold_folds``
    and ``random_state`` settings.
    """

    threshold_folds: int
    random_state: int

    def _fit_proba(self, X, y: np.ndarray):
        raise NotImplementedError

    def _proba(self, model, X) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X, y) -> "ThresholdedClassifier":
        """Fit on ``X`` (n, p; NaN allowed) and labels ``y`` (0/1, both present)."""
        y = check_binary_target(y)
        self.feature_names_in_ = column_names(X, as_array(X).shape[1])
        self.threshold_, self.oof_proba_ = 0.5, None
        if self.threshold_folds >= 2:
            oof = np.zeros(len(y))
            folds = StratifiedKFold(self.threshold_folds, shuffle=True, random_state=self.random_state)
            for tr, te in folds.split(np.zeros(len(y)), y):
                oof[te] = self._proba(self._fit_proba(rows(X, tr), y[tr]), rows(X, te))
            self.threshold_, self.oof_proba_ = best_threshold(y, oof), oof
        self.model_ = self._fit_proba(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, shape (n, 2): columns HPV negative, HPV positive."""
        check_is_fitted(self, "model_")
        p = self._proba(self.model_, X)
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        """Hard labels 0/1 (1 when P(HPV+) >= ``threshold_``)."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)


class XGBHPVClassifier(_XGBMixin, ThresholdedClassifier):
    """xgboost binary classifier for HPV status, weighted by the class ratio.

    Parameters
    ----------
    n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree
        xgboost settings.
    threshold_folds : int
        Folds of the out-of-fold probabilities the threshold is chosen on (0: keep 0.5).
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

    def _fit_proba(self, X, y: np.ndarray) -> xgb.Booster:
        n_pos = int(y.sum())
        params = {"objective": "binary:logistic", "eta": self.learning_rate, "max_depth": self.max_depth,
                  "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                  "colsample_bytree": self.colsample_bytree, "seed": self.random_state,
                  "nthread": self.n_jobs, "tree_method": "hist",
                  "scale_pos_weight": (len(y) - n_pos) / max(n_pos, 1)}
        dm = xgb.DMatrix(as_array(X), label=y, missing=np.nan, feature_names=self.feature_names_in_)
        return xgb.train(params, dm, num_boost_round=self.n_estimators)

    def _proba(self, model: xgb.Booster, X) -> np.ndarray:
        return model.predict(xgb.DMatrix(as_array(X), missing=np.nan, feature_names=self.feature_names_in_))


class LogisticHPVClassifier(ThresholdedClassifier):
    """Penalised logistic regression for HPV status (balanced class weights).

    Parameters
    ----------
    C : float
        Inverse L2 penalty on the standardised (Yeo-Johnson) columns.
    threshold_folds : int
        Folds of the out-of-fold probabilities the threshold is chosen on (0: keep 0.5).
    random_state : int
    """

    def __init__(self, *, C: float = 0.1, threshold_folds: int = 3, random_state: int = 0):
        self.C = C
        self.threshold_folds = threshold_folds
        self.random_state = random_state

    def _fit_proba(self, X, y: np.ndarray) -> Pipeline:
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=5000)
        return Pipeline([*linear_preprocessing(), ("model", model)]).fit(as_array(X), y)

    def _proba(self, model: Pipeline, X) -> np.ndarray:
        return model.predict_proba(as_array(X))[:, 1]
