import pandas as pd
import pytest

from hecktor_nnunet.dataset_conversion.splits import make_splits


def _table(n=40):
    centres = ["CHUM", "CHUP", "MDA", "USZ"]
    return pd.DataFrame({"PatientID": [f"P-{i:03d}" for i in range(n)],
                         "Centre": [centres[i % 4] for i in range(n)],
                         "Relapse": [i % 3 == 0 for i in range(n)]})


def test_centre_stratified_partitions_and_balances():
    t = _table()
    folds = make_splits(t, "centre-stratified", n_folds=5, seed=0)
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == set(t["PatientID"]) and sum(map(len, vals)) == len(t)
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
        centres = t.set_index("PatientID").loc[f["val"], "Centre"].value_counts()
        assert centres.max() - centres.min() <= 1
    assert folds == make_splits(t, "centre-stratified", n_folds=5, seed=0)


def test_leave_one_centre_out():
    t = _table()
    folds = make_splits(t, "leave-one-centre-out")
    assert len(folds) == 4
    for f in folds:
        assert len(set(t.set_index("PatientID").loc[f["val"], "Centre"])) == 1


def test_errors():
    with pytest.raises(ValueError):
        make_splits(_table(3), "centre-stratified", n_folds=5)
    with pytest.raises(ValueError):
        make_splits(_table(), "random")
