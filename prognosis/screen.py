"""The column screen inside every prognosis model, fitted on training rows only.

:class:`FeatureSelector` drops sparse and near-constant columns, ranks the rest by a univariate
screen (|Spearman| with the null-model martingale residual for survival, with the label for HPV) and
prunes correlated columns down to ``k``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.prognosis.estimators import check_survival_target


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
