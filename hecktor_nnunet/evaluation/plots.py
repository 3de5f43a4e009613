"""Evaluation figures (matplotlib, Agg backend): KM risk groups, ROC curve, per-centre boxplots.

Every figure is written atomically to a PNG by :func:`save_figure` (or returned as PNG bytes by
:func:`figure_png`), which also closes it. Axis titles are the readable labels of
:mod:`~hecktor_nnunet.evaluation.labels`; groups of fewer than :data:`FEW_PATIENTS` patients are
marked (drawn as points, without a box).
"""

from __future__ import annotations

import io
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from hecktor_nnunet.evaluation.labels import label, p_equation  # noqa: E402
from hecktor_nnunet.io.atomic_io import atomic_path  # noqa: E402

#: Groups (centres) with fewer patients than this are flagged: too few for a stable summary or a box.
FEW_PATIENTS = 5
#: Colours of the low- and high-risk groups of the Kaplan-Meier figure.
RISK_GROUP_COLOURS = {"low risk": "tab:blue", "high risk": "tab:red"}


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a matplotlib figure to a PNG atomically (120 dpi, tight box) and close it."""
    png = figure_png(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (120 dpi, tight box); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def numbers_at_risk(time: ArrayLike, groups: Mapping[str, ArrayLike], ticks: ArrayLike) -> dict[str, list[int]]:
    """Patients still at risk (time >= tick, event or not) in each group at each tick.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up times (days).
    groups : mapping of str to boolean array-like, shape (n,)
        Group name -> which patients belong to it.
    ticks : array-like
        Times (days) at which patients are counted.

    Returns
    -------
    dict
        Group name -> one count per tick.
    """
    t = np.asarray(time, dtype=float).ravel()
    out = {}
    for name, mask in groups.items():
        m = np.asarray(mask, dtype=bool).ravel()
        if m.size != t.size:
            raise ValueError(f"group {name!r} has {m.size} flags for {t.size} times")
        out[name] = [int(np.count_nonzero(t[m] >= x)) for x in np.asarray(ticks, dtype=float).ravel()]
    return out


def time_ticks(t_max: float) -> list[float]:
    """Round x ticks from 0 to ``t_max`` (days), at most 6."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, float(t_max))
    return [float(x) for x in ticks if 0.0 <= x <= t_max]


def risk_groups(risk: ArrayLike) -> dict[str, np.ndarray]:
    """Low / high predicted-risk groups split at the median risk (high = ``risk > median``)."""
    r = np.asarray(risk, dtype=float).ravel()
    high = r > np.median(r)
    return {"low risk": ~high, "high risk": high}


def km_figure(time: ArrayLike, event: ArrayLike, risk: ArrayLike, title: str = "") -> tuple[object, float, dict]:
    """Kaplan-Meier curves of the median-split risk groups, with the numbers at risk under the axes.

    Parameters are those of :func:`km_risk_groups`.

    Returns
    -------
    figure, float, dict
        The matplotlib figure; the log-rank p-value (NaN when a group is empty or there is no event);
        the numbers at risk, ``{"time_days": ticks, "<group>": counts...}``.
    """
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator
    from sksurv.util import Surv

    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event).astype(bool).ravel()
    r = np.asarray(risk, dtype=float).ravel()
    if not (t.size == e.size == r.size) or t.size == 0:
        raise ValueError(f"time, event, risk must be non-empty and of equal length, got {t.size}, {e.size}, {r.size}")
    groups = risk_groups(r)
    p = float("nan")
    if all(m.any() for m in groups.values()) and e.any():
        _, p = compare_survival(Surv.from_arrays(event=e, time=t), groups["high risk"].astype(int))
        p = float(p)
    ticks = time_ticks(t.max())
    at_risk = numbers_at_risk(t, groups, ticks)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    for name, mask in groups.items():
        if not mask.any():
            continue
        x, y = kaplan_meier_estimator(e[mask], t[mask])
        ax.step(np.r_[0, x], np.r_[1, y], where="post", color=RISK_GROUP_COLOURS[name],
                label=f"{name} (n={mask.sum()}, relapses={e[mask].sum()})")
    ax.set_xticks(ticks)
    ax.set_xlim(0, t.max() * 1.03)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("relapse-free probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\n{p_equation(p, 'log-rank p')}" if title else p_equation(p, "log-rank p"))
    ax.legend(loc="lower left")
    below = blended_transform_factory(ax.transData, ax.transAxes)
    ax.text(-0.15, -0.16, "Number at risk", transform=ax.transAxes, ha="left", va="top", fontsize=8, weight="bold")
    for i, (name, counts) in enumerate(at_risk.items()):
        y = -0.22 - 0.06 * i
        ax.text(-0.05, y, name, transform=ax.transAxes, ha="right", va="top", fontsize=8,
                color=RISK_GROUP_COLOURS[name])
        for x, n in zip(ticks, counts):
            ax.text(x, y, str(n), transform=below, ha="center", va="top", fontsize=8, color=RISK_GROUP_COLOURS[name])
    return fig, p, {"time_days": ticks, **at_risk}


def km_risk_groups(time: ArrayLike, event: ArrayLike, risk: ArrayLike, path: str | os.PathLike,
                   title: str = "") -> float:
    """Kaplan-Meier curves of low/high predicted-risk groups split at the median risk, numbers at risk below.

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
    fig, p, _ = km_figure(time, event, risk, title)
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


def centre_boxplot_figure(df, value_col: str | Sequence[str], centre_col: str = "centre", title: str = ""):
    """The figure of :func:`centre_boxplot` (not saved)."""
    cols = [value_col] if isinstance(value_col, str) else list(value_col)
    for c in [centre_col, *cols]:
        if c not in df.columns:
            raise ValueError(f"centre_boxplot: column {c!r} not in table (have {list(df.columns)})")
    centres = sorted(df[centre_col].astype(str).unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(max(4.0, 0.6 * len(centres) + 2) * len(cols), 4), squeeze=False)
    rng = np.random.default_rng(0)
    few = False
    for ax, col in zip(axes[0], cols):
        data = [df.loc[df[centre_col].astype(str) == c, col].astype(float).dropna().to_numpy() for c in centres]
        boxed = [i for i, d in enumerate(data, start=1) if d.size >= FEW_PATIENTS]
        if boxed:
            ax.boxplot([data[i - 1] for i in boxed], positions=boxed, showfliers=False)
        ax.set_xticks(range(1, len(centres) + 1))
        ax.set_xticklabels([f"{c}\n(n={d.size}{'*' if d.size < FEW_PATIENTS else ''})" for c, d in zip(centres, data)],
                           fontsize=8)
        ax.set_xlim(0.4, len(centres) + 0.6)
        for i, d in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, d.size), d, s=6 if d.size >= FEW_PATIENTS else 14, alpha=0.6,
                       color="tab:blue" if d.size >= FEW_PATIENTS else "tab:orange")
        few = few or any(d.size < FEW_PATIENTS for d in data)
        ax.set_ylabel(label(col))
    if few:
        fig.text(0.01, -0.02, f"* fewer than {FEW_PATIENTS} patients: points only, no box (too few for a "
                              "distribution)", fontsize=8, ha="left", va="top")
    if title:
        fig.suptitle(title)
    return fig


def centre_boxplot(df, value_col: str | Sequence[str], path: str | os.PathLike,
                   centre_col: str = "centre", title: str = "") -> None:
    """Per-centre box plots (points overlaid) of one or several value columns.

    A centre with fewer than :data:`FEW_PATIENTS` values is drawn as points only, its tick marked
    ``*`` and explained under the figure.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per patient with ``centre_col`` and the value column(s).
    value_col : str or list of str
        Column(s) to plot; one panel each, titled by its readable label. NaN values are left out.
    path : path
        Output PNG.
    centre_col : str
        Column holding the centre name.
    title : str
        Figure title.
    """
    save_figure(centre_boxplot_figure(df, value_col, centre_col, title), path)


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
