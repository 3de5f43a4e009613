"""Every model family on the same outer folds, with bootstrap intervals and a paired test against the default.

:func:`compare_models` fits each model (the families, the ensemble, ``auto`` and a clinical-only
model) on the training part of every outer fold and scores it on the test part, exactly as
:func:`~hecktor_nnunet.prognosis.cv.cross_validate` does for one model. The score of a model is the
mean of its fold metrics (C-index for rfs, balanced accuracy for hpv), as in ``cv_report.json``.

Uncertainty comes from one bootstrap shared by all models: each resample draws patients with
replacement within every outer fold, recomputes every fold metric of every model on the drawn
patients and averages them. A model's 95 % interval is the percentile interval of its resampled
score; the paired test against the default uses the difference ``model - default`` on the same
resamples (its 95 % interval, and a two-sided bootstrap p-value, ``2 * min(P(diff <= 0),
P(diff >= 0))``, at least ``1 / n_boot``). A model that cannot be fitted in some fold (all censored,
a singular fit) gets its error in its row and no score; the others still run.

A model with inputs of its own (the image network of :mod:`~hecktor_nnunet.prognosis.deep_model`
reads crops and a clinical vector, not the features table) joins as an :class:`ExtraModel`: its
table holds the same patients in the same order, so it is fitted and scored on the very same folds
and enters the same bootstrap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.labels import format_p
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.metrics.classification import balanced_accuracy
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.cv import splits
from hecktor_nnunet.prognosis.families import AUTO, CLINICAL_FAMILY, model_names
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import stratify_labels

log = logging.getLogger(__name__)

CLINICAL = "clinical"
DEFAULT = AUTO


def compared_models(task: str) -> tuple[str, ...]:
    """The rows of a comparison: ``auto`` (the default), every family, ``ensemble``, ``clinical``."""
    return (*model_names(task), CLINICAL)


def model_label(task: str, model: str) -> str:
    """What a comparison row is called in tables and figures."""
    if model == CLINICAL:
        return f"clinical only ({CLINICAL_FAMILY[task]})"
    return "auto (default)" if model == DEFAULT else model


@dataclass
class ExtraModel:
    """A comparison row with inputs of its own, fitted on the same folds as the others.

    Attributes
    ----------
    X : DataFrame
        Its inputs, indexed by the same PatientIDs in the same order as the features table.
    make_model : callable
        ``make_model(random_state)`` -> an unfitted model with ``fit``, ``decision_score``,
        ``predict`` (hpv) and ``chosen_``.
    label : str
        What its row is called.
    """

    X: pd.DataFrame
    make_model: Callable
    label: str


@dataclass
class FoldJob:
    """One model on one outer fold (picklable: runs in a worker process)."""

    task: str
    model: str
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    seed: int
    k_features: int | None
    make_model: Callable | None = None


def _run(job: FoldJob) -> dict:
    X = job.X
    if job.make_model is not None:
        model = job.make_model(job.seed)
    elif job.model == CLINICAL:
        X = X[[c for c in X.columns if str(c).startswith("CLIN_")]]
        model = PrognosisModel(task=job.task, model=CLINICAL_FAMILY[job.task], k_features=0,
                               random_state=job.seed)
    else:
        model = PrognosisModel(task=job.task, model=job.model, k_features=job.k_features, random_state=job.seed)
    out = {"model": job.model, "repeat": job.repeat, "fold": job.fold, "test": job.test}
    try:
        if X.shape[1] == 0:
            raise ValueError("no clinical columns in the inputs (the clinical table has no encodable variable)")
        model.fit(X.iloc[job.train], job.y[job.train])
        out["score"] = model.decision_score(X.iloc[job.test])
        out["prediction"] = model.predict(X.iloc[job.test]) if job.task == "hpv" else None
        out["chosen"] = model.chosen_
    except (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError) as e:  # RuntimeError: torch
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def _fold_metric(task: str, y: np.ndarray, idx: np.ndarray, score: np.ndarray, pred: np.ndarray | None) -> float:
    try:
        if task == "rfs":
            return concordance_index(y["time"][idx], y["event"][idx], score)
        return balanced_accuracy(y[idx], pred)
    except ValueError:  # a resample without a comparable pair or without one of the classes
        return float("nan")


def _statistic(task: str, y: np.ndarray, parts: list[dict], draws: list[np.ndarray] | None) -> float:
    """Mean fold metric of one model; ``draws`` (positions within each fold) resample the patients."""
    values = []
    for i, p in enumerate(parts):
        pick = slice(None) if draws is None else draws[i]
        pred = None if p["prediction"] is None else p["prediction"][pick]
        values.append(_fold_metric(task, y, p["test"][pick], p["score"][pick], pred))
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _interval(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if len(values) < 10:
        return None
    return [float(v) for v in np.quantile(values, [0.025, 0.975])]


def _rows(task: str, y: np.ndarray, results: dict[str, list[dict]], labels: dict[str, str], n_boot: int,
          seed: int) -> list[dict]:
    ok = {m: parts for m, parts in results.items() if not any("error" in p for p in parts)}
    folds = [p["test"] for p in next(iter(ok.values()))] if ok else []
    rng = np.random.default_rng(seed)
    draws = [[rng.integers(0, len(t), len(t)) for t in folds] for _ in range(n_boot)]
    boot = {m: np.asarray([_statistic(task, y, parts, d) for d in draws]) for m, parts in ok.items()}
    rows = []
    for model, parts in results.items():
        errors = [f"repeat {p['repeat']} fold {p['fold']}: {p['error']}" for p in parts if "error" in p]
        row = {"model": model, "label": labels[model], "n_patients": int(len(y)),
               "score": None, "ci": None, "fold_scores": None, "diff_vs_default": None, "diff_ci": None,
               "p_value": None, "error": errors[0] if errors else None}
        if not errors:
            row["score"] = _statistic(task, y, parts, None)
            row["ci"] = _interval(boot[model])
            row["fold_scores"] = [round(_fold_metric(task, y, p["test"], p["score"], p["prediction"]), 6)
                                  for p in parts]
            if DEFAULT in boot and model != DEFAULT:
                diff = boot[model] - boot[DEFAULT]
                diff = diff[np.isfinite(diff)]
                row["diff_vs_default"] = row["score"] - _statistic(task, y, results[DEFAULT], None)
                row["diff_ci"] = _interval(diff)
                p = 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)) if len(diff) else float("nan")
                row["p_value"] = float(min(1.0, max(p, 1.0 / n_boot)))
        chosen = [p["chosen"] for p in parts if "chosen" in p]
        if model == DEFAULT and chosen:
            row["chosen"] = pd.Series([f"{c['model']} (k={c['k_features']})" for c in chosen]).value_counts().to_dict()
        rows.append(row)
    return rows


def compare_models(X: pd.DataFrame, y: np.ndarray, centres: np.ndarray, *, task: str,
                   models: tuple[str, ...] | None = None, cv: str = "centre-stratified", n_splits: int = 5,
                   repeats: int = 1, seed: int = 0, n_boot: int = 1000, k_features: int | None = None,
                   extra: dict[str, ExtraModel] | None = None, workers: int = 1,
                   quiet: bool = False) -> tuple[dict, pd.DataFrame]:
    """Fit and score every model on the same outer folds.

    Parameters
    ----------
    X : DataFrame (n, p)
        Features indexed by PatientID (radiomics and ``CLIN_`` columns).
    y : ndarray (n,)
        Structured (event, time) array (rfs) or 0/1 labels (hpv).
    centres : ndarray of str (n,)
    task : {"rfs", "hpv"}
    models : tuple of str, optional
        Rows to compute (default :func:`compared_models`); ``auto`` is always added: it is the
        reference of the paired test.
    cv, n_splits, repeats, seed
        The outer folds, as in :func:`~hecktor_nnunet.prognosis.cv.cross_validate`.
    n_boot : int
        Bootstrap resamples of the intervals and of the paired test.
    k_features : int, optional
        Screened columns of every model (default: chosen by ``auto``, 20 for a family).
    extra : dict of str to ExtraModel, optional
        Further rows with inputs of their own (e.g. ``{"deep": ...}``), on the same folds.
    workers : int
        Processes (one model on one fold each).

    Returns
    -------
    report : dict
        ``task``, ``metric``, the fold settings, ``n_patients``, ``default`` and ``rows`` (one per
        model: ``model``, ``label``, ``score``, ``ci``, ``n_patients``, ``fold_scores``,
        ``diff_vs_default``, ``diff_ci``, ``p_value``, ``error``; ``auto`` also ``chosen``).
    oof : DataFrame
        Out-of-fold outputs: PatientID, model, repeat, fold, score (and prediction for hpv).
    """
    extra = extra or {}
    names = list(dict.fromkeys([DEFAULT, *(models or compared_models(task))]))
    unknown = [m for m in names if m not in compared_models(task)]
    if unknown:
        raise ValueError(f"unknown {task} model(s) {unknown}; choose among {compared_models(task)}")
    for name, e in extra.items():
        if name in names or not e.X.index.equals(X.index):
            raise ValueError(f"extra model {name!r}: a name of its own and the features table's patients in its "
                             "order are needed")
    labels = {m: model_label(task, m) for m in names} | {k: e.label for k, e in extra.items()}
    names += list(extra)
    y = np.asarray(y)
    jobs = [FoldJob(task, m, r, f, tr, te, extra[m].X if m in extra else X, y, seed + r, k_features,
                    extra[m].make_model if m in extra else None)
            for r in range(repeats) for f, (tr, te) in enumerate(splits(centres, stratify_labels(task, y), cv,
                                                                         n_splits, seed + r))
            for m in names]
    done = sorted(parallel_map(_run, jobs, workers=workers, desc=f"compare {task}", quiet=quiet),
                  key=lambda d: (names.index(d["model"]), d["repeat"], d["fold"]))
    results = {m: [d for d in done if d["model"] == m] for m in names}
    for model, parts in results.items():
        for p in parts:
            if "error" in p:
                log.warning("%s %s: repeat %d fold %d could not be fitted: %s", task, model, p["repeat"],
                            p["fold"], p["error"])
    report = {"task": task, "metric": OUTCOME_TASKS[task].metric, "cv": cv, "n_splits": len(jobs) // repeats // len(names),
              "repeats": repeats, "seed": seed, "n_boot": n_boot, "n_patients": int(len(y)), "default": DEFAULT,
              "rows": _rows(task, y, results, labels, n_boot, seed)}
    frames = [pd.DataFrame({"PatientID": X.index[p["test"]], "model": p["model"], "repeat": p["repeat"],
                            "fold": p["fold"], "score": p["score"],
                            **({"prediction": p["prediction"]} if task == "hpv" else {})})
              for parts in results.values() for p in parts if "error" not in p]
    oof = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["PatientID", "model"])
    return report, oof


METRIC_NAMES = {"c_index": "C-index", "balanced_accuracy": "balanced accuracy"}


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def comparison_markdown(report: dict) -> str:
    """The comparison as a markdown table (score, 95 % interval, difference to the default and p)."""
    metric = METRIC_NAMES[report["metric"]]
    head = (f"{report['task'].upper()}: {metric}, mean of {report['n_splits']} {report['cv']} outer folds"
            f" x {report['repeats']} repeat(s), {report['n_patients']} patients; 95 % intervals and paired"
            f" differences from {report['n_boot']} bootstrap resamples within folds.\n\n")
    lines = [f"| model | {metric} | 95 % CI | vs. default | 95 % CI of the difference | p |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r["error"]:
            lines.append(f"| {r['label']} | could not be fitted: {r['error'][:120]} | | | | |")
            continue
        ci = " to ".join(_fmt(v) for v in r["ci"]) if r["ci"] else "n/a"
        dci = " to ".join(f"{v:+.3f}" for v in r["diff_ci"]) if r["diff_ci"] else ""
        diff = "" if r["diff_vs_default"] is None else f"{r['diff_vs_default']:+.3f}"
        p = "" if r["p_value"] is None else format_p(r["p_value"])
        lines.append(f"| {r['label']} | {_fmt(r['score'])} | {ci} | {diff} | {dci} | {p} |")
    chosen = next((r.get("chosen") for r in report["rows"] if r["model"] == DEFAULT), None)
    tail = ("\n\n`auto` chose, per outer fold: " + ", ".join(f"{k} x{v}" for k, v in chosen.items())) if chosen else ""
    return head + "\n".join(lines) + tail + "\n"


def comparison_plot(report: dict, path) -> None:
    """Each model's score with its 95 % interval (the default highlighted), one PNG."""
    import matplotlib.pyplot as plt

    from hecktor_nnunet.evaluation.plots import save_figure

    rows = [r for r in report["rows"] if r["score"] is not None][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(rows) + 1.3))
    for i, r in enumerate(rows):
        colour = "tab:red" if r["model"] == DEFAULT else "tab:blue"
        if r["ci"]:
            ax.plot(r["ci"], [i, i], color=colour, lw=2)
        ax.plot([r["score"]], [i], "o", color=colour)
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows])
    ax.set_xlabel(f"{METRIC_NAMES[report['metric']]} (mean of outer folds, 95 % bootstrap interval)")
    ax.set_title(f"{report['task'].upper()} models on the same {report['cv']} folds ({report['n_patients']} patients)")
    save_figure(fig, path)
