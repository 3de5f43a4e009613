"""ICARE-style signed-feature models: a bagged mean of standardised features, each with a learned sign.

Written here after the description of ICARE (Individual Coefficient Approximation for Risk
Estimation), the model of the HECKTOR 2022 Task 2 winners: Rebaud, Escobar, Khalid, Girum, Buvat,
"Head and Neck Tumor and Lymph Node Segmentation and Outcome Prediction from 18F-FDG PET/CT Images:
Simplicity is All You Need", HECKTOR 2022, LNCS 13626 (2023), and their package (github.com/Lrebaud/ICARE,
``icare/survival.py``: ``IcareSurv``, ``BaggedIcareSurv``). The HECKTOR 2025 organisers' Task 2
baseline feeds its features into the same model. One member:

1. draw a bootstrap sample of the patients and a random share ``max_features`` of the columns;
2. visit the columns in random order and drop each one whose |Pearson correlation| with a column
   already kept exceeds ``rho``;
3. score each remaining column alone on the outcome (rows where it is missing left out): Harrell's
   C-index of the column read as a risk (survival), or its ROC AUC (binary); keep it when
   ``max(score, 1 - score) >= cmin`` and give it the sign of ``score - 0.5``;
4. predict the mean over kept columns of ``sign * (x - mean) / sd`` (missing values skipped), then
   standardise that output by its mean and SD on the member's training rows.

The model's output is the mean over ``n_estimators`` members. No weight is fitted beyond a sign, so
the model has almost nothing to overfit: the reason it generalised across centres in HECKTOR 2022.
The binary version turns its score into a probability with a one-variable logistic fit (Platt
scaling) on the training rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.prognosis.estimators import (ThresholdedClassifier, as_array, check_binary_target,
                                                 check_survival_target, column_names)


def pair_scores(x: np.ndarray, comparable: np.ndarray) -> np.ndarray:
    """Concordance of every column of ``x`` over the ``comparable`` pairs; NaN rows of a column skipped.

    Parameters
    ----------
    x : ndarray (n, p)
        Scores, NaN allowed.
    comparable : ndarray of bool (n, n)
        ``comparable[i, j]``: the pair counts, and a concordant column has ``x[i] > x[j]``.

    Returns
    -------
    ndarray (p,)
        ``(concordant + 0.5 * tied) / comparable`` per column (NaN when a column has no comparable
        pair): Harrell's C-index for survival pairs, the ROC AUC for (positive, negative) pairs.
    """
    valid = ~np.isnan(x)
    filled = np.where(valid, x, 0.0)
    weight = comparable.astype(np.float64)
    out = np.full(x.shape[1], np.nan)
    for start in range(0, x.shape[1], 16):  # (n, n, 16) at a time: bounded memory for wide tables
        cols = slice(start, start + 16)
        f, v = filled[:, cols], valid[:, cols]
        sign = np.sign(f[:, None, :] - f[None, :, :]) * (v[:, None, :] & v[None, :, :])
        total = np.einsum("ij,ik,jk->k", weight, v.astype(float), v.astype(float))
        net = np.einsum("ij,ijk->k", weight, sign)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[cols] = np.where(total > 0, 0.5 + 0.5 * net / np.maximum(total, 1), np.nan)
    return out


def survival_pairs(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Harrell's comparable pairs: ``i`` relapsed first (or at the same time as a censored ``j``)."""
    earlier = (time[:, None] < time[None, :]) | ((time[:, None] == time[None, :]) & ~event[None, :])
    return event[:, None] & earlier


def binary_pairs(label: np.ndarray) -> np.ndarray:
    """(positive, negative) pairs: the ROC AUC's."""
    return (label[:, None] == 1) & (label[None, :] == 0)


class _SignedMember:
    """One fitted member: the kept columns, their signs, means and SDs, and the output scaling."""

    def __init__(self, columns: np.ndarray, signs: np.ndarray, mean: np.ndarray, sd: np.ndarray):
        self.columns, self.signs, self.mean, self.sd = columns, signs, mean, sd
        self.out_mean, self.out_sd = 0.0, 1.0

    def raw(self, X: np.ndarray) -> np.ndarray:
        if not len(self.columns):
            return np.zeros(len(X))
        z = (X[:, self.columns] - self.mean) / self.sd * self.signs
        valid = ~np.isnan(z)
        counts = valid.sum(axis=1)
        out = np.where(valid, z, 0.0).sum(axis=1) / np.maximum(counts, 1)
        return np.where(counts > 0, out, 0.0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.raw(X) - self.out_mean) / self.out_sd


class _SignedBag(BaseEstimator):
    """The bagging of :class:`_SignedMember` s; subclasses say which pairs are comparable."""

    def __init__(self, *, n_estimators: int = 10, rho: float | None = 0.5, cmin: float = 0.55,
                 max_features: float = 0.8, bootstrap: bool = True, random_state: int = 0):
        self.n_estimators = n_estimators
        self.rho = rho
        self.cmin = cmin
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state

    def _pairs(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _member(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _SignedMember:
        n, p = X.shape
        rows = rng.integers(0, n, n) if self.bootstrap else np.arange(n)
        Xb, yb = X[rows], y[rows]
        cols = rng.permutation(p)[: max(1, int(round(self.max_features * p)))]
        if self.rho is not None and self.rho < 1 and len(cols) > 1:
            corr = np.abs(pd.DataFrame(Xb[:, cols]).corr().to_numpy())
            kept: list[int] = []
            for i in range(len(cols)):
                if all(not corr[i, k] > self.rho for k in kept):  # NaN correlations never drop a column
                    kept.append(i)
            cols = cols[kept]
        scores = pair_scores(Xb[:, cols], self._pairs(yb))
        strength = np.maximum(scores, 1 - scores)
        keep = ~np.isnan(scores) & (strength >= self.cmin) & (scores != 0.5)
        cols, signs = cols[keep], np.where(scores[keep] > 0.5, 1.0, -1.0)
        sub = Xb[:, cols]
        with np.errstate(invalid="ignore"):
            mean, sd = np.nanmean(sub, axis=0), np.nanstd(sub, axis=0)
        sd = np.where(~np.isfinite(sd) | (sd == 0), 1.0, sd)
        member = _SignedMember(cols, signs, np.nan_to_num(mean), sd)
        train = member.raw(Xb)
        member.out_mean, member.out_sd = float(train.mean()), float(train.std()) or 1.0
        return member

    def _fit_bag(self, X, y) -> None:
        Xa = as_array(X)
        self.feature_names_in_ = column_names(X, Xa.shape[1])
        rng = np.random.default_rng(self.random_state)
        self.members_ = [self._member(Xa, y, rng) for _ in range(self.n_estimators)]

    def score_samples(self, X) -> np.ndarray:
        """The bagged signed mean (higher = the outcome's positive direction: relapse or HPV+)."""
        check_is_fitted(self, "members_")
        Xa = as_array(X)
        return np.mean([m.predict(Xa) for m in self.members_], axis=0)

    def signs(self) -> pd.Series:
        """Mean sign of every column over the members that kept it (0 where none did)."""
        check_is_fitted(self, "members_")
        total = np.zeros(len(self.feature_names_in_))
        for m in self.members_:
            np.add.at(total, m.columns, m.signs)
        return pd.Series(total / len(self.members_), index=self.feature_names_in_)


class IcareSurvival(_SignedBag):
    """Bagged ICARE-style survival model; ``predict`` is a risk (higher = earlier relapse).

    Parameters
    ----------
    n_estimators : int
        Members of the bag (10, the ICARE package's default).
    rho : float or None
        Correlation cut-off of each member (None: keep correlated columns).
    cmin : float
        Minimum univariate C-index ``max(C, 1 - C)`` for a column to be kept (0.5 keeps every
        column with a sign).
    max_features : float
        Share of the columns each member draws.
    bootstrap : bool
        Each member fits on a bootstrap sample (False: on all rows).
    random_state : int
    """

    def _pairs(self, y: np.ndarray) -> np.ndarray:
        return survival_pairs(y["event"], y["time"])

    def fit(self, X, y) -> "IcareSurvival":
        """Fit on ``X`` (n, p; NaN allowed) and a structured (event, time) target."""
        event, time = check_survival_target(y)
        target = np.empty(len(event), dtype=[("event", bool), ("time", float)])
        target["event"], target["time"] = event, time
        self._fit_bag(X, target)
        return self

    def predict(self, X) -> np.ndarray:
        """Risk score: higher = earlier relapse."""
        return self.score_samples(X)


class IcareClassifier(ThresholdedClassifier):
    """ICARE-style binary classifier: the bagged signed mean, Platt-scaled to a probability.

    Parameters are those of :class:`IcareSurvival` (the univariate score is the ROC AUC) and
    ``threshold_folds`` (see :class:`~hecktor_nnunet.prognosis.estimators.ThresholdedClassifier`).
    """

    def __init__(self, *, n_estimators: int = 10, rho: float | None = 0.5, cmin: float = 0.55,
                 max_features: float = 0.8, bootstrap: bool = True, threshold_folds: int = 3,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.rho = rho
        self.cmin = cmin
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.threshold_folds = threshold_folds
        self.random_state = random_state

    def _fit_proba(self, X, y: np.ndarray):
        bag = _BinaryBag(n_estimators=self.n_estimators, rho=self.rho, cmin=self.cmin,
                         max_features=self.max_features, bootstrap=self.bootstrap,
                         random_state=self.random_state).fit(X, y)
        platt = LogisticRegression().fit(bag.score_samples(X)[:, None], y)
        return bag, platt

    def _proba(self, model, X) -> np.ndarray:
        bag, platt = model
        return platt.predict_proba(bag.score_samples(X)[:, None])[:, 1]


class _BinaryBag(_SignedBag):
    """The bag of :class:`IcareClassifier`: univariate scores are ROC AUCs."""

    def _pairs(self, y: np.ndarray) -> np.ndarray:
        return binary_pairs(y)

    def fit(self, X, y) -> "_BinaryBag":
        self._fit_bag(X, check_binary_target(y))
        return self
