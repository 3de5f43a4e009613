"""Entry points behind ``hecktor-prognosis train`` and ``hecktor-prognosis cv``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hecktor_nnunet.evaluation.plots import outcome_plot
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.atomic_io import atomic_folder, write_json, write_table
from hecktor_nnunet.prognosis.artifacts import feature_importance, importance_plot, save_model
from hecktor_nnunet.prognosis.cv import CVResult, cross_validate, outcome_truth
from hecktor_nnunet.prognosis.features import Dataset, build_dataset
from hecktor_nnunet.prognosis.models import PrognosisModel

log = logging.getLogger(__name__)


def _cross_validate(task: str, data: Dataset, *, model: str, cv: str, n_splits: int, repeats: int, seed: int,
                    use_radiomics: bool, k_features: int, n_bootstrap: int, n_jobs: int, quiet: bool) -> CVResult:
    result = cross_validate(
        data.X, data.y, data.centres, task=task, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
        n_bootstrap=n_bootstrap, quiet=quiet,
        make_model=lambda rs: PrognosisModel(task=task, model=model, k_features=k_features, random_state=rs,
                                             n_jobs=n_jobs))
    result.report.update({"model": model, "use_radiomics": use_radiomics,
                          "params_hash": data.meta.get("params_hash")})
    key = OUTCOME_TASKS[task].metric
    log.info("%s %s %s cv: %s = %.3f (95%% CI %.3f-%.3f)", task, model, cv, key, result.report[key],
             *result.report[f"{key}_ci95"])
    return result


def _write_oof(task: str, model: str, cv: str, result: CVResult, folder: Path) -> None:
    """``oof_predictions.csv`` and the out-of-fold KM (rfs) or ROC (hpv) plot."""
    write_table(result.oof, folder / "oof_predictions.csv")
    first = result.oof[result.oof["repeat"] == 0]
    key = OUTCOME_TASKS[task].metric
    outcome_plot(task, first, first["score"].to_numpy(), folder / OUTCOME_TASKS[task].figure,
                 f"{task} {model}, out-of-fold ({cv}); {key} {result.report[key]:.3f}")


def run_cv(task: str, features: str | Path | None, clinical: str | Path, out_dir: str | Path, *,
           model: str = "xgb", cv: str = "stratified", n_splits: int = 5, repeats: int = 3, seed: int = 0,
           use_radiomics: bool = True, k_features: int = 20, n_bootstrap: int = 1000, n_jobs: int = 1,
           quiet: bool = False, overwrite: bool = False) -> CVResult:
    """Cross-validate a model; ``out_dir`` receives ``cv_report.json``, ``oof_predictions.csv`` and a KM/ROC plot.

    The folder is written whole (a temporary folder renamed into place): nothing of an earlier run
    stays beside the new files.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    features, clinical : path
        Features table (None for clinical only) and clinical table with the targets.
    out_dir : path
        Output folder; an existing non-empty one is refused unless ``overwrite``.
    model : str
        ``xgb``, or for rfs ``coxnet``, ``rsf``, ``gbsa``.
    cv : {"stratified", "loco"}
    n_splits, repeats, seed
        Folds (stratified), repeats and first seed.
    use_radiomics : bool
        False: clinical variables only.
    k_features : int
        Radiomics columns kept by the selector in each training fold.
    overwrite : bool
        Replace an existing ``out_dir`` whole.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data = build_dataset(features, clinical, task, use_radiomics)
        result = _cross_validate(task, data, model=model, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
                                 use_radiomics=use_radiomics, k_features=k_features, n_bootstrap=n_bootstrap,
                                 n_jobs=n_jobs, quiet=quiet)
        write_json(result.report, folder / "cv_report.json")
        _write_oof(task, model, cv, result, folder)
    return result


def train(task: str, features: str | Path | None, clinical: str | Path, out_dir: str | Path, *,
          model: str = "xgb", use_radiomics: bool = True, k_features: int = 20, cv: str | None = "stratified",
          repeats: int = 1, seed: int = 0, n_bootstrap: int = 1000, n_jobs: int = 1, quiet: bool = False,
          overwrite: bool = False) -> PrognosisModel:
    """Train on all patients and write the model folder (see :mod:`~hecktor_nnunet.prognosis.artifacts`).

    With ``cv`` (default) the model is first cross-validated (``repeats`` times) so the folder carries
    an honest ``cv_report.json`` and out-of-fold KM/ROC plots; ``cv=None`` skips it (the plot is
    then in-sample and says so). The folder is written whole (a temporary folder renamed into
    place), so no file of an earlier model is ever reported as this one's; an existing non-empty
    ``out_dir`` is refused unless ``overwrite``.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data = build_dataset(features, clinical, task, use_radiomics)
        report = None
        if cv:
            result = _cross_validate(task, data, model=model, cv=cv, n_splits=5, repeats=repeats, seed=seed,
                                     use_radiomics=use_radiomics, k_features=k_features, n_bootstrap=n_bootstrap,
                                     n_jobs=n_jobs, quiet=quiet)
            _write_oof(task, model, cv, result, folder)
            report = result.report
        est = PrognosisModel(task=task, model=model, k_features=k_features, random_state=seed,
                             n_jobs=n_jobs).fit(data.X, data.y)
        save_model(est, folder, radiomics_columns=data.radiomics_columns, params_hash=data.meta.get("params_hash"),
                   cv_report=report)
        importance = feature_importance(est, data.X)
        if importance is not None:
            write_table(importance, folder / "feature_importance.csv")
            importance_plot(importance, folder / "feature_importance.png", title=f"{task} {model}: mean |SHAP|")
        if not cv:
            score = est.decision_score(data.X)
            outcome_plot(task, outcome_truth(task, data.y), np.asarray(score), folder / OUTCOME_TASKS[task].figure,
                         f"{task} {model}, in-sample (optimistic)")
    log.info("model %s/%s trained on %d patients (%d selected features) -> %s", task, model, len(data.X),
             len(est.selected_features_), out_dir)
    return est
