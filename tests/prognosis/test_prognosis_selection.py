"""``auto``: nested selection that never sees an outer test fold, its report, and the model comparison."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.prognosis.compare import compare_models, comparison_markdown
from hecktor_nnunet.prognosis.cv import cross_validate
from hecktor_nnunet.prognosis.estimators import XGBSurvival
from hecktor_nnunet.prognosis.families import FAMILIES
from hecktor_nnunet.prognosis.features import dataset_from_tables
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import select_model

SEEN: list[tuple[str, frozenset, frozenset | None]] = []  # (call, patients given, the outer training patients)
CONTEXT: dict = {"train": None}


class Spy(BaseEstimator):
    """A survival family that records which patients every fit and predict is given."""

    def __init__(self, *, random_state: int = 0):
        self.random_state = random_state

    def fit(self, X, y):
        SEEN.append(("fit", frozenset(X.index), CONTEXT["train"]))
        self.model_ = XGBSurvival(n_estimators=20, random_state=self.random_state).fit(X, y)
        return self

    def predict(self, X):
        SEEN.append(("predict", frozenset(X.index), CONTEXT["train"]))
        return self.model_.predict(X)


class Tagged(PrognosisModel):
    """The real model; while it fits, the patients it was given are the context of the spy's records."""

    def fit(self, X, y):
        CONTEXT["train"] = frozenset(X.index)
        try:
            return super().fit(X, y)
        finally:
            CONTEXT["train"] = None


def _leaks() -> list[str]:
    return [f"{call} saw {sorted(ids - outer)[:3]}" for call, ids, outer in SEEN if outer is not None and ids - outer]


@pytest.fixture
def spy_family(monkeypatch):
    monkeypatch.setitem(FAMILIES["rfs"], "spy", lambda random_state, n_jobs, **p: Spy(random_state=random_state))
    SEEN.clear()
    yield
    SEEN.clear()


def _rfs(sim_cohort, n=200):
    feat, clin, _ = sim_cohort
    d = dataset_from_tables(feat.iloc[:n], normalise_table(clin.iloc[:n])[0], "rfs")
    return d.X, d.y, d.centres


def test_auto_never_sees_an_outer_test_fold_and_reports_its_choices(sim_cohort, spy_family):
    X, y, centres = _rfs(sim_cohort)
    res = cross_validate(X, y, centres, task="rfs", repeats=1, n_splits=3, n_bootstrap=20, quiet=True,
                         make_model=lambda rs: Tagged(task="rfs", candidates=("spy", "coxnet", "ensemble"),
                                                      random_state=rs))
    inner_fits = [s for s in SEEN if s[0] == "fit" and s[2] is not None and s[1] != s[2]]
    assert len(inner_fits) >= 3 * 3 * 3           # 3 outer folds x 3 inner folds x 3 k values
    assert not _leaks()
    for fold in res.report["folds"]:
        chosen = fold["chosen"]
        assert chosen["model"] in ("spy", "coxnet", "ensemble") and chosen["k_features"] in (5, 10, 20)
        table = {(r["model"], r["k_features"]): r for r in fold["inner_scores"]}
        assert len(table) == 9 and all(len(r["fold_scores"]) == 3 for r in table.values())
        best = max(r["score"] for r in table.values())
        assert table[(chosen["model"], chosen["k_features"])]["score"] == best == chosen["inner_score"]
    assert sum(res.report["chosen"].values()) == pytest.approx(1.0)


def test_the_leak_check_catches_a_planted_leak(sim_cohort, spy_family):
    X, y, centres = _rfs(sim_cohort)

    class ChoosesOnEveryone(Tagged):  # the bug the check is for: the choice made on all patients
        def fit(self, Xf, yf):
            CONTEXT["train"] = frozenset(Xf.index)
            select_model(X, y, "rfs", candidates=("spy",), k_grid=(5,))
            return super().fit(Xf, yf)

    cross_validate(X, y, centres, task="rfs", repeats=1, n_splits=3, n_bootstrap=20, quiet=True,
                   make_model=lambda rs: ChoosesOnEveryone(task="rfs", candidates=("spy",), k_features=5,
                                                           random_state=rs))
    assert _leaks()


def test_too_few_patients_is_an_error_with_the_numbers(sim_cohort):
    X, y, _ = _rfs(sim_cohort)
    with pytest.raises(ValueError, match=r"16 patients \(at least 20 needed\)"):
        PrognosisModel(task="rfs").fit(X.iloc[:16], y[:16])
    events = np.flatnonzero(y["event"])[:4]
    censored = np.flatnonzero(~y["event"])[:30]
    keep = np.r_[events, censored]
    with pytest.raises(ValueError, match=r"4 events \(at least 10 needed\)"):
        PrognosisModel(task="rfs").fit(X.iloc[keep], y[keep])


def test_compare_scores_every_model_on_the_same_folds_and_names_one_that_cannot_fit(sim_cohort):
    feat, clin, _ = sim_cohort
    # a clinical table holding only the outcomes: the clinical-only model has nothing to learn from
    bare = normalise_table(clin.iloc[:240][["PatientID", "Relapse", "RFS"]])[0]
    d = dataset_from_tables(feat.iloc[:240], bare, "rfs")
    report, oof = compare_models(d.X, d.y, d.centres, task="rfs", models=("coxnet", "icare", "clinical"),
                                 n_splits=3, n_boot=200, quiet=True)
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows) == ["auto", "coxnet", "icare", "clinical"]
    assert rows["clinical"]["score"] is None and "clinical" in rows["clinical"]["error"]
    for name in ("auto", "coxnet", "icare"):
        r = rows[name]
        assert r["error"] is None and r["n_patients"] == 240 and len(r["fold_scores"]) == 3
        assert r["score"] == pytest.approx(np.mean(r["fold_scores"])) and r["ci"][0] < r["score"] < r["ci"][1]
    assert rows["auto"]["diff_vs_default"] is None
    r = rows["coxnet"]
    assert r["diff_vs_default"] == pytest.approx(r["score"] - rows["auto"]["score"])
    assert r["diff_ci"][0] <= r["diff_vs_default"] <= r["diff_ci"][1] and 0 < r["p_value"] <= 1
    # every model saw the same outer folds
    folds = oof.sort_values(["model", "PatientID"]).groupby("model")["fold"].apply(tuple)
    assert len(set(folds)) == 1 and set(oof["model"]) == {"auto", "coxnet", "icare"}
    text = comparison_markdown(report)
    assert "auto (default)" in text and "could not be fitted" in text
