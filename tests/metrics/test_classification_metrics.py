"""Balanced accuracy and friends against scikit-learn; threshold search."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

from hecktor_nnunet.metrics.classification import binary_summary, best_threshold


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_summary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(150) < 0.3).astype(int)
    prob = 0.4 * y + rng.random(150)
    pred = (prob > 0.7).astype(int)
    s = binary_summary(y, pred, prob)
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert s["sensitivity"] == pytest.approx(recall_score(y, pred, pos_label=1))
    assert s["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert s["auc"] == pytest.approx(roc_auc_score(y, prob))
    assert s["n"] == 150
    assert binary_summary(y, pred)["auc"] is None


def test_hand_case_and_checks():
    s = binary_summary([1, 1, 0, 0, 0], [1, 0, 0, 0, 1])
    assert (s["sensitivity"], s["specificity"]) == (0.5, pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="0/1"):
        binary_summary([1, 2], [1, 0])
    with pytest.raises(ValueError, match="NaN"):
        binary_summary([1, 0], [1, np.nan])


def test_best_threshold():
    y = [0, 0, 0, 1, 1, 1]
    prob = [0.1, 0.2, 0.35, 0.3, 0.8, 0.9]
    th = best_threshold(y, prob)
    pred = (np.asarray(prob) >= th).astype(int)
    best = max(balanced_accuracy_score(y, (np.asarray(prob) >= c).astype(int)) for c in prob)
    assert balanced_accuracy_score(y, pred) == pytest.approx(best)
    with pytest.raises(ValueError, match="both classes"):
        best_threshold([1, 1], [0.2, 0.3])
