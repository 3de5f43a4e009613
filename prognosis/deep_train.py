"""Entry points behind ``hecktor-prognosis cv|train|predict ... --model deep``, and the deep model folder.

Inputs: the release (images through :func:`~hecktor_nnunet.io.release.read_release`), a folder of
masks (true or predicted label maps on the CT grids), the clinical table. The patients are those of
the clinical table with the task's target and a crop (:mod:`~hecktor_nnunet.prognosis.deep_crops`);
everyone else is named in the warnings and in the report's ``left_out`` (``without_crop`` says why).
Validation uses :func:`~hecktor_nnunet.prognosis.cv.cross_validate`: the folds of
:func:`~hecktor_nnunet.prognosis.cv.splits` and the ``cv_report.json`` of every other model.

A deep model folder holds::

    prognosis.json     format, task, model "deep", settings (network, training, crop), params (tabular
                       scaler, HPV threshold, members' training record), network size and input,
                       excluded clinical columns, weights hash, library versions
    weights.pt         the members' weights (a dict of state dicts; ``torch.load(weights_only=True)``)
    cv_report.json     when cross-validated, with the out-of-fold KM (rfs) or ROC (hpv) plot
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.plots import outcome_plot
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.atomic_io import atomic_folder, atomic_path, write_json
from hecktor_nnunet.io.clinical import read_clinical
from hecktor_nnunet.prognosis.compare import ExtraModel
from hecktor_nnunet.prognosis.cv import CVResult, cross_validate, outcome_truth
from hecktor_nnunet.prognosis.deep_crops import CHANNELS, CropSettings, CropStore, build_crops
from hecktor_nnunet.prognosis.deep_model import DEEP, DeepPrognosisModel, TabularScaler
from hecktor_nnunet.prognosis.features import Dataset, dataset_from_tables, model_inputs

log = logging.getLogger(__name__)

MODEL_INFO = "prognosis.json"
WEIGHTS = "weights.pt"
FORMAT_VERSION = 1
#: The settings a command line may give the network (the rest keep :class:`DeepPrognosisModel`'s defaults).
NET_SETTINGS = ("width", "hidden", "dropout", "epochs", "patience", "batch_size", "learning_rate", "weight_decay",
                "members", "focal_gamma", "augment", "device", "n_jobs")


def deep_dataset(task: str, release: str | Path, masks: str | Path, clinical: str | Path | pd.DataFrame, *,
                 crop: CropSettings, cache: str | Path | None = None, measures: bool = True,
                 exclude_clinical: tuple[str, ...] = (), workers: int = 1, quiet: bool = False
                 ) -> tuple[Dataset, CropStore]:
    """The training table (clinical columns and PET measures) and the crops of every usable patient.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    release, masks : path
        Release folder and mask folder.
    clinical : path or DataFrame
        Clinical table with the task's target (schema of :mod:`hecktor_nnunet.io.clinical`).
    crop : CropSettings
    cache : path, optional
        Crop cache folder.
    measures : bool
        Add the PET measures (SUVmax, MTV, TLG...) to the tabular inputs.
    exclude_clinical : tuple of str
        Encoded clinical columns left out.
    workers : int
        Processes cropping.

    Returns
    -------
    (Dataset, CropStore)
        ``Dataset.left_out["without_crop"]`` maps each patient with a target but no crop to the reason.
    """
    table = clinical if isinstance(clinical, pd.DataFrame) else read_clinical(clinical)
    source = "clinical table" if isinstance(clinical, pd.DataFrame) else str(clinical)
    data = dataset_from_tables(None, table, task, use_radiomics=False, exclude_clinical=exclude_clinical,
                               sources=(str(masks), source))
    store = build_crops(release, masks, crop, patients=list(data.X.index), cache_dir=cache, workers=workers,
                        quiet=quiet)
    keep = np.asarray([i in store for i in data.X.index])
    if not keep.any():
        raise ValueError(f"no patient of {source} has a usable crop from {release} and {masks}: "
                         + "; ".join(f"{k}: {v}" for k, v in list(store.without_crop().items())[:5]))
    X = data.X[keep]
    if measures:
        X = X.join(store.measures(), how="left")
    without = store.without_crop()
    if without:
        log.warning("%d patient(s) without a crop, left out: %s", len(without), ", ".join(list(without)[:20]))
    left = {**data.left_out, "without_crop": without}
    meta = {"crop": asdict(crop), "crop_problems": [p.to_dict() for p in store.problems]}
    return Dataset(X, data.y[keep], data.centres[keep], meta, [], left), store


def _model_factory(task: str, store: CropStore, net: dict):
    return lambda rs: DeepPrognosisModel(task=task, crops=store, random_state=rs, **net)


def deep_comparison_row(task: str, data: Dataset, release: str | Path, masks: str | Path,
                        clinical: str | Path, *, crop: CropSettings = CropSettings(), cache: str | Path | None = None,
                        net: dict | None = None, measures: bool = True, exclude_clinical: tuple[str, ...] = (),
                        workers: int = 1, quiet: bool = False) -> tuple[Dataset, ExtraModel]:
    """The deep model as a row of ``hecktor-prognosis compare``, on the patients it shares with ``data``.

    ``data`` is the features table's dataset; the comparison keeps the patients with both features and
    a crop, so that every row is scored on the same patients and folds. A patient of ``data`` without
    a crop is named in a warning and in ``left_out["without_crop"]`` (with the reason); one with a crop
    but no features is already in ``data.left_out``.

    Returns
    -------
    (Dataset, ExtraModel)
        ``data`` restricted to the shared patients, and the row (its table in the same order).
    """
    deep, store = deep_dataset(task, release, masks, clinical, crop=crop, cache=cache, measures=measures,
                               exclude_clinical=exclude_clinical, workers=workers, quiet=quiet)
    keep = data.X.index.isin(deep.X.index)
    if not keep.any():
        raise ValueError(f"no patient has both features and a crop from {masks}")
    reasons = deep.left_out["without_crop"]
    without = {p: reasons.get(p, "no crop") for p in data.X.index[~keep]}
    if without:
        log.warning("compare: %d patient(s) with features but no crop, left out of every row: %s", len(without),
                    ", ".join(list(without)[:20]))
    shared = Dataset(data.X[keep], data.y[keep], data.centres[keep], {**data.meta, **deep.meta},
                     data.radiomics_columns, {**data.left_out, "without_crop": without})
    row = ExtraModel(deep.X.loc[shared.X.index], _model_factory(task, store, dict(net or {})),
                     "deep (PET/CT crops + clinical)")
    return shared, row


def _network_info(model: DeepPrognosisModel, crop: CropSettings) -> dict:
    return {"parameters_per_member": int(model.n_parameters_), "members": len(model.nets_),
            "input": {"image": [len(CHANNELS), crop.size, crop.size, crop.size], "channels": list(CHANNELS),
                      "tabular": model.scaler_.n_outputs}}


def _cross_validate(task: str, data: Dataset, store: CropStore, net: dict, *, cv: str, n_splits: int, repeats: int,
                    seed: int, n_bootstrap: int, workers: int, quiet: bool) -> CVResult:
    result = cross_validate(data.X, data.y, data.centres, task=task, cv=cv, n_splits=n_splits, repeats=repeats,
                            seed=seed, n_bootstrap=n_bootstrap, workers=1, quiet=quiet,
                            make_model=_model_factory(task, store, net))
    settings = DeepPrognosisModel(task=task, **net).settings()
    result.report.update({"model": DEEP, "use_radiomics": False, "params_hash": None, "settings": settings,
                          **data.meta, **data.inputs_report()})
    key = OUTCOME_TASKS[task].metric
    log.info("%s deep %s cv: %s = %.3f (95%% CI %.3f-%.3f)", task, cv, key, result.report[key],
             *result.report[f"{key}_ci95"])
    return result


def run_deep_cv(task: str, release: str | Path, masks: str | Path, clinical: str | Path, out_dir: str | Path, *,
                crop: CropSettings = CropSettings(), cache: str | Path | None = None, net: dict | None = None,
                measures: bool = True, exclude_clinical: tuple[str, ...] = (), cv: str = "centre-stratified",
                n_splits: int = 5, repeats: int = 1, seed: int = 0, n_bootstrap: int = 1000, workers: int = 1,
                quiet: bool = False, overwrite: bool = False) -> CVResult:
    """Cross-validate the deep model; ``out_dir`` receives ``cv_report.json``, ``oof_predictions.csv`` and a plot.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    release, masks, clinical : path
        See :func:`deep_dataset`.
    out_dir : path
        Written whole; an existing non-empty one is refused unless ``overwrite``.
    crop : CropSettings
    cache : path, optional
        Crop cache (shared by both tasks and by later runs).
    net : dict, optional
        Settings of :class:`~hecktor_nnunet.prognosis.deep_model.DeepPrognosisModel` (``epochs``, ``width``...).
    measures : bool
        PET measures among the tabular inputs.
    cv, n_splits, repeats, seed, n_bootstrap
        As for every model (:func:`~hecktor_nnunet.prognosis.cv.cross_validate`).
    workers : int
        Processes cropping (torch threads are ``net["n_jobs"]``).
    """
    net = dict(net or {})
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data, store = deep_dataset(task, release, masks, clinical, crop=crop, cache=cache, measures=measures,
                                   exclude_clinical=exclude_clinical, workers=workers, quiet=quiet)
        result = _cross_validate(task, data, store, net, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
                                 n_bootstrap=n_bootstrap, workers=workers, quiet=quiet)
        write_json(result.report, folder / "cv_report.json")
        result.write_oof(folder, task, DEEP)
    return result


def train_deep(task: str, release: str | Path, masks: str | Path, clinical: str | Path, out_dir: str | Path, *,
               crop: CropSettings = CropSettings(), cache: str | Path | None = None, net: dict | None = None,
               measures: bool = True, exclude_clinical: tuple[str, ...] = (), cv: str | None = "centre-stratified",
               n_splits: int = 5, repeats: int = 1, seed: int = 0, n_bootstrap: int = 1000, workers: int = 1,
               quiet: bool = False, overwrite: bool = False) -> DeepPrognosisModel:
    """Train on every usable patient and write the deep model folder (module docstring).

    With ``cv`` the model is first cross-validated so the folder carries ``cv_report.json`` and the
    out-of-fold plot; ``cv=None`` skips it (the plot is then in-sample and says so). Parameters as
    :func:`run_deep_cv`.
    """
    net = dict(net or {})
    with atomic_folder(out_dir, overwrite=overwrite) as folder:
        data, store = deep_dataset(task, release, masks, clinical, crop=crop, cache=cache, measures=measures,
                                   exclude_clinical=exclude_clinical, workers=workers, quiet=quiet)
        report = None
        if cv:
            result = _cross_validate(task, data, store, net, cv=cv, n_splits=n_splits, repeats=repeats, seed=seed,
                                     n_bootstrap=n_bootstrap, workers=workers, quiet=quiet)
            result.write_oof(folder, task, DEEP)
            report = result.report
        model = _model_factory(task, store, net)(seed).fit(data.X, data.y)
        save_deep_model(model, folder, crop=crop, measures=measures, exclude_clinical=exclude_clinical,
                        cv_report=report, training={"n_patients": len(data.X), **data.inputs_report()})
        if not cv:
            outcome_plot(task, outcome_truth(task, data.y), model.decision_score(data.X),
                         folder / OUTCOME_TASKS[task].figure, f"{task} deep, in-sample (optimistic)")
    log.info("deep %s model trained on %d patients -> %s", task, len(data.X), out_dir)
    return model


def _versions() -> dict[str, str]:
    import torch

    from hecktor_nnunet.prognosis.artifacts import versions

    return {**versions(), "torch": torch.__version__}


def save_deep_model(model: DeepPrognosisModel, folder: str | Path, *, crop: CropSettings, measures: bool,
                    exclude_clinical: tuple[str, ...] = (), cv_report: dict | None = None,
                    training: dict | None = None) -> Path:
    """Write ``weights.pt`` and ``prognosis.json`` of a fitted model into ``folder`` (each file atomically).

    ``folder`` should be new (:func:`train_deep` passes the temporary folder that replaces the model
    folder whole).
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        torch.save({f"member{k}": net.state_dict() for k, net in enumerate(model.nets_)}, tmp)
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()[:16]
    info = {"format": FORMAT_VERSION, "task": model.task, "model": DEEP, "chosen": model.chosen_,
            "settings": model.settings(), "crop": asdict(crop), "measures": measures,
            "params": {"tabular": model.scaler_.to_dict(), "threshold": model.threshold_,
                       "crop_size": model.crop_size_, "members": model.members_},
            "network": _network_info(model, crop), "feature_names_in": model.feature_names_in_,
            "exclude_clinical": list(exclude_clinical), "weights_file": WEIGHTS, "weights_sha256": digest,
            "training": training or {}, "versions": _versions()}
    write_json(info, folder / MODEL_INFO)
    if cv_report is not None:
        write_json(cv_report, folder / "cv_report.json")
    return folder


def is_deep_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a deep model (its ``prognosis.json`` says ``"model": "deep"``)."""
    path = Path(folder) / MODEL_INFO
    try:
        return json.loads(path.read_text()).get("model") == DEEP
    except (OSError, ValueError):
        return False


def load_deep_model(folder: str | Path) -> tuple[DeepPrognosisModel, dict]:
    """Read a deep model folder back into the fitted model (on the CPU, without crops) and its info."""
    import torch

    from hecktor_nnunet.prognosis.artifacts import read_model_info

    folder = Path(folder)
    info = read_model_info(folder, format_version=FORMAT_VERSION, model=DEEP, versions_now=_versions())
    model = DeepPrognosisModel(**{**info["settings"], "device": "cpu"})
    params = info["params"]
    model.feature_names_in_ = list(info["feature_names_in"])
    model.scaler_ = TabularScaler.from_dict(params["tabular"])
    model.threshold_ = params["threshold"]
    model.crop_size_ = int(params["crop_size"])
    model.members_ = params["members"]
    states = torch.load(folder / info["weights_file"], map_location="cpu", weights_only=True)
    model.nets_ = []
    for k in range(len(model.members_)):
        net = model._net(model.scaler_.n_outputs, model.crop_size_)
        net.load_state_dict(states[f"member{k}"])
        model.nets_.append(net.eval())
    model.n_parameters_ = info["network"]["parameters_per_member"]
    return model, info


def predict_deep(model_dir: str | Path, release: str | Path, masks: str | Path, out_csv: str | Path, *,
                 clinical: str | Path | pd.DataFrame | None, cache: str | Path | None = None,
                 json_dir: str | Path | None = None, features_out: str | Path | None = None,
                 empty_mask: str | None = None, resample_nearest: bool = False, workers: int = 1,
                 threads: int = 1, device: str = "cpu", quiet: bool = False) -> pd.DataFrame:
    """Predict every patient of the clinical table that has a crop; write the challenge formats.

    Parameters
    ----------
    model_dir : path
        A folder written by :func:`save_deep_model`.
    release, masks : path
        Images and masks of the patients to predict.
    out_csv : path
        ``PatientID,Prediction`` (rfs: risk; hpv: 0/1 and ``Probability``).
    clinical : path or DataFrame
        Clinical inputs (no outcome needed); a clinical variable it lacks is missing for everyone.
    cache : path, optional
        Crop cache.
    json_dir : path, optional
        One ``<PatientID>.json`` per patient holding the container output.
    features_out : path, optional
        Also write the penultimate features (``deep_*`` columns, ``PatientID``) as a features table
        (CSV or Parquet, with ``params_hash`` = the weights' hash) for the tabular models.
    empty_mask : {"skip", "centre"}, optional
        Override the model's policy for a mask without lesion voxels.
    resample_nearest : bool
        Resample masks that are not on their CT grid.
    workers, threads : int
        Processes cropping; torch threads.
    device : str
        Where the networks run (``cpu``, ``cuda``, ``auto``).

    Returns
    -------
    DataFrame
        The predictions; ``attrs["not_scored"]`` maps each patient that could not be scored to why.
    """
    from hecktor_nnunet.prognosis.artifacts import ModelMismatchError, with_absent_clinical, write_predictions
    from hecktor_nnunet.prognosis.radiomics import write_features

    model, info = load_deep_model(model_dir)
    if clinical is None:
        raise ModelMismatchError("the deep model uses clinical variables: give the clinical table (--clinical)")
    table = clinical if isinstance(clinical, pd.DataFrame) else read_clinical(clinical)
    X = model_inputs(None, table, info["task"], use_radiomics=False,
                     exclude_clinical=tuple(info.get("exclude_clinical", ()))).X
    crop = CropSettings(**{**info["crop"], "resample_nearest": resample_nearest,
                           **({"empty_mask": empty_mask} if empty_mask else {})})
    store = build_crops(release, masks, crop, patients=list(X.index), cache_dir=cache, workers=workers, quiet=quiet)
    not_scored = {pid: why for pid, why in store.without_crop().items()}
    X = X[[i in store for i in X.index]]
    if X.empty:
        raise ModelMismatchError(f"no patient of the clinical table has a usable crop from {release} and {masks}")
    if info.get("measures", True):
        X = X.join(store.measures(), how="left")
    X = with_absent_clinical(X, model.feature_names_in_)[model.feature_names_in_]
    model.set_params(crops=store, n_jobs=threads, device=device)
    score = model.decision_score(X)
    hpv = info["task"] == "hpv"
    out = write_predictions(info["task"], X.index, score >= model.threshold_ if hpv else score,
                            score if hpv else None, out_csv, json_dir)
    if features_out is not None:
        feats = model.embed(X).rename_axis("PatientID").reset_index()
        write_features(feats, features_out, {"params_hash": info["weights_sha256"], "source": "deep",
                                             "model": str(model_dir), "task": info["task"]})
    out.attrs["not_scored"] = not_scored
    log.info("predicted %d patient(s) -> %s", len(out), out_csv)
    return out
