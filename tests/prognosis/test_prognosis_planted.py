"""``auto`` on the planted-signal cohort built to be hard (:mod:`hecktor_nnunet.demo.cohort`, 700 patients).

The oracle is the planted risk (C-index) or the planted probability through the models' own
threshold rule (balanced accuracy), on the same outer folds. ``benchmarks/prognosis_models.py``
measures the same on 5 seeds (docs/explanation/prognosis_design.md): ``auto`` was 0.013-0.033 below
the oracle's C-index (mean 0.021) and 0.040 below to 0.002 above its balanced accuracy (mean
0.026), while a model told the true inputs, which no real model is, was 0.009 and 0.014 below on
average. The marks here are the benchmark's worst seed with a little room; this test runs seed 0.
"""

import numpy as np
import pytest

from hecktor_nnunet.demo.cohort import planted_cohort
from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.metrics.classification import balanced_accuracy, best_threshold
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.compare import compare_models
from hecktor_nnunet.prognosis.cv import cross_validate, splits
from hecktor_nnunet.prognosis.features import dataset_from_tables
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import stratify_labels

#: how far below the oracle ``auto`` may be (benchmark worst seeds: 0.033 and 0.040)
MARKS = {"rfs": 0.035, "hpv": 0.045}
KEY = {"rfs": "c_index", "hpv": "balanced_accuracy"}


def _oracle(task, y, centres, oracle) -> float:
    scores = []
    for tr, te in splits(centres, stratify_labels(task, y), "centre-stratified", 5, 0):
        if task == "rfs":
            scores.append(concordance_index(y["time"][te], y["event"][te], oracle["true_risk"].to_numpy()[te]))
        else:
            p = oracle["hpv_prob"].to_numpy()
            scores.append(balanced_accuracy(y[te], (p[te] >= best_threshold(y[tr], p[tr])).astype(int)))
    return float(np.mean(scores))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["rfs", "hpv"])
def test_auto_near_the_oracle_not_below_the_old_default_and_at_chance_without_signal(task):
    feat, clin, oracle = planted_cohort(700, seed=0)
    d = dataset_from_tables(feat, normalise_table(clin)[0], task)
    report, _ = compare_models(d.X, d.y, d.centres, task=task, models=("xgb",), n_boot=200, workers=2, quiet=True)
    score = {r["model"]: r["score"] for r in report["rows"]}
    best = _oracle(task, d.y, d.centres, oracle.set_index("PatientID").loc[d.X.index])
    assert score["auto"] >= best - MARKS[task], (score, best)
    assert score["auto"] >= score["xgb"] - 0.01, score            # xgb alone was the default before auto
    shuffled = d.y[np.random.default_rng(0).permutation(len(d.y))]
    null = cross_validate(d.X, shuffled, d.centres, task=task, repeats=1, n_bootstrap=20, workers=2, quiet=True,
                          make_model=lambda rs: PrognosisModel(task=task, random_state=rs))
    assert abs(null.report[KEY[task]] - 0.5) <= 0.05, null.report[KEY[task]]
