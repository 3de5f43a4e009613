"""The ICARE-style models against hand-computed cases and the published description, and the ensembles."""

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from hecktor_nnunet.metrics.classification import best_threshold
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.ensemble import EnsembleClassifier, EnsembleSurvival, training_rank
from hecktor_nnunet.prognosis.estimators import LogisticHPVClassifier, XGBSurvival
from hecktor_nnunet.prognosis.icare import IcareClassifier, IcareSurvival, pair_scores, survival_pairs

# six patients: relapse times 1, 2, 3, 5 and censoring at 4 and 6
TIME = np.array([1.0, 2, 3, 4, 5, 6])
EVENT = np.array([1, 1, 1, 0, 1, 0], bool)
Y = Surv.from_arrays(EVENT, TIME)
X = pd.DataFrame({
    "a": [6.0, 5, 4, 3, 2, 1],            # higher = earlier relapse: C-index 1, sign +1
    "b": [1.0, 2, 3, 4, 5, 7],            # the reverse: C-index 0, sign -1
    "c": [3.0, np.nan, 1, 2, np.nan, 0],  # two missing; 4 of the 5 comparable pairs concordant: C 0.8, sign +1
})
ONE_MEMBER = dict(n_estimators=1, bootstrap=False, max_features=1.0, rho=None, cmin=0.5, random_state=0)


def test_univariate_scores_are_harrell_c_indices():
    scores = pair_scores(X.to_numpy(), survival_pairs(EVENT, TIME))
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.8])
    for j, col in enumerate(X):
        ok = X[col].notna().to_numpy()
        assert scores[j] == pytest.approx(concordance_index(TIME[ok], EVENT[ok], X[col][ok]))


def test_one_member_equals_the_hand_computed_signed_mean():
    model = IcareSurvival(**ONE_MEMBER).fit(X, Y)
    z = {c: (X[c] - X[c].mean()) / X[c].std(ddof=0) for c in X}            # standardised, NaN skipped
    raw = pd.concat([z["a"], -z["b"], z["c"]], axis=1).mean(axis=1)          # signed, mean of the available
    expected = (raw - raw.mean()) / raw.std(ddof=0)                          # the member's output scaling
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
    assert model.signs().to_dict() == {"a": 1.0, "b": -1.0, "c": 1.0}
    # a new patient with only column c known is scored by c alone
    new = pd.DataFrame({"a": [np.nan], "b": [np.nan], "c": [3.0]})
    assert model.predict(new)[0] == pytest.approx((float(z["c"][0]) - raw.mean()) / raw.std(ddof=0))


def test_weak_and_correlated_columns_are_dropped():
    # cmin: a column whose univariate C-index is within cmin of 0.5 gets no sign
    assert IcareSurvival(**{**ONE_MEMBER, "cmin": 0.85}).fit(X, Y).signs().to_dict() == {"a": 1.0, "b": -1.0,
                                                                                          "c": 0.0}
    # rho: of two columns correlated above rho, the first one visited is kept (visiting order is random)
    wide = X.assign(a2=2 * X["a"] + 0.01 * np.arange(6))
    signs = IcareSurvival(**{**ONE_MEMBER, "rho": 0.9}).fit(wide, Y).signs()
    assert (signs["a"] == 0) != (signs["a2"] == 0)


def test_bagged_models_find_the_signal_and_the_classifier_is_calibrated():
    rng = np.random.default_rng(0)
    n = 300
    Z = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    risk = Z["f0"] - Z["f1"]
    y = Surv.from_arrays(rng.uniform(size=n) < 0.7, rng.exponential(np.exp(-risk)))
    model = IcareSurvival(random_state=1).fit(Z, y)
    assert model.signs()["f0"] > 0.5 and model.signs()["f1"] < -0.5
    assert concordance_index(y["time"], y["event"], model.predict(Z)) > 0.65
    label = (risk + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    clf = IcareClassifier(random_state=1).fit(Z, label)
    p = clf.predict_proba(Z)[:, 1]
    assert abs(p.mean() - label.mean()) < 0.05                 # Platt-scaled: probabilities, not scores
    assert clf.threshold_ == best_threshold(label, clf.oof_proba_)


def test_training_rank_by_hand():
    np.testing.assert_allclose(training_rank([1, 2, 3, 4], [0, 2, 5, 2.5]), [0, 0.375, 1, 0.5])


def test_ensembles_average_rank_normalised_risks_and_probabilities():
    rng = np.random.default_rng(2)
    n = 200
    Z = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = Surv.from_arrays(rng.uniform(size=n) < 0.6, rng.exponential(np.exp(-Z["a"])))
    members = [("xgb", XGBSurvival(n_estimators=30)), ("icare", IcareSurvival(n_estimators=3))]
    ens = EnsembleSurvival(members).fit(Z, y)
    fitted = [est for _, est in ens.estimators_]
    expected = np.mean([training_rank(est.predict(Z), est.predict(Z.iloc[:7])) for est in fitted], axis=0)
    np.testing.assert_allclose(ens.predict(Z.iloc[:7]), expected)
    assert all(0 <= v <= 1 for v in ens.predict(Z)) and members[0][1].__dict__.get("model_") is None  # clones
    label = (Z["b"] + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    clf = EnsembleClassifier([("logistic", LogisticHPVClassifier()), ("icare", IcareClassifier(n_estimators=3))])
    clf.fit(Z, label)
    mean_oof = np.mean([est.oof_proba_ for _, est in clf.estimators_], axis=0)
    assert clf.threshold_ == best_threshold(label, mean_oof)
    np.testing.assert_allclose(clf.predict_proba(Z)[:, 1],
                               np.mean([est.predict_proba(Z)[:, 1] for _, est in clf.estimators_], axis=0))
    with pytest.raises(ValueError, match="out-of-fold"):
        EnsembleClassifier([("logistic", LogisticHPVClassifier(threshold_folds=0))]).fit(Z, label)
