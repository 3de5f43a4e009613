"""Binary classification metrics for Task 3 (HPV status): balanced accuracy and friends."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _check_binary(name: str, y: ArrayLike) -> np.ndarray:
    a = np.asarray(y, dtype=float).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if not np.all(np.isin(a, (0.0, 1.0))):
        bad = sorted(set(a[~np.isin(a, (0.0, 1.0))].tolist()))[:5]
        raise ValueError(f"{name} must contain only 0/1, found {bad}")
    return a.astype(int)


def _check_prob(y_prob: ArrayLike, n: int) -> np.ndarray:
    p = np.asarray(y_prob, dtype=float).ravel()
    if p.size != n:
        raise ValueError(f"y_prob has {p.size} values, expected {n}")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_prob contains NaN or infinite values")
    return p


def binary_summary(y_true: ArrayLike, y_pred: ArrayLike, y_prob: ArrayLike | None = None) -> dict:
    """Balanced accuracy, sensitivity, specificity and (with probabilities) ROC AUC.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        True labels 0/1 (1 = positive, e.g. HPV+).
    y_pred : array-like, shape (n,)
        Hard predictions 0/1.
    y_prob : array-like, shape (n,), optional
        Scores or probabilities of class 1, used for the AUC only.

    Returns
    -------
    dict
        ``balanced_accuracy``, ``sensitivity`` (recall of 1), ``specificity`` (recall of 0),
        ``auc`` (None without ``y_prob``), ``n``. Sensitivity (specificity) is NaN when there is
        no positive (negative) case; balanced accuracy is then the mean of the defined recalls.
        AUC is NaN when only one class is present.
    """
    t = _check_binary("y_true", y_true)
    p = _check_binary("y_pred", y_pred)
    if t.size != p.size:
        raise ValueError(f"y_true and y_pred lengths differ: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("No samples")
    pos, neg = t == 1, t == 0
    sens = float(np.mean(p[pos] == 1)) if pos.any() else float("nan")
    spec = float(np.mean(p[neg] == 0)) if neg.any() else float("nan")
    bacc = float(np.nanmean([sens, spec]))
    auc = None
    if y_prob is not None:
        prob = _check_prob(y_prob, t.size)
        auc = roc_auc(t, prob)
    return {"balanced_accuracy": bacc, "sensitivity": sens, "specificity": spec, "auc": auc, "n": int(t.size)}


def roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """ROC AUC (Mann-Whitney; ties count 0.5); NaN when only one class is present."""
    t = _check_binary("y_true", y_true)
    prob = _check_prob(y_prob, t.size)
    if t.min() == t.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(t, prob))


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Balanced accuracy (mean of sensitivity and specificity)."""
    return binary_summary(y_true, y_pred)["balanced_accuracy"]


def best_threshold(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Probability threshold that maximises balanced accuracy of ``y_prob >= threshold``.

    Candidate thresholds are the distinct scores; on ties the threshold closest to 0.5 wins
    (then the smallest).

    Parameters
    ----------
    y_true : array-like, shape (n,)
        True labels 0/1; both classes must be present.
    y_prob : array-like, shape (n,)
        Scores of class 1.

    Returns
    -------
    float
        The threshold; predict 1 when ``y_prob >= threshold``.
    """
    t = _check_binary("y_true", y_true)
    prob = _check_prob(y_prob, t.size)
    if t.min() == t.max():
        raise ValueError("best_threshold needs both classes in y_true")
    cands = np.unique(prob)
    pred = prob[None, :] >= cands[:, None]
    sens = (pred & (t == 1)).sum(1) / (t == 1).sum()
    spec = (~pred & (t == 0)).sum(1) / (t == 0).sum()
    bacc = (sens + spec) / 2
    best = np.flatnonzero(np.isclose(bacc, bacc.max()))
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])
