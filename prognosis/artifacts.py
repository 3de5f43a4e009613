"""The model folder: save, load, explain and predict.

A model folder holds::

    prognosis.json            task, requested model, what was chosen (family, k) and the inner scores,
                              settings, input columns, selected features, HPV threshold, params hash,
                              library versions
    model.joblib              the fitted model (column screen + estimator; bound to the library versions)
    model.json                the xgboost booster, when the chosen family is xgb (portable export)
    cv_report.json            cross-validation report (when the model was cross-validated)
    feature_importance.csv    gain and mean |SHAP| per selected feature (xgb models)
    feature_importance.png
    km_risk_groups.png        rfs: Kaplan-Meier of low/high risk (out-of-fold when cross-validated)
    roc.png                   hpv: ROC curve (out-of-fold when cross-validated)

:func:`predict` refuses feature tables whose radiomics columns or params hash differ from the model's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.evaluation.plots import save_figure
from hecktor_nnunet.io.atomic_io import atomic_path, write_json, write_table
from hecktor_nnunet.prognosis.estimators import XGBHPVClassifier, XGBSurvival
from hecktor_nnunet.prognosis.features import model_inputs, radiomics_columns
from hecktor_nnunet.prognosis.models import PrognosisModel

log = logging.getLogger(__name__)

MODEL_INFO = "prognosis.json"
FORMAT_VERSION = 2


class ModelMismatchError(ValueError):
    """A feature table does not match the model (columns or params hash)."""


def versions() -> dict[str, str]:
    """Versions of the libraries a model depends on."""
    import sklearn
    import sksurv
    import xgboost

    import hecktor_nnunet

    return {"hecktor_nnunet": hecktor_nnunet.__version__, "xgboost": xgboost.__version__,
            "scikit-learn": sklearn.__version__, "scikit-survival": sksurv.__version__,
            "numpy": np.__version__, "pandas": pd.__version__}


def save_model(model: PrognosisModel, folder: str | Path, *, radiomics_columns: list[str], params_hash: str | None,
               cv_report: dict | None = None, exclude_clinical: tuple[str, ...] = ()) -> Path:
    """Write a fitted model's files into ``folder`` (created; each file replaced atomically).

    ``folder`` should be new: :func:`hecktor_nnunet.prognosis.train.train` passes a temporary folder
    that replaces the model folder whole, so no file of an earlier model stays beside these.

    Parameters
    ----------
    model : PrognosisModel
        Fitted.
    radiomics_columns : list of str
        All radiomics columns of the training features table (a table to predict must have exactly these).
    params_hash : str or None
        The features table's extraction hash (None for clinical-only models).
    cv_report : dict, optional
        Written as ``cv_report.json``.
    exclude_clinical : tuple of str
        Clinical columns the model was trained without (left out at prediction time too).
    """
    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    est = model.estimator_
    if isinstance(est, (XGBSurvival, XGBHPVClassifier)):
        with atomic_path(folder / "model.json") as tmp:
            est.booster_.save_model(str(tmp))
    info = {"format": FORMAT_VERSION, "task": model.task, "model": model.model, "chosen": model.chosen_,
            "settings": model.get_params(), "best_params": model.best_params_, "search": model.search_,
            "model_file": "model.joblib", "feature_names_in": model.feature_names_in_,
            "selected_features": model.selected_features_, "radiomics_columns": list(radiomics_columns),
            "exclude_clinical": list(exclude_clinical), "params_hash": params_hash,
            "threshold": getattr(est, "threshold_", None), "versions": versions()}
    write_json(info, folder / MODEL_INFO)
    if cv_report is not None:
        write_json(cv_report, folder / "cv_report.json")
    return folder


def read_model_info(folder: str | Path, *, format_version: int, model: str | None = None,
                    versions_now: dict[str, str] | None = None) -> dict:
    """A model folder's ``prognosis.json``, checked: it exists, has ``format_version`` (and ``model``).

    A folder written by other library versions is read with a warning naming the differences (a
    pickled or saved model is only guaranteed to load with the versions that wrote it).

    Raises
    ------
    FileNotFoundError
        No ``prognosis.json`` in ``folder``.
    ModelMismatchError
        Another format, or another model than ``model``.
    """
    folder = Path(folder)
    path = folder / MODEL_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a model folder (no {MODEL_INFO})")
    info = json.loads(path.read_text())
    if info.get("format") != format_version or (model is not None and info.get("model") != model):
        raise ModelMismatchError(f"{folder} holds model {info.get('model')!r} in folder format {info.get('format')!r}; "
                                 f"this reads {model or 'a tabular model'} in format {format_version}: "
                                 "train the model again")
    now = versions_now if versions_now is not None else versions()
    changed = {k: (v, now.get(k)) for k, v in info["versions"].items() if now.get(k) != v}
    if changed:
        log.warning("%s was written with other library versions %s (then, now)", folder, changed)
    return info


def load_model(folder: str | Path) -> tuple[PrognosisModel, dict]:
    """Read a model folder back into the fitted :class:`PrognosisModel` and its info dict.

    A folder written by other library versions is loaded with a warning naming the differences
    (a pickled model is only guaranteed to load with the versions that wrote it).
    """
    import joblib

    info = read_model_info(folder, format_version=FORMAT_VERSION)
    return joblib.load(Path(folder) / info["model_file"]), info


def feature_importance(model: PrognosisModel, X: pd.DataFrame) -> pd.DataFrame | None:
    """Gain and mean |SHAP| (xgboost ``pred_contribs``) per selected feature; None for non-xgb models.

    Returns
    -------
    DataFrame or None
        Columns ``feature, gain, mean_abs_shap``, sorted by ``mean_abs_shap`` (descending).
    """
    est = model.estimator_
    if not isinstance(est, (XGBSurvival, XGBHPVClassifier)):
        return None
    gain = est.booster_.get_score(importance_type="gain")
    contribs = est.booster_.predict(est.dmatrix(model.selector_.transform(X)), pred_contribs=True)
    shap = np.abs(contribs[:, :-1]).mean(axis=0)  # last column is the bias
    df = pd.DataFrame({"feature": est.feature_names_in_,
                       "gain": [float(gain.get(f, 0.0)) for f in est.feature_names_in_],
                       "mean_abs_shap": shap})
    return df.sort_values("mean_abs_shap", ascending=False).reset_index(drop=True)


def importance_plot(importance: pd.DataFrame, path: str | Path, top: int = 20, title: str = "") -> None:
    """Horizontal bar chart of the ``top`` features by mean |SHAP|."""
    import matplotlib.pyplot as plt

    d = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(d) + 1.2))
    ax.barh(d["feature"], d["mean_abs_shap"], color="tab:blue")
    ax.set_xlabel("mean |SHAP| (model output units)")
    ax.set_title(title or "Feature importance")
    save_figure(fig, path)


def check_table(info: dict, features: pd.DataFrame | None, meta: dict) -> None:
    """Raise :class:`ModelMismatchError` when a features table was not made like the training one."""
    expected = info["radiomics_columns"]
    if not expected:
        return
    if features is None:
        raise ModelMismatchError("this model uses radiomics features: give the features table it was trained with")
    got = radiomics_columns(features)
    missing = [c for c in expected if c not in set(got)]
    extra = [c for c in got if c not in set(expected)]
    if missing or extra:
        raise ModelMismatchError(
            f"feature table columns do not match the model: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(extra)} unexpected (e.g. {extra[:3]}); extract features with the model's params files "
            "and regions")
    if info.get("params_hash") and meta.get("params_hash") != info["params_hash"]:
        raise ModelMismatchError(
            f"feature table params hash {meta.get('params_hash')!r} differs from the model's "
            f"{info['params_hash']!r}: the features were extracted with other settings")


def with_absent_clinical(X: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """``X`` with every clinical column of ``feature_names`` it lacks added as missing (one warning)."""
    absent = [c for c in feature_names if c.startswith("CLIN_") and c not in X.columns]
    if absent:
        log.warning("clinical table lacks %s: treated as missing for every patient", absent)
        X = X.assign(**{c: np.nan for c in absent})
    return X


def write_predictions(task: str, ids, prediction: np.ndarray, probability: np.ndarray | None,
                      out_csv: str | Path, json_dir: str | Path | None = None) -> pd.DataFrame:
    """Write ``PatientID,Prediction`` (rfs: risk; hpv: 0/1 and ``Probability``) and, with ``json_dir``,
    one ``<PatientID>.json`` per patient holding the container output; return the table."""
    if task == "rfs":
        out = pd.DataFrame({"PatientID": ids, "Prediction": prediction})
    else:
        out = pd.DataFrame({"PatientID": ids, "Prediction": np.asarray(prediction).astype(int),
                            "Probability": probability})
    write_table(out, out_csv)
    if json_dir is not None:
        for pid, value in zip(out["PatientID"], out["Prediction"]):
            write_json(float(value) if task == "rfs" else int(value), Path(json_dir) / f"{pid}.json")
    return out


def predict(model_dir: str | Path, features: pd.DataFrame | None, meta: dict, out_csv: str | Path,
            clinical: pd.DataFrame | None = None, json_dir: str | Path | None = None,
            sources: tuple[str, str] = ("features table", "clinical table")) -> pd.DataFrame:
    """Predict every patient of the inputs and write the challenge formats.

    Parameters
    ----------
    model_dir : path
        A folder written by :func:`save_model`.
    features : DataFrame or None
        Features table (from :func:`hecktor_nnunet.prognosis.radiomics.read_features`), None for a
        clinical-only model.
    meta : dict
        The table's metadata (params hash).
    out_csv : path
        ``PatientID,Prediction`` (rfs: risk, higher = earlier relapse; hpv: 0/1 and a
        ``Probability`` column of P(HPV+)): one row per patient present in every table the model
        needs.
    clinical : DataFrame, optional
        Clinical table in the schema, when the model uses clinical variables.
    json_dir : path, optional
        One ``<PatientID>.json`` per patient holding the container output (rfs: a float; hpv: 0 or 1).
    sources : (str, str)
        How the two tables are named in messages.

    Returns
    -------
    DataFrame
        The predictions written; ``attrs["not_scored"]`` maps each patient that could not be scored
        (present in one table only) to the reason.
    """
    model, info = load_model(model_dir)
    check_table(info, features, meta)
    uses_clinical = any(c.startswith("CLIN_") for c in model.feature_names_in_)
    if uses_clinical and clinical is None:
        raise ModelMismatchError("this model uses clinical variables: give the clinical table (--clinical)")
    joined = model_inputs(features, clinical if uses_clinical else None, info["task"],
                          use_radiomics=bool(info["radiomics_columns"]),
                          exclude_clinical=tuple(info.get("exclude_clinical", ())), sources=sources)
    X = joined.X
    # a clinical variable absent from this table (e.g. HPV status in a container's ehr.json) is
    # missing for every patient: NaN, as missing values were in training
    X = with_absent_clinical(X, model.feature_names_in_)
    missing = [c for c in model.feature_names_in_ if c not in X.columns]
    if missing:
        raise ModelMismatchError(f"inputs lack column(s) the model was trained with: {missing[:5]}")
    if X.empty:
        raise ModelMismatchError(f"no patient is in both the {sources[0]} and the {sources[1]}")
    X = X[model.feature_names_in_]
    hpv = info["task"] == "hpv"
    out = write_predictions(info["task"], X.index, model.predict(X),
                            model.predict_proba(X)[:, 1] if hpv else None, out_csv, json_dir)
    out.attrs["not_scored"] = {**{p: f"no row in the {sources[1]}" for p in joined.features_without_clinical},
                               **{p: f"no row in the {sources[0]}" for p in joined.clinical_without_features}}
    log.info("predicted %d patient(s) -> %s", len(out), out_csv)
    return out
