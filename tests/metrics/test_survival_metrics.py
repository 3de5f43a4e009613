"""Harrell's C against scikit-survival and lifelines (sign convention included); Uno's C, AUC(t)."""

import numpy as np
import pytest
from lifelines.utils import concordance_index as lifelines_ci
from sksurv.metrics import concordance_index_censored

from hecktor_nnunet.metrics.survival import concordance_index, time_dependent_auc, uno_c


def _data(seed, n=120, ties=False):
    rng = np.random.default_rng(seed)
    t = rng.exponential(700, n).round(0 if ties else 6) + 1
    e = rng.random(n) < 0.5
    r = -np.log(t) + rng.normal(0, 1, n)
    if ties:
        r = r.round(0)
    return t, e, r


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_cindex_matches_sksurv_and_lifelines(seed, ties):
    t, e, r = _data(seed, ties=ties)
    ours = concordance_index(t, e, r)
    ref_sksurv = concordance_index_censored(e, t, r)[0]
    # The organisers' call: lifelines reads its 2nd argument as predicted time, so risk is negated.
    ref_lifelines = lifelines_ci(t, -r, e)
    assert ours == pytest.approx(ref_sksurv, abs=1e-12)
    assert ours == pytest.approx(ref_lifelines, abs=1e-12)
    assert ours > 0.6  # risk correlates with early events: the sign is right


def test_cindex_hand_computed():
    # times 1(event) 2(event) 3(censored); risks 3, 1, 2
    # comparable pairs: (0,1) concordant, (0,2) concordant, (1,2) discordant -> 2/3
    assert concordance_index([1, 2, 3], [1, 1, 0], [3, 1, 2]) == pytest.approx(2 / 3)
    # risk tie counts one half: (0,1) tie, (0,2) and (1,2) discordant -> (0.5 + 0 + 0) / 3
    assert concordance_index([1, 2, 3], [1, 1, 0], [1, 1, 2]) == pytest.approx(0.5 / 3)
    # reversed risk gives 1 - C without ties
    t, e, r = _data(3)
    assert concordance_index(t, e, -r) == pytest.approx(1 - concordance_index(t, e, r))


def test_cindex_is_scikit_survivals_near_ties_included():
    # risks that differ by float rounding only (1e-12) are ties, as in scikit-survival (tied_tol 1e-8)
    t, e = [1, 2, 3, 4], [1, 1, 1, 0]
    r = [2.0, 2.0 + 1e-12, 1.0, 0.0]
    assert concordance_index(t, e, r) == pytest.approx(concordance_index_censored(np.array(e, bool), t, r)[0])
    # pairs (0,1) tie -> 0.5; (0,2), (0,3), (1,2), (1,3), (2,3) concordant -> 5.5 / 6
    assert concordance_index(t, e, r) == pytest.approx(5.5 / 6)


@pytest.mark.parametrize("args,msg", [
    (([1, 2], [0, 0], [1, 2]), "All samples are censored"),
    (([1, 2], [1, 0], [1, np.nan]), "risk contains NaN"),
    (([1, 2, 3], [1, 0], [1, 2, 3]), "same length"),
    (([1, -2], [1, 0], [1, 2]), "negative"),
    (([1, 2], [1, 2], [1, 2]), "0/1"),
    (([5, 5], [1, 1], [1, 2]), "No comparable pairs"),
])
def test_cindex_input_checks(args, msg):
    with pytest.raises(ValueError, match=msg):
        concordance_index(*args)


def test_uno_and_td_auc():
    t, e, r = _data(4, n=200)
    u = uno_c(t, e, r)
    assert 0.6 < u < 1.0
    auc = time_dependent_auc(t, e, r, [730, 1095, 1e9])
    assert set(auc) == {730.0, 1095.0, 1e9}
    assert 0.6 < auc[730.0] <= 1.0
    assert np.isnan(auc[1e9])  # beyond follow-up: not computable, NaN


@pytest.mark.parametrize("n", [2, 7, 60, 300])
def test_pairwise_counts_equal_scikit_survival_with_ties(n):
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(n)
    for trial in range(20):
        t = rng.integers(1, 15, n).astype(float)                  # many tied times
        e = rng.uniform(size=n) < 0.5
        e[0] = True
        r = np.round(rng.normal(size=n), 1) if trial % 2 else rng.normal(size=n)   # tied risks every other trial
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                expected = concordance_index_censored(e, t, r)[0]
        except Exception:  # noqa: BLE001 - scikit-survival raises when no pair is comparable
            expected = float("nan")
        if np.isnan(expected):  # no comparable pair (scikit-survival raises or returns 0/0): ours refuses
            with pytest.raises(ValueError, match="comparable"):
                concordance_index(t, e, r)
            continue
        assert concordance_index(t, e, r) == pytest.approx(expected, abs=1e-12)
