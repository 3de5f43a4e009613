"""Ensembles of the model families: the mean of rank-normalised risks, or of probabilities.

A member's risk is put on one scale by its rank among the member's own predictions for its
training patients (0 = lowest training risk, 1 = highest), so that a single new patient can be
scored (the challenge's container sees one patient at a time) and no member's units dominate. The
HPV ensemble averages the members' probabilities and chooses its threshold, as every HPV model
does, on out-of-fold probabilities of the training data: the mean of the members' own.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.metrics.classification import best_threshold
from hecktor_nnunet.prognosis.estimators import check_binary_target, check_survival_target


def training_rank(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank of each value among ``reference``, scaled to [0, 1] (ties share the middle)."""
    ref = np.sort(np.asarray(reference, dtype=float))
    lo = np.searchsorted(ref, values, side="left")
    hi = np.searchsorted(ref, values, side="right")
    return (lo + hi) / (2.0 * len(ref))


class EnsembleSurvival(BaseEstimator):
    """Mean of the members' training-rank-normalised risks (higher = earlier relapse).

    Parameters
    ----------
    estimators : list of (name, estimator)
        Unfitted survival estimators (``fit(X, y)``, ``predict(X)`` = risk); fitted as clones.
    """

    def __init__(self, estimators: list[tuple[str, BaseEstimator]]):
        self.estimators = estimators

    def fit(self, X, y) -> "EnsembleSurvival":
        """Fit every member on ``X``, ``y`` and keep its training risks."""
        check_survival_target(y)
        return self.set_fitted([(name, clone(est).fit(X, y)) for name, est in self.estimators], X)

    def set_fitted(self, fitted: list[tuple[str, BaseEstimator]], X) -> "EnsembleSurvival":
        """Use members already fitted on ``X`` (the model selection fits them once for every candidate)."""
        self.estimators_ = fitted
        self.reference_ = [np.asarray(est.predict(X), dtype=float) for _, est in fitted]
        return self

    def predict(self, X) -> np.ndarray:
        """Mean training rank of the members' risks, in [0, 1]."""
        check_is_fitted(self, "estimators_")
        return np.mean([training_rank(ref, est.predict(X)) for (_, est), ref in zip(self.estimators_, self.reference_)],
                       axis=0)


class EnsembleClassifier(BaseEstimator):
    """Mean of the members' P(HPV+), thresholded for balanced accuracy on their out-of-fold probabilities.

    Parameters
    ----------
    estimators : list of (name, classifier)
        Unfitted :class:`~hecktor_nnunet.prognosis.estimators.ThresholdedClassifier` s with
        ``threshold_folds >= 2`` (their ``oof_proba_`` choose the ensemble's threshold).
    """

    def __init__(self, estimators: list[tuple[str, BaseEstimator]]):
        self.estimators = estimators

    def fit(self, X, y) -> "EnsembleClassifier":
        """Fit every member; the threshold maximises balanced accuracy of the mean out-of-fold probability."""
        y = check_binary_target(y)
        return self.set_fitted([(name, clone(est).fit(X, y)) for name, est in self.estimators], y)

    def set_fitted(self, fitted: list[tuple[str, BaseEstimator]], y) -> "EnsembleClassifier":
        """Use members already fitted (with their ``oof_proba_``) on the labels ``y``."""
        missing = [name for name, est in fitted if getattr(est, "oof_proba_", None) is None]
        if missing:
            raise ValueError(f"ensemble members {missing} have no out-of-fold probabilities (threshold_folds < 2)")
        self.estimators_ = fitted
        self.oof_proba_ = np.mean([est.oof_proba_ for _, est in fitted], axis=0)
        self.threshold_ = best_threshold(np.asarray(y).astype(int), self.oof_proba_)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, shape (n, 2): the members' mean."""
        check_is_fitted(self, "estimators_")
        return np.mean([est.predict_proba(X) for _, est in self.estimators_], axis=0)

    def predict(self, X) -> np.ndarray:
        """Hard labels 0/1 (1 when the mean P(HPV+) >= ``threshold_``)."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)
