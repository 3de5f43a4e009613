"""hecktor-split: a held-out test set of a labelled release, with its truth, linked not copied."""

import json

import pandas as pd

from hecktor_nnunet.cli.split import main
from hecktor_nnunet.io.release import read_release


def test_split_holds_out_labelled_patients_with_their_truth(tiny_release, tmp_path, capsys):
    out = tmp_path / "split"
    assert main([str(tiny_release), "-o", str(out), "--holdout", "0.25", "--quiet"]) == 0
    record = json.loads((out / "split.json").read_text())
    release = read_release(tiny_release)
    labelled = {c.patient_id for c in release.cases if c.label is not None}
    assert set(record["test"]) <= labelled and len(record["test"]) == 2      # 8 labelled, a quarter held out
    assert set(record["train"]) | set(record["test"]) == {c.patient_id for c in release.cases}
    assert not set(record["train"]) & set(record["test"])
    train, test = read_release(out / "train"), read_release(out / "test")
    assert sorted(c.patient_id for c in test.cases) == record["test"]
    assert all(c.label is None and c.ct.is_symlink() for c in test.cases)   # images linked, no label
    assert sorted(p.name[:-7] for p in (out / "test_labels").iterdir()) == record["test"]
    unlabelled = {c.patient_id for c in release.cases if c.label is None}
    assert unlabelled <= {c.patient_id for c in train.cases}                # image-only patients train
    assert {c.patient_id for c in train.cases if c.label is not None} == labelled - set(record["test"])
    inputs = pd.read_csv(out / "test_clinical.csv")
    truth = pd.read_csv(out / "test_clinical_with_outcomes.csv")
    assert sorted(inputs["PatientID"]) == sorted(truth["PatientID"]) == record["test"]
    assert not {"Relapse", "RFS", "HPV Status"} & set(inputs.columns) and {"Relapse", "RFS"} <= set(truth.columns)
    assert not set(pd.read_csv(out / "train" / "clinical.csv")["PatientID"]) & set(record["test"])
    # the same draw again; an existing folder is refused unless --overwrite
    assert main([str(tiny_release), "-o", str(out), "--holdout", "0.25"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([str(tiny_release), "-o", str(out), "--holdout", "0.25", "--overwrite", "--quiet"]) == 0
    assert json.loads((out / "split.json").read_text())["test"] == record["test"]
