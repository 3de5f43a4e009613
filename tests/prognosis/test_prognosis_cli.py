"""hecktor-prognosis train / cv / predict end to end, and the refusal of mismatched feature tables."""

import json

import numpy as np
import pandas as pd
import pytest

from hecktor_nnunet.cli.prognosis import main
from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.artifacts import ModelMismatchError, load_model, predict
from hecktor_nnunet.prognosis.features import model_inputs
from hecktor_nnunet.prognosis.radiomics import read_features, write_features

HASH = "0123456789abcdef"


@pytest.fixture(scope="module")
def tables(sim_cohort, tmp_path_factory):
    feat, clin, _ = sim_cohort
    d = tmp_path_factory.mktemp("prog_cli")
    write_features(feat.iloc[:300], d / "features.parquet", {"params_hash": HASH})
    clin.iloc[:300].to_csv(d / "clinical.csv", index=False)
    return d


@pytest.fixture(scope="module")
def rfs_model(tables):
    out = tables / "models" / "rfs"
    assert main(["train", "--quiet", "rfs", "--features", str(tables / "features.parquet"),
                 "--clinical", str(tables / "clinical.csv"), "-o", str(out), "--no-cv", "--model", "xgb"]) == 0
    return out


def test_train_rfs_writes_model_folder(rfs_model):
    names = {p.name for p in rfs_model.iterdir()}
    assert {"model.joblib", "model.json", "prognosis.json", "feature_importance.csv", "feature_importance.png",
            "km_risk_groups.png"} <= names
    info = json.loads((rfs_model / "prognosis.json").read_text())
    assert info["params_hash"] == HASH and info["task"] == "rfs" and "xgboost" in info["versions"]
    imp = pd.read_csv(rfs_model / "feature_importance.csv")
    assert set(imp["feature"]) == set(info["selected_features"]) and (imp["mean_abs_shap"] >= 0).all()


def test_predict_rfs_csv_and_json(rfs_model, tables, tmp_path):
    out = tmp_path / "preds.csv"
    assert main(["predict", "--quiet", "--model-dir", str(rfs_model), "--features", str(tables / "features.parquet"),
                 "--clinical", str(tables / "clinical.csv"), "-o", str(out), "--json-dir", str(tmp_path / "js")]) == 0
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["PatientID", "Prediction"] and len(preds) == 300
    one = json.loads((tmp_path / "js" / f"{preds.PatientID[0]}.json").read_text())
    assert isinstance(one, float) and one == pytest.approx(preds.Prediction[0], rel=1e-6)
    # the loaded model gives the same risks as the predictions file, and they carry the planted signal
    model, _ = load_model(rfs_model)
    feat, _ = read_features(tables / "features.parquet")
    clin = normalise_table(pd.read_csv(tables / "clinical.csv"))[0]
    X = model_inputs(feat, clin, "rfs").X[model.feature_names_in_]
    np.testing.assert_allclose(model.predict(X), preds.set_index("PatientID").loc[X.index, "Prediction"], rtol=1e-5)
    truth = clin.set_index("PatientID").loc[X.index]
    assert concordance_index(truth["RFS"], truth["Relapse"], model.predict(X)) > 0.7


def test_predict_refuses_mismatched_tables(rfs_model, tables, tmp_path, capsys):
    feat, meta = read_features(tables / "features.parquet")
    clin = normalise_table(pd.read_csv(tables / "clinical.csv"))[0]
    with pytest.raises(ModelMismatchError, match="columns do not match"):
        predict(rfs_model, feat.drop(columns=["PET_GTVp_SUVmax"]), meta, tmp_path / "p.csv", clinical=clin)
    with pytest.raises(ModelMismatchError, match="params hash"):
        predict(rfs_model, feat, {"params_hash": "ffffffffffffffff"}, tmp_path / "p.csv", clinical=clin)
    other = tmp_path / "other.parquet"
    write_features(feat.assign(PET_GTVp_NewFeature=1.0), other, meta)
    rc = main(["predict", "--model-dir", str(rfs_model), "--features", str(other), "--clinical",
               str(tables / "clinical.csv"), "-o", str(tmp_path / "p.csv")])
    assert rc == 2 and "PET_GTVp_NewFeature" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_cv_and_train_hpv(tables, tmp_path):
    cv_dir = tmp_path / "cv"
    assert main(["cv", "--quiet", "rfs", "--features", str(tables / "features.parquet"), "--clinical",
                 str(tables / "clinical.csv"), "-o", str(cv_dir), "--repeats", "1", "--n-folds", "3",
                 "--n-boot", "50", "--model", "coxnet"]) == 0
    report = json.loads((cv_dir / "cv_report.json").read_text())
    assert 0.6 < report["c_index"] < 1 and len(report["folds"]) == 3 and report["model"] == "coxnet"
    assert (cv_dir / "km_risk_groups.png").is_file() and (cv_dir / "oof_predictions.csv").is_file()

    out = tmp_path / "hpv"
    assert main(["train", "--quiet", "hpv", "--features", str(tables / "features.parquet"), "--clinical",
                 str(tables / "clinical.csv"), "-o", str(out), "--splits", "leave-one-centre-out", "--n-boot", "50"]) == 0
    report = json.loads((out / "cv_report.json").read_text())
    assert report["cv"] == "leave-one-centre-out" and len(report["folds"]) == 7 and 0 <= report["balanced_accuracy"] <= 1
    assert (out / "roc.png").is_file()
    info = json.loads((out / "prognosis.json").read_text())
    assert "CLIN_HPV" not in info["feature_names_in"]            # the target is never an input
    preds = tmp_path / "hpv.csv"
    assert main(["predict", "--quiet", "--model-dir", str(out), "--features", str(tables / "features.parquet"),
                 "--clinical", str(tables / "clinical.csv"), "-o", str(preds), "--json-dir", str(tmp_path / "js")]) == 0
    p = pd.read_csv(preds)
    assert list(p.columns) == ["PatientID", "Prediction", "Probability"]
    assert set(p.Prediction) <= {0, 1} and p.Probability.between(0, 1).all()
    np.testing.assert_array_equal(p.Prediction, (p.Probability >= info["threshold"]).astype(int))
    assert json.loads((tmp_path / "js" / f"{p.PatientID[0]}.json").read_text()) in (0, 1)


def test_wrong_model_for_task_and_duplicate_patients_are_clear_errors(tables, tmp_path, capsys):
    args = ["--features", str(tables / "features.parquet"), "-o", str(tmp_path / "o")]
    assert main(["cv", "hpv", "--clinical", str(tables / "clinical.csv"), "--model", "coxnet", *args]) == 2
    assert "not available for hpv" in capsys.readouterr().err
    clin = pd.read_csv(tables / "clinical.csv")
    dup = tmp_path / "dup.csv"
    pd.concat([clin, clin.iloc[[0]].assign(Age=clin.loc[0, "Age"] + 1)]).to_csv(dup, index=False)
    assert main(["cv", "rfs", "--clinical", str(dup), *args]) == 2
    err = capsys.readouterr().err
    assert str(dup) in err and str(clin.loc[0, "PatientID"]) in err


def test_model_folder_is_written_whole_or_refused(rfs_model, tables, tmp_path, capsys):
    import shutil

    out = tmp_path / "model"
    shutil.copytree(rfs_model, out)  # an xgb model: model.json, feature_importance.*, km_risk_groups.png
    (out / "cv_report.json").write_text('{"model": "xgb", "c_index": 0.9}')
    (out / "oof_predictions.csv").write_text("PatientID,score\n")
    args = ["train", "rfs", "--features", str(tables / "features.parquet"), "--clinical", str(tables / "clinical.csv"),
            "-o", str(out), "--model", "coxnet", "--no-cv"]
    before = sorted(p.name for p in out.iterdir())
    assert main(["--quiet", *args]) == 2
    assert "--overwrite" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == before
    assert main(["--quiet", *args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["km_risk_groups.png", "model.joblib", "prognosis.json"]
    assert json.loads((out / "prognosis.json").read_text())["model"] == "coxnet"
    # an hpv model in the folder of an rfs one keeps no KM plot
    hpv = ["train", "hpv", "--features", str(tables / "features.parquet"), "--clinical", str(tables / "clinical.csv"),
           "-o", str(out), "--no-cv", "--overwrite"]
    assert main(["--quiet", *hpv]) == 0
    assert "km_risk_groups.png" not in {p.name for p in out.iterdir()} and (out / "roc.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left beside it


def test_compare_writes_json_table_and_figure(tables, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--quiet", "hpv", "--features", str(tables / "features.parquet"), "--clinical",
                 str(tables / "clinical.csv"), "-o", str(out), "--models", "logistic", "icare", "clinical",
                 "--n-folds", "3", "--n-boot", "100"]) == 0
    assert {p.name for p in out.iterdir()} == {"comparison.json", "comparison.md", "comparison.png",
                                               "oof_predictions.csv"}
    report = json.loads((out / "comparison.json").read_text())
    assert [r["model"] for r in report["rows"]] == ["auto", "logistic", "icare", "clinical"]
    for r in report["rows"]:
        assert {"model", "score", "ci", "n_patients"} <= set(r) and 0 <= r["score"] <= 1
        assert r["n_patients"] == report["n_patients"] and r["ci"][0] <= r["score"] <= r["ci"][1]
    assert "| clinical only (logistic) |" in (out / "comparison.md").read_text()


def test_patients_match_by_one_id_rule_and_every_one_is_accounted_for(rfs_model, tables, tmp_path, capsys):
    feat, meta = read_features(tables / "features.parquet")
    lower = tmp_path / "lower.parquet"
    write_features(feat.assign(PatientID=feat["PatientID"].str.lower()), lower, meta)
    clin = pd.read_csv(tables / "clinical.csv")
    short = tmp_path / "short.csv"
    clin.iloc[1:].to_csv(short, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model-dir", str(rfs_model), "--features", str(lower), "--clinical", str(short),
                 "-o", str(out)]) == 0
    first = clin.loc[0, "PatientID"]
    printed = capsys.readouterr().out
    assert "wrote 299 prediction(s)" in printed and f"1 patient(s) not scored: {first} (no row in the" in printed
    assert set(pd.read_csv(out)["PatientID"]) == set(clin["PatientID"][1:])   # lower-case ids matched
    twice = tmp_path / "twice.csv"
    pd.concat([clin, clin.iloc[[3]].assign(Age=clin.loc[3, "Age"] + 1)]).to_csv(twice, index=False)
    assert main(["predict", "--model-dir", str(rfs_model), "--features", str(lower), "--clinical", str(twice),
                 "-o", str(tmp_path / "q.csv")]) == 2
    assert clin.loc[3, "PatientID"] in capsys.readouterr().err and not (tmp_path / "q.csv").exists()


def test_excluded_clinical_column_is_left_out_at_training_and_prediction(tables, tmp_path):
    out = tmp_path / "m"
    assert main(["train", "--quiet", "rfs", "--features", str(tables / "features.parquet"), "--clinical",
                 str(tables / "clinical.csv"), "-o", str(out), "--no-cv", "--model", "coxnet",
                 "--exclude-clinical", "HPV Status"]) == 0
    info = json.loads((out / "prognosis.json").read_text())
    assert info["exclude_clinical"] == ["CLIN_HPV"] and "CLIN_HPV" not in info["feature_names_in"]
    no_hpv = tmp_path / "no_hpv.csv"
    pd.read_csv(tables / "clinical.csv").drop(columns=["HPV Status"]).to_csv(no_hpv, index=False)
    assert main(["predict", "--quiet", "--model-dir", str(out), "--features", str(tables / "features.parquet"),
                 "--clinical", str(no_hpv), "-o", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 300
