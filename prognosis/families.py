"""The model families by name: one registry for the command line, the model selection and the comparison.

========  ==========================================================  ===========================
task      family                                                      estimator
========  ==========================================================  ===========================
rfs       ``xgb``: gradient-boosted trees, Cox objective              :class:`XGBSurvival`
rfs       ``coxnet``: elastic-net penalised Cox                       scikit-survival pipeline
rfs       ``gbsa``: gradient-boosted Cox (regression trees)           scikit-survival pipeline
rfs       ``rsf``: random survival forest                             scikit-survival pipeline
rfs       ``icare``: bagged signed-feature mean (HECKTOR 2022 winner)  :class:`IcareSurvival`
hpv       ``xgb``: gradient-boosted trees, logistic objective         :class:`XGBHPVClassifier`
hpv       ``logistic``: L2-penalised logistic regression              :class:`LogisticHPVClassifier`
hpv       ``icare``: signed-feature mean, Platt-scaled                :class:`IcareClassifier`
both      ``ensemble``: every family of the task, averaged            :mod:`.ensemble`
========  ==========================================================  ===========================

``auto`` (the default of ``hecktor-prognosis cv`` and ``train``) is not a family: it chooses a family
and the number of screened columns by inner cross-validation (:mod:`.selection`). A new family is
one estimator class and one entry in :data:`FAMILIES`.
"""

from __future__ import annotations

from typing import Callable

from sklearn.base import BaseEstimator

from hecktor_nnunet.prognosis.ensemble import EnsembleClassifier, EnsembleSurvival
from hecktor_nnunet.prognosis.estimators import (LogisticHPVClassifier, XGBHPVClassifier, XGBSurvival,
                                                 survival_pipeline)
from hecktor_nnunet.prognosis.icare import IcareClassifier, IcareSurvival

AUTO = "auto"
ENSEMBLE = "ensemble"


def _sksurv(name: str) -> Callable[..., BaseEstimator]:
    return lambda random_state, n_jobs, **params: survival_pipeline(name, random_state, n_jobs, **params)


#: task -> family -> factory(random_state, n_jobs, **settings)
FAMILIES: dict[str, dict[str, Callable[..., BaseEstimator]]] = {
    "rfs": {
        "xgb": lambda random_state, n_jobs, **p: XGBSurvival(random_state=random_state, n_jobs=n_jobs, **p),
        "coxnet": _sksurv("coxnet"),
        "gbsa": _sksurv("gbsa"),
        "rsf": _sksurv("rsf"),
        "icare": lambda random_state, n_jobs, **p: IcareSurvival(random_state=random_state, **p),
    },
    "hpv": {
        "xgb": lambda random_state, n_jobs, **p: XGBHPVClassifier(random_state=random_state, n_jobs=n_jobs, **p),
        "logistic": lambda random_state, n_jobs, **p: LogisticHPVClassifier(random_state=random_state, **p),
        "icare": lambda random_state, n_jobs, **p: IcareClassifier(random_state=random_state, **p),
    },
}
#: Small grids an explicitly chosen family searches by inner cross-validation (parameter -> values;
#: the first values are the family's defaults, which ``auto`` and ``ensemble`` use).
GRIDS: dict[tuple[str, str], dict[str, list]] = {
    ("rfs", "xgb"): {"max_depth": [2, 1], "n_estimators": [300, 150]},
    ("rfs", "coxnet"): {"alpha": [0.05, 0.2]},
    ("rfs", "gbsa"): {"learning_rate": [0.1, 0.05]},
    ("rfs", "rsf"): {"min_samples_leaf": [10, 20]},
    ("rfs", "icare"): {"cmin": [0.55, 0.6]},
    ("hpv", "xgb"): {"max_depth": [2, 1], "n_estimators": [200, 100]},
    ("hpv", "logistic"): {"C": [0.1, 1.0]},
    ("hpv", "icare"): {"cmin": [0.6, 0.55]},
}
#: The clinical-only model of each task in the comparison: a linear family (a handful of columns).
CLINICAL_FAMILY = {"rfs": "coxnet", "hpv": "logistic"}


def families(task: str) -> tuple[str, ...]:
    """The single families of ``task`` (no ensemble, no ``auto``)."""
    check_task(task)
    return tuple(FAMILIES[task])


def model_names(task: str) -> tuple[str, ...]:
    """Every ``--model`` value of ``task``: ``auto``, the families and ``ensemble``."""
    return (AUTO, *families(task), ENSEMBLE)


def check_task(task: str) -> None:
    if task not in FAMILIES:
        raise ValueError(f"unknown task {task!r}; choose one of {tuple(FAMILIES)}")


def default_params(task: str, family: str) -> dict:
    """The first grid values of a family (its settings in ``auto`` and ``ensemble``)."""
    return {k: v[0] for k, v in GRIDS.get((task, family), {}).items()}


def make_estimator(task: str, model: str, random_state: int = 0, n_jobs: int = 1, **params) -> BaseEstimator:
    """A fresh estimator of one family or of the ensemble.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    model : str
        A family of :data:`FAMILIES` or ``ensemble`` (every family at its defaults).
    random_state, n_jobs : int
    **params
        Settings of the family (none for the ensemble).
    """
    check_task(task)
    if model == ENSEMBLE:
        members = [(f, make_estimator(task, f, random_state, n_jobs, **default_params(task, f))) for f in families(task)]
        return EnsembleSurvival(members) if task == "rfs" else EnsembleClassifier(members)
    if model not in FAMILIES[task]:
        raise ValueError(f"model {model!r} is not available for {task}; choose one of {model_names(task)}")
    return FAMILIES[task][model](random_state, n_jobs, **{**default_params(task, model), **params})
