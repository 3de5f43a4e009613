"""Entry points behind ``hecktor-prognosis train``, ``cv`` and ``compare``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hecktor_nnunet.evaluation.plots import outcome_plot
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.atomic_io import atomic_folder, write_json, write_table, write_text
from hecktor_nnunet.prognosis.artifacts import feature_importance, importance_plot, save_model
from hecktor_nnunet.prognosis.compare import comparison_markdown, comparison_plot, compare_models
from hecktor_nnunet.prognosis.cv import CVResult, cross_validate, outcome_truth
from hecktor_nnunet.prognosis.features import Dataset, build_dataset
from hecktor_nnunet.prognosis.models import PrognosisModel

log = logging.getLogger(__name__)


def _cross_validate(task: str, data: Dataset, *, model: str, cv: str, n_splits: int, repeats: int, seed: int,
                    use_radiomics: bool, k_features: int | None, n_bootstrap: int, workers: int,
                    quiet: bool) -> CVResult:
    result = cross_validate(
        data.X, data.y, data.centres, task=task, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
        n_bootstrap=n_bootstrap, workers=workers, quiet=quiet,
        make_model=lambda rs: PrognosisModel(task=task, model=model, k_features=k_features, random_state=rs))
    result.report.update({"model": model, "use_radiomics": use_radiomics, "params_hash": data.meta.get("params_hash"),
                          **data.inputs_report()})
    key = OUTCOME_TASKS[task].metric
    log.info("%s %s %s cv: %s = %.3f (95%% CI %.3f-%.3f)", task, model, cv, key, result.report[key],
             *result.report[f"{key}_ci95"])
    return result


def run_cv(task: str, features: str | Path | None, clinical: str | Path, out_dir: str | Path, *,
           model: str = "auto", cv: str = "centre-stratified", n_splits: int = 5, repeats: int = 3, seed: int = 0,
           use_radiomics: bool = True, k_features: int | None = None, exclude_clinical: tuple[str, ...] = (),
           n_bootstrap: int = 1000, workers: int = 1, quiet: bool = False, overwrite: bool = False) -> CVResult:
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
        ``auto`` (inner cross-validation chooses family and ``k``), a family, or ``ensemble``
        (:func:`~hecktor_nnunet.prognosis.families.model_names`).
    cv : {"centre-stratified", "leave-one-centre-out"}
    n_splits, repeats, seed
        Folds (centre-stratified), repeats and first seed.
    use_radiomics : bool
        False: clinical variables only.
    k_features : int, optional
        Radiomics columns kept by the screen in each training fold (default: chosen by ``auto``,
        20 for a family).
    exclude_clinical : tuple of str
        Encoded clinical columns (``CLIN_HPV``) left out of the inputs.
    workers : int
        Processes fitting folds in parallel.
    overwrite : bool
        Replace an existing ``out_dir`` whole.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data = build_dataset(features, clinical, task, use_radiomics, exclude_clinical)
        result = _cross_validate(task, data, model=model, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
                                 use_radiomics=use_radiomics, k_features=k_features, n_bootstrap=n_bootstrap,
                                 workers=workers, quiet=quiet)
        write_json(result.report, folder / "cv_report.json")
        result.write_oof(folder, task, model)
    return result


def run_compare(task: str, features: str | Path | None, clinical: str | Path, out_dir: str | Path, *,
                models: tuple[str, ...] | None = None, cv: str = "centre-stratified", n_splits: int = 5, repeats: int = 1,
                seed: int = 0, k_features: int | None = None, exclude_clinical: tuple[str, ...] = (),
                deep: dict | None = None, n_bootstrap: int = 1000, workers: int = 1, quiet: bool = False,
                overwrite: bool = False) -> dict:
    """Compare every model on the same folds (:func:`~hecktor_nnunet.prognosis.compare.compare_models`).

    ``out_dir`` receives ``comparison.json`` (rows: ``model``, ``score``, ``ci``, ``n_patients``, the
    paired difference to ``auto`` and its p-value), ``comparison.md``, ``comparison.png`` and
    ``oof_predictions.csv``; written whole, an existing non-empty folder is refused unless
    ``overwrite``. Parameters are those of :func:`run_cv`; ``models`` restricts the rows. ``deep``
    (``release``, ``masks`` and the keywords of
    :func:`~hecktor_nnunet.prognosis.deep_train.deep_comparison_row`) adds the image network as a
    row, every row then on the patients with both features and a crop.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data = build_dataset(features, clinical, task, features is not None, exclude_clinical)
        extra = {}
        if deep:
            from hecktor_nnunet.prognosis.deep_train import deep_comparison_row

            data, extra["deep"] = deep_comparison_row(task, data, clinical=clinical, exclude_clinical=exclude_clinical,
                                                      workers=workers, quiet=quiet, **deep)
        report, oof = compare_models(data.X, data.y, data.centres, task=task, models=models, cv=cv,
                                     n_splits=n_splits, repeats=repeats, seed=seed, n_boot=n_bootstrap,
                                     k_features=k_features, extra=extra, workers=workers, quiet=quiet)
        report.update({"params_hash": data.meta.get("params_hash"), **data.inputs_report()})
        write_json(report, folder / "comparison.json")
        write_text(comparison_markdown(report), folder / "comparison.md")
        comparison_plot(report, folder / "comparison.png")
        write_table(oof, folder / "oof_predictions.csv")
    return report


def train(task: str, features: str | Path | None, clinical: str | Path, out_dir: str | Path, *,
          model: str = "auto", use_radiomics: bool = True, k_features: int | None = None,
          exclude_clinical: tuple[str, ...] = (), cv: str | None = "centre-stratified", n_splits: int = 5,
          repeats: int = 1, seed: int = 0, n_bootstrap: int = 1000, workers: int = 1, quiet: bool = False,
          overwrite: bool = False) -> PrognosisModel:
    """Train on all patients and write the model folder (see :mod:`~hecktor_nnunet.prognosis.artifacts`).

    With ``cv`` (default) the model is first cross-validated (``repeats`` times) so the folder carries
    an honest ``cv_report.json`` and out-of-fold KM/ROC plots; ``cv=None`` skips it (the plot is
    then in-sample and says so). The folder is written whole (a temporary folder renamed into
    place), so no file of an earlier model is ever reported as this one's; an existing non-empty
    ``out_dir`` is refused unless ``overwrite``.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data = build_dataset(features, clinical, task, use_radiomics, exclude_clinical)
        report = None
        if cv:
            result = _cross_validate(task, data, model=model, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
                                     use_radiomics=use_radiomics, k_features=k_features, n_bootstrap=n_bootstrap,
                                     workers=workers, quiet=quiet)
            result.write_oof(folder, task, model)
            report = result.report
        est = PrognosisModel(task=task, model=model, k_features=k_features, random_state=seed).fit(data.X, data.y)
        save_model(est, folder, radiomics_columns=data.radiomics_columns, params_hash=data.meta.get("params_hash"),
                   cv_report=report, exclude_clinical=exclude_clinical)
        importance = feature_importance(est, data.X)
        if importance is not None:
            write_table(importance, folder / "feature_importance.csv")
            importance_plot(importance, folder / "feature_importance.png",
                            title=f"{task} {est.chosen_['model']}: mean |SHAP|")
        if not cv:
            score = est.decision_score(data.X)
            outcome_plot(task, outcome_truth(task, data.y), np.asarray(score), folder / OUTCOME_TASKS[task].figure,
                         f"{task} {model}, in-sample (optimistic)")
    log.info("model %s/%s (%s) trained on %d patients (%d selected features) -> %s", task, model, est.chosen_,
             len(data.X), len(est.selected_features_), out_dir)
    return est
