"""Model families and cross-validation on a simulated cohort with planted outcomes (real xgboost/scikit-survival)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sksurv.util import Surv

from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.metrics.classification import binary_summary, roc_auc
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.cv import cross_validate, splits
from hecktor_nnunet.prognosis.estimators import LogisticHPVClassifier, XGBHPVClassifier, XGBSurvival
from hecktor_nnunet.prognosis.families import model_names
from hecktor_nnunet.prognosis.features import dataset_from_tables
from hecktor_nnunet.prognosis.icare import IcareClassifier, IcareSurvival
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.screen import FeatureSelector

GRID = {"rfs": {"n_estimators": [150, 400]}, "hpv": {"n_estimators": [100, 300]}}


def _data(cohort, task):
    feat, clin, orc = cohort
    d = dataset_from_tables(feat, normalise_table(clin)[0], task)
    return d.X, d.y, d.centres, orc.set_index("PatientID").loc[d.X.index]


def _cv(X, y, centres, task, cv="centre-stratified"):
    return cross_validate(X, y, centres, task=task, cv=cv, repeats=1, n_bootstrap=100, quiet=True,
                          make_model=lambda rs: PrognosisModel(task=task, model="xgb", grid=GRID[task],
                                                               random_state=rs))


def test_rfs_cv_close_to_oracle(sim_cohort):
    X, y, centres, orc = _data(sim_cohort, "rfs")
    oracle_c = concordance_index(y["time"], y["event"], orc["true_risk"])
    rep = _cv(X, y, centres, "rfs").report
    assert oracle_c - 0.05 <= rep["c_index"] <= oracle_c + 0.02, (rep["c_index"], oracle_c)
    assert rep["c_index"] > 0.65
    lo, hi = rep["c_index_ci95"]
    assert lo < rep["c_index"] < hi
    assert set(rep["per_centre"]) == set(centres)
    # the planted signal is found: tumour volume/uptake descriptors are selected in every fold
    assert max(rep["selection_frequency"].get(c, 0) for c in ("PET_GTVp_MTV_ml", "PET_GTVp_TLG")) == 1.0


def test_rfs_shuffled_outcomes_fall_to_chance(sim_cohort):
    X, y, centres, _ = _data(sim_cohort, "rfs")
    y_shuffled = y[np.random.default_rng(0).permutation(len(y))]
    rep = _cv(X, y_shuffled, centres, "rfs").report
    assert abs(rep["c_index"] - 0.5) < 0.06, rep["c_index"]


def test_hpv_cv_above_chance_and_shuffled_at_chance(sim_cohort):
    X, y, centres, orc = _data(sim_cohort, "hpv")
    oracle = binary_summary(y, (orc["hpv_prob"] >= 0.5).astype(int))["balanced_accuracy"]
    rep = _cv(X, y, centres, "hpv").report
    assert 0.62 < rep["balanced_accuracy"] <= oracle + 0.03, (rep["balanced_accuracy"], oracle)
    assert rep["auc"] > 0.68
    rep0 = _cv(X, np.random.default_rng(1).permutation(y), centres, "hpv").report
    assert abs(rep0["balanced_accuracy"] - 0.5) < 0.06, rep0["balanced_accuracy"]


@pytest.mark.parametrize("task,name", [(t, m) for t in ("rfs", "hpv") for m in model_names(t)[1:]])
def test_every_family_learns(sim_cohort, task, name):
    X, y, _, _ = _data(sim_cohort, task)
    model = PrognosisModel(task=task, model=name, inner_folds=0).fit(X.iloc[:300], y[:300])
    score = model.decision_score(X.iloc[300:])
    if task == "rfs":
        assert concordance_index(y["time"][300:], y["event"][300:], score) > 0.65
    else:
        assert roc_auc(y[300:], score) > 0.65 and 0 < model.estimator_.threshold_ < 1
        np.testing.assert_array_equal(model.predict(X.iloc[300:]), (score >= model.estimator_.threshold_).astype(int))
    assert model.chosen_ == {"model": name, "k_features": 20} and len(model.selected_features_) >= 20


def test_loco_and_stratified_splits():
    centres = np.repeat(["A", "B", "C"], [10, 12, 14])
    strata = np.tile([0, 1], 18)
    for tr, te in splits(centres, strata, "leave-one-centre-out", 5, 0):
        assert len(set(centres[te])) == 1 and set(centres[te]).isdisjoint(centres[tr])
    folds = splits(centres, strata, "centre-stratified", 3, 0)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(36))
    assert all(set(centres[te]) == {"A", "B", "C"} for _, te in folds)
    with pytest.raises(ValueError, match="two centres"):
        splits(np.repeat(["A"], 5), strata[:5], "leave-one-centre-out", 5, 0)


def test_estimator_contract():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    y = Surv.from_arrays(rng.uniform(size=120) < 0.6, np.exp(-X["a"] + rng.normal(0, 0.5, 120)) * 100)
    with pytest.raises(TypeError):
        XGBSurvival(100)                                        # settings are keyword-only
    est = XGBSurvival(n_estimators=50)
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert est.fit(X, y) is est and clone(est).get_params() == est.get_params()
    assert concordance_index(y["time"], y["event"], est.predict(X)) > 0.7  # higher = earlier event
    with pytest.raises(ValueError, match="censored"):
        XGBSurvival().fit(X, Surv.from_arrays(np.zeros(120, bool), np.ones(120)))
    for surv in (IcareSurvival(n_estimators=5), XGBSurvival(n_estimators=20)):
        with pytest.raises(NotFittedError):
            surv.predict(X)
        assert surv.fit(X, y) is surv and concordance_index(y["time"], y["event"], surv.predict(X)) > 0.7
    labels = (X["b"] + rng.normal(0, 0.5, 120) > 0.8).astype(int).to_numpy()
    for clf in (XGBHPVClassifier(n_estimators=50), LogisticHPVClassifier(), IcareClassifier(n_estimators=5)):
        with pytest.raises(TypeError):
            type(clf)(3)                                        # settings are keyword-only
        with pytest.raises(NotFittedError):
            clf.predict(X)
        assert clf.fit(X, labels) is clf and clone(clf).get_params() == clf.get_params()
        proba = clf.predict_proba(X)[:, 1]
        assert 0 < clf.threshold_ < 1 and len(clf.oof_proba_) == 120 and roc_auc(labels, proba) > 0.7
        np.testing.assert_array_equal(clf.predict(X), (proba >= clf.threshold_).astype(int))
        with pytest.raises(ValueError, match="both 0 and 1"):
            clone(clf).fit(X, np.zeros(120, int))


def test_feature_selector_filters_and_prunes():
    rng = np.random.default_rng(0)
    n = 200
    signal = rng.normal(size=n)
    X = pd.DataFrame({"signal": signal, "copy": signal * 2 + 1e-3 * rng.normal(size=n),
                      "constant": np.ones(n), "sparse": np.where(rng.uniform(size=n) < 0.7, np.nan, 1.0),
                      "noise": rng.normal(size=n), "CLIN_Age": rng.normal(60, 9, n)})
    y = (signal + rng.normal(0, 0.5, n) > 0).astype(int)
    sel = FeatureSelector(k=2, always_keep=("CLIN_Age",)).fit(X, y)
    assert sel.selected_[0] in ("signal", "copy") and not {"signal", "copy"} <= set(sel.selected_)
    assert "constant" not in sel.selected_ and "sparse" not in sel.selected_
    assert sel.selected_[-1] == "CLIN_Age" and len(sel.selected_) == 3
