"""Evaluation figures (matplotlib, Agg backend): KM risk groups, ROC curve, per-centre boxplots.

Every figure is written atomically to a PNG by :func:`save_figure`, which also closes it.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from hecktor_nnunet.io.atomic_io import atomic_path  # noqa: E402


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a matplotlib figure to a PNG atomically (120 dpi, tight box) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def km_risk_groups(time: ArrayLike, event: ArrayLike, risk: ArrayLike, path: str | os.PathLike,
                   title: str = "") -> float:
    """Kaplan-Meier curves of low/high predicted-risk groups split at the median risk.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times (days).
    event : array-like, shape (n,)
        1 = event, 0 = censored.
    risk : array-like, shape (n,)
        Predicted risk (higher = earlier event); high-risk group = ``risk > median(risk)``.
    path : path
        Output PNG.
    title : str
        Figure title.

    Returns
    -------
    float
        Log-rank p-value between the two groups (scikit-survival's ``compare_survival``);
        NaN when the split leaves one group empty (e.g. all risks equal).
    """
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator
    from sksurv.util import Surv

    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event).astype(bool).ravel()
    r = np.asarray(risk, dtype=float).ravel()
    if not (t.size == e.size == r.size) or t.size == 0:
        raise ValueError(f"time, event, risk must be non-empty and of equal length, got {t.size}, {e.size}, {r.size}")
    high = r > np.median(r)
    groups = {"low risk": ~high, "high risk": high}
    p = float("nan")
    if high.any() and (~high).any() and e.any():
        _, p = compare_survival(Surv.from_arrays(event=e, time=t), high.astype(int))
        p = float(p)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (name, mask), colour in zip(groups.items(), ("tab:blue", "tab:red")):
        if not mask.any():
            continue
        x, y = kaplan_meier_estimator(e[mask], t[mask])
        ax.step(np.r_[0, x], np.r_[1, y], where="post", color=colour,
                label=f"{name} (n={mask.sum()}, events={e[mask].sum()})")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("relapse-free probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\nlog-rank p = {p:.3g}" if title else f"log-rank p = {p:.3g}")
    ax.legend(loc="lower left")
    save_figure(fig, path)
    return p


def roc_plot(y_true: ArrayLike, y_prob: ArrayLike, path: str | os.PathLike, title: str = "") -> float:
    """ROC curve PNG.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Labels 0/1; both classes must be present.
    y_prob : array-like, shape (n,)
        Scores of class 1.
    path : path
        Output PNG.
    title : str
        Figure title.

    Returns
    -------
    float
        ROC AUC.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    t = np.asarray(y_true, dtype=int).ravel()
    s = np.asarray(y_prob, dtype=float).ravel()
    if len(np.unique(t)) < 2:
        raise ValueError("roc_plot needs both classes in y_true")
    fpr, tpr, _ = roc_curve(t, s)
    auc = float(roc_auc_score(t, s))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, color="tab:blue", label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right")
    save_figure(fig, path)
    return auc


def centre_boxplot(df, value_col: str | Sequence[str], path: str | os.PathLike,
                   centre_col: str = "centre", title: str = "") -> None:
    """Per-centre box plots (points overlaid) of one or several value columns.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per patient with ``centre_col`` and the value column(s).
    value_col : str or list of str
        Column(s) to plot; one panel each. NaN values are left out.
    path : path
        Output PNG.
    centre_col : str
        Column holding the centre name.
    title : str
        Figure title.
    """
    cols = [value_col] if isinstance(value_col, str) else list(value_col)
    for c in [centre_col, *cols]:
        if c not in df.columns:
            raise ValueError(f"centre_boxplot: column {c!r} not in table (have {list(df.columns)})")
    centres = sorted(df[centre_col].astype(str).unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(max(4.0, 0.6 * len(centres) + 2) * len(cols), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, col in zip(axes[0], cols):
        data = [df.loc[df[centre_col].astype(str) == c, col].astype(float).dropna().to_numpy() for c in centres]
        ax.boxplot([d if d.size else [np.nan] for d in data], showfliers=False)
        ax.set_xticks(range(1, len(centres) + 1))
        ax.set_xticklabels([f"{c}\n(n={d.size})" for c, d in zip(centres, data)], fontsize=8)
        for i, d in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, d.size), d, s=6, alpha=0.5, color="tab:blue")
        ax.set_ylabel(col)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def outcome_plot(task: str, truth, score: ArrayLike, path: str | os.PathLike, title: str = "") -> float:
    """The figure of an outcome task: Kaplan-Meier risk groups (``rfs``) or the ROC curve (``hpv``).

    Parameters
    ----------
    task : {"rfs", "hpv"}
    truth : pandas.DataFrame
        ``time`` and ``event`` columns (rfs) or ``label`` (hpv), one row per patient.
    score : array-like, shape (n,)
        Predicted risk (rfs) or probability of HPV+ (hpv).

    Returns
    -------
    float
        The log-rank p-value (rfs) or the ROC AUC (hpv).
    """
    if task == "rfs":
        return km_risk_groups(truth["time"], truth["event"], score, path, title=title)
    return roc_plot(truth["label"], score, path, title=title)
