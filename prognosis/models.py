"""The prognosis model: a column screen and an estimator, chosen by inner cross-validation.

:class:`PrognosisModel` fits a :class:`~hecktor_nnunet.prognosis.screen.FeatureSelector` and one
estimator of :mod:`hecktor_nnunet.prognosis.families`. With ``model="auto"`` (the default) inner
cross-validation chooses the family and ``k`` (:mod:`hecktor_nnunet.prognosis.selection`); with a
family named, a small inner-CV grid search chooses its settings. Everything is learned from the data
given to ``fit``, so cross-validation around it has no leakage.

Targets: survival models take one structured array ``Surv.from_arrays(event, time)``; the HPV
models take 0/1 labels (1 = HPV positive).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.prognosis.families import AUTO, make_estimator, model_names
from hecktor_nnunet.prognosis.screen import FeatureSelector
from hecktor_nnunet.prognosis.selection import check_learnable, decision_output, grid_search, select_model

log = logging.getLogger(__name__)


class PrognosisModel(BaseEstimator):
    """Feature selection and an estimator for one task, chosen by inner cross-validation.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    model : str
        ``auto`` (default): inner cross-validation chooses the family and ``k_features`` among
        ``candidates`` x :data:`~hecktor_nnunet.prognosis.selection.K_GRID`
        (:func:`~hecktor_nnunet.prognosis.selection.select_model`). A family name
        (:func:`~hecktor_nnunet.prognosis.families.model_names`): that family, its small grid
        searched by inner cross-validation; ``ensemble``: every family at its defaults, averaged.
    k_features : int, optional
        Screened columns kept (clinical ``CLIN_`` columns are always kept on top). Default: chosen
        from the grid by ``auto``, 20 for a named family.
    corr_threshold : float
        Correlation pruning level of the selector.
    inner_folds : int
        Folds of the inner cross-validation (< 2 for a named family: no search, its defaults).
    grid : dict, optional
        A named family's parameter -> candidate values (default
        :data:`~hecktor_nnunet.prognosis.families.GRIDS`).
    candidates : tuple of str, optional
        The models ``auto`` chooses among (default: every family of the task and ``ensemble``).
    random_state : int
    n_jobs : int

    Attributes
    ----------
    selector_ : FeatureSelector
    estimator_ : estimator
        Fitted on the selected columns of all training rows.
    chosen_ : dict
        ``{"model": family, "k_features": k}``: what was fitted (the choice of ``auto``).
    best_params_ : dict
        The family's settings.
    search_ : list of dict
        The inner cross-validation behind the choice: ``auto`` scores every (model, k) candidate,
        a named family every grid point (mean score and the score of each inner fold).
    feature_names_in_ : list of str
    """

    def __init__(self, *, task: str = "rfs", model: str = "auto", k_features: int | None = None,
                 corr_threshold: float = 0.85, inner_folds: int = 3, grid: dict | None = None,
                 candidates: tuple[str, ...] | None = None, random_state: int = 0, n_jobs: int = 1):
        self.task = task
        self.model = model
        self.k_features = k_features
        self.corr_threshold = corr_threshold
        self.inner_folds = inner_folds
        self.grid = grid
        self.candidates = candidates
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _selector(self, X: pd.DataFrame, y, k: int) -> FeatureSelector:
        clinical = tuple(c for c in X.columns if str(c).startswith("CLIN_"))
        return FeatureSelector(k=k, corr_threshold=self.corr_threshold, always_keep=clinical).fit(X, y)

    def fit(self, X: pd.DataFrame, y) -> "PrognosisModel":
        """Choose (``auto``) or search (a family), then fit the selector and the estimator on all of ``X``."""
        if self.model not in model_names(self.task):
            raise ValueError(f"model {self.model!r} is not available for {self.task}; "
                             f"choose one of {model_names(self.task)}")
        if not isinstance(X, pd.DataFrame):
            raise TypeError("PrognosisModel needs a DataFrame of features")
        if X.shape[1] == 0:
            raise ValueError("no input columns to learn from")
        check_learnable(self.task, y)
        self.feature_names_in_ = [str(c) for c in X.columns]
        if self.model == AUTO:
            self.chosen_, self.search_ = select_model(
                X, y, self.task, candidates=self.candidates, k_grid=None if self.k_features is None
                else (self.k_features,), inner_folds=self.inner_folds, corr_threshold=self.corr_threshold,
                random_state=self.random_state, n_jobs=self.n_jobs)
            self.best_params_ = {}
        else:
            k = 20 if self.k_features is None else self.k_features
            self.chosen_ = {"model": self.model, "k_features": k}
            self.best_params_, self.search_ = grid_search(
                X, y, self.task, self.model, k=k, grid=self.grid, inner_folds=self.inner_folds,
                corr_threshold=self.corr_threshold, random_state=self.random_state, n_jobs=self.n_jobs)
        self.selector_ = self._selector(X, y, self.chosen_["k_features"])
        self.estimator_ = make_estimator(self.task, self.chosen_["model"], self.random_state, self.n_jobs,
                                         **self.best_params_).fit(self.selector_.transform(X), y)
        log.debug("%s/%s: %s, %d columns selected", self.task, self.model, self.chosen_,
                  len(self.selector_.selected_))
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
        return decision_output(self.task, self.estimator_, self._select(X))

    @property
    def selected_features_(self) -> list[str]:
        check_is_fitted(self, "selector_")
        return list(self.selector_.selected_)
