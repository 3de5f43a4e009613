"""``hecktor-evaluate`` end to end on a tiny synthetic release: seg, rfs, hpv and their error paths."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.metrics import balanced_accuracy_score

from hecktor_nnunet.cli.evaluate import main
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.demo.synth import generate_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "release"
    oracle = generate_release(root, 8, seed=3, n_unlabelled=4)
    return root, oracle


def _labels(root: Path) -> dict[str, Path]:
    return {p.name[:-7]: p for p in sorted((root / "Task 1").glob("*/*.nii.gz")) if "__" not in p.name}


def _write_preds(root: Path, out: Path, shift: int = 0, suffix: str = ".nii.gz", drop: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for pid, path in _labels(root).items():
        if pid == drop:
            continue
        img = sitk.ReadImage(str(path))
        arr = np.roll(sitk.GetArrayFromImage(img), shift, axis=2)
        o = sitk.GetImageFromArray(arr)
        o.CopyInformation(img)
        sitk.WriteImage(o, str(out / f"{pid}{suffix}"))
    return out


def test_seg_end_to_end_and_ranking(release, tmp_path, capsys):
    root, _ = release
    perfect = _write_preds(root, tmp_path / "perfect", suffix=".mha")
    shift1 = _write_preds(root, tmp_path / "shift1", shift=1)
    shift3 = _write_preds(root, tmp_path / "shift3", shift=3)
    assert main(["seg", "--truth", str(root), "--pred", str(perfect), "-o", str(tmp_path / "e1"),
                 "--n-boot", "50", "--quiet"]) == 0
    s = json.loads((tmp_path / "e1" / "summary.json").read_text())
    for k in ("gtvp_dice_mean", "gtvn_dsc_agg", "gtvn_f1_agg", "gtvp_hd95_median", "gtvn_hd95_median",
              "n_patients", "per_centre", "ci"):
        assert k in s
    assert s["n_patients"] == 8
    assert s["gtvp_dice_mean"] == 1.0 and s["gtvn_dsc_agg"] == 1.0 and s["gtvn_f1_agg"] == 1.0
    assert s["gtvp_hd95_median"] == 0.0
    per = pd.read_csv(tmp_path / "e1" / "per_patient.csv")
    assert len(per) == 8 and set(per["centre"]) == set(s["per_centre"])
    assert (tmp_path / "e1" / "dice_per_centre.png").stat().st_size > 1000

    assert main(["seg", "--truth", str(root), "--pred", str(shift3), "--pred", str(perfect), "--pred", str(shift1),
                 "-o", str(tmp_path / "e3"), "--n-boot", "20", "-np", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Borda" in printed
    ranking = pd.read_csv(tmp_path / "e3" / "ranking.csv")
    assert ranking["run"].tolist() == ["perfect", "shift1", "shift3"]
    assert ranking["final_rank"].tolist() == [1, 2, 3]
    runs = json.loads((tmp_path / "e3" / "summary.json").read_text())["runs"]
    assert runs["shift1"]["gtvp_dice_mean"] > runs["shift3"]["gtvp_dice_mean"]
    # shifting by 1 voxel along x: HD95 is one x-spacing
    spacing_x = sitk.ReadImage(str(next(iter(_labels(root).values())))).GetSpacing()[0]
    assert runs["shift1"]["gtvp_hd95_median"] == pytest.approx(spacing_x)
    # per-patient Dice agrees with the single-run evaluation of the same folder
    assert (tmp_path / "e3" / "shift1" / "per_patient.csv").is_file()


def test_seg_truth_as_plain_label_folder(release, tmp_path):
    root, _ = release
    labels = tmp_path / "labels"
    labels.mkdir()
    for pid, path in _labels(root).items():
        shutil.copy(path, labels / path.name)
    shift1 = _write_preds(root, tmp_path / "shift1", shift=1)
    assert main(["seg", "--truth", str(labels), "--pred", str(shift1), "-o", str(tmp_path / "e"),
                 "--n-boot", "10", "--quiet"]) == 0
    s = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert s["n_patients"] == 8 and 0 < s["gtvp_dice_mean"] < 1


def test_seg_both_empty_gtvp_counts_zero_by_default(release, tmp_path, capsys):
    # one patient without GTVp in truth and prediction: the organisers score it 0 in the GTVp mean
    root, _ = release
    labels, pred = tmp_path / "labels", tmp_path / "pred"
    labels.mkdir()
    pred.mkdir()
    no_gtvp = sorted(_labels(root))[0]
    for pid, path in _labels(root).items():
        img = sitk.ReadImage(str(path))
        if pid == no_gtvp:
            arr = sitk.GetArrayFromImage(img)
            arr[arr == 1] = 0
            out = sitk.GetImageFromArray(arr)
            out.CopyInformation(img)
            img = out
        sitk.WriteImage(img, str(labels / path.name))
        sitk.WriteImage(img, str(pred / path.name))      # a perfect prediction
    assert main(["seg", "--truth", str(labels), "--pred", str(pred), "-o", str(tmp_path / "zero"),
                 "--n-boot", "10"]) == 0
    printed = capsys.readouterr().out
    s = json.loads((tmp_path / "zero" / "summary.json").read_text())
    assert s["gtvp_dice_mean"] == pytest.approx(7 / 8)
    assert s["gtvp_dice_n_both_empty"] == 1 and s["conventions"]["gtvp_dice_both_empty"] == "zero"
    assert "1 patient(s) without GTVp in truth and prediction, Dice 0" in printed
    assert s["per_centre"][no_gtvp.split("-")[0]]["gtvp_dice_mean"] < 1.0
    per = pd.read_csv(tmp_path / "zero" / "per_patient.csv").set_index("patient_id")
    assert np.isnan(per.loc[no_gtvp, "gtvp_dice"])                   # undefined per patient, as before
    assert main(["seg", "--truth", str(labels), "--pred", str(pred), "-o", str(tmp_path / "excl"),
                 "--n-boot", "10", "--both-empty-dice", "exclude"]) == 0
    assert "left out of the GTVp mean (--both-empty-dice exclude)" in capsys.readouterr().out
    s = json.loads((tmp_path / "excl" / "summary.json").read_text())
    assert s["gtvp_dice_mean"] == 1.0 and s["conventions"]["gtvp_dice_both_empty"] == "exclude"


def test_seg_lesion_matching_option_and_conventions_recorded(release, tmp_path):
    root, _ = release
    pred = _write_preds(root, tmp_path / "p", shift=2)
    for matching in ("greedy", "optimal"):
        assert main(["seg", "--truth", str(root), "--pred", str(pred), "-o", str(tmp_path / matching),
                     "--n-boot", "0", "--quiet", "--matching", matching, "--connectivity", "18"]) == 0
        c = json.loads((tmp_path / matching / "summary.json").read_text())["conventions"]
        assert (c["matching"], c["connectivity"], c["iou_threshold"]) == (matching, 18, 0.3)
        assert "IoU > iou_threshold" in c["iou_rule"]
        assert c["hd95"].startswith("MONAI ") and "compute_hausdorff_distance" in c["hd95"]
    with pytest.raises(SystemExit):
        main(["seg", "--truth", str(root), "--pred", str(pred), "-o", str(tmp_path / "x"), "--matching", "hungarian"])


def test_seg_grid_mismatch(release, tmp_path, capsys):
    root, _ = release
    pred = _write_preds(root, tmp_path / "p")
    pid = sorted(_labels(root))[0]
    img = sitk.ReadImage(str(pred / f"{pid}.nii.gz"))
    img.SetOrigin([o + 4.0 for o in img.GetOrigin()])
    sitk.WriteImage(img, str(pred / f"{pid}.nii.gz"))
    assert main(["seg", "--truth", str(root), "--pred", str(pred), "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert pid in err and f"{pid}.nii.gz" in err and "grid" in err and "--resample-nearest" in err
    assert main(["seg", "--truth", str(root), "--pred", str(pred), "-o", str(tmp_path / "o"), "--quiet",
                 "--resample-nearest", "--n-boot", "10"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("resampled" in w for w in s["warnings"])


def test_seg_bad_label_and_missing_patient(release, tmp_path, capsys):
    root, _ = release
    pred = _write_preds(root, tmp_path / "p")
    pid = sorted(_labels(root))[1]
    img = sitk.ReadImage(str(pred / f"{pid}.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    arr[0, 0, 0] = 3
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(img)
    sitk.WriteImage(bad, str(pred / f"{pid}.nii.gz"))
    assert main(["seg", "--truth", str(root), "--pred", str(pred), "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert pid in err and "outside {0, 1, 2}" in err and "[3]" in err

    missing = sorted(_labels(root))[2]
    pred2 = _write_preds(root, tmp_path / "p2", drop=missing)
    assert main(["seg", "--truth", str(root), "--pred", str(pred2), "-o", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert missing in err and "no prediction" in err
    assert main(["seg", "--truth", str(root), "--pred", str(pred2), "-o", str(tmp_path / "o2"), "--quiet",
                 "--missing-as-empty", "--n-boot", "10"]) == 0
    per = pd.read_csv(tmp_path / "o2" / "per_patient.csv").set_index("patient_id")
    assert per.loc[missing, "gtvp_dice"] == 0.0 and per.loc[missing, "gtvp_pred_ml"] == 0.0

    extra = _write_preds(root, tmp_path / "p3")
    shutil.copy(extra / f"{missing}.nii.gz", extra / "CHUM-999.nii.gz")
    assert main(["seg", "--truth", str(root), "--pred", str(extra), "-o", str(tmp_path / "o3"), "--quiet"]) == 2
    assert "CHUM-999" in capsys.readouterr().err


def test_rfs(release, tmp_path, capsys):
    root, oracle = release
    truth = root / "Task 2" / "HECKTOR_2025_Training_Task_2.csv"
    clin = pd.read_csv(truth)
    preds = oracle[["PatientID", "true_risk"]].rename(columns={"true_risk": "Prediction"})
    preds.to_csv(tmp_path / "rfs.csv", index=False)
    assert main(["rfs", "--truth", str(truth), "--pred", str(tmp_path / "rfs.csv"), "-o", str(tmp_path / "r"),
                 "--n-boot", "50", "--quiet"]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    j = clin.merge(preds, on="PatientID").dropna(subset=["RFS", "Relapse"])
    assert s["c_index"] == pytest.approx(concordance_index(j["RFS"], j["Relapse"], j["Prediction"]))
    assert s["n_patients"] == len(j)
    assert s["c_index_ci"][0] <= s["c_index"] <= s["c_index_ci"][1]
    assert set(s["td_auc"]) == {"730", "1095"}
    assert (tmp_path / "r" / "km_risk_groups.png").is_file()
    # same predictions as JSON dict and as a folder of per-patient JSON, read as times (sign flips)
    (tmp_path / "rfs.json").write_text(json.dumps(dict(zip(preds.PatientID, preds.Prediction))))
    folder = tmp_path / "rfs_dir"
    folder.mkdir()
    for pid, v in zip(preds.PatientID, preds.Prediction):
        (folder / f"{pid}.json").write_text(json.dumps(-v))
    for src, extra in ((tmp_path / "rfs.json", []), (folder, ["--pred-is-time"])):
        assert main(["rfs", "--truth", str(truth), "--pred", str(src), "-o", str(tmp_path / "r2"),
                     "--n-boot", "10", "--quiet", *extra]) == 0
        assert json.loads((tmp_path / "r2" / "summary.json").read_text())["c_index"] == pytest.approx(s["c_index"])
    # NaN prediction: error naming the patient
    preds.loc[0, "Prediction"] = np.nan
    preds.to_csv(tmp_path / "nan.csv", index=False)
    assert main(["rfs", "--truth", str(truth), "--pred", str(tmp_path / "nan.csv"), "-o", str(tmp_path / "r3")]) == 2
    assert preds.PatientID[0] in capsys.readouterr().err


def test_hpv(release, tmp_path):
    root, oracle = release
    truth = root / "Task 3" / "HECKTOR_2025_Training_Task_3.csv"
    prob = oracle["hpv_prob"].to_numpy()
    preds = pd.DataFrame({"PatientID": oracle.PatientID, "Prediction": (prob > 0.5).astype(int), "Probability": prob})
    preds.to_csv(tmp_path / "hpv.csv", index=False)
    assert main(["hpv", "--truth", str(truth), "--pred", str(tmp_path / "hpv.csv"), "-o", str(tmp_path / "h"),
                 "--n-boot", "50", "--quiet"]) == 0
    s = json.loads((tmp_path / "h" / "summary.json").read_text())
    clin = pd.read_csv(truth).merge(preds, on="PatientID").dropna(subset=["HPV Status"])
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(clin["HPV Status"], clin["Prediction"]))
    assert s["n_patients"] == len(clin)
    assert s["n_excluded_missing_truth"] == len(preds) - len(clin)
    assert s["auc"] is not None and (tmp_path / "h" / "roc.png").is_file()
    preds["Prediction"] = prob
    preds.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["hpv", "--truth", str(truth), "--pred", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "h2"),
                 "--quiet"]) == 2


@pytest.mark.parametrize("task", ["rfs", "hpv"])
def test_missing_outcome_prediction_is_an_error_unless_complete_cases(release, tmp_path, capsys, task):
    root, oracle = release
    truth = root / {"rfs": "Task 2/HECKTOR_2025_Training_Task_2.csv",
                    "hpv": "Task 3/HECKTOR_2025_Training_Task_3.csv"}[task]
    col = ["RFS", "Relapse"] if task == "rfs" else ["HPV Status"]
    have_truth = pd.read_csv(truth).dropna(subset=col)["PatientID"].tolist()
    value = oracle["true_risk"] if task == "rfs" else (oracle["hpv_prob"] > 0.5).astype(int)
    preds = pd.DataFrame({"PatientID": oracle["PatientID"], "Prediction": value})
    dropped = have_truth[1]
    preds[preds.PatientID != dropped].to_csv(tmp_path / "p.csv", index=False)
    assert main([task, "--truth", str(truth), "--pred", str(tmp_path / "p.csv"), "-o", str(tmp_path / "o"),
                 "--n-boot", "10"]) == 2
    err = capsys.readouterr().err
    assert dropped in err and "no prediction" in err and "--complete-cases" in err
    assert not (tmp_path / "o" / "summary.json").exists()
    assert main([task, "--truth", str(truth), "--pred", str(tmp_path / "p.csv"), "-o", str(tmp_path / "o"),
                 "--n-boot", "10", "--complete-cases"]) == 0
    assert "left out: 1 with truth and no prediction" in capsys.readouterr().out
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["n_patients"] == len(have_truth) - 1 and s["missing_predictions"] == "complete cases"
    assert s["n_truth_without_prediction"] == 1 and s["truth_without_prediction"] == [dropped]


def test_unparsable_predictions_and_bad_truth_name_the_file(release, tmp_path, capsys):
    root, _ = release
    truth = root / "Task 2" / "HECKTOR_2025_Training_Task_2.csv"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["rfs", "--truth", str(truth), "--pred", str(broken), "-o", str(tmp_path / "o1")]) == 2
    assert str(broken) in capsys.readouterr().err
    table = pd.read_csv(truth)
    table.loc[0, "Relapse"] = 3
    bad_truth = tmp_path / "truth.csv"
    table.to_csv(bad_truth, index=False)
    preds = tmp_path / "preds.csv"
    pd.DataFrame({"PatientID": table["PatientID"], "Prediction": range(len(table))}).to_csv(preds, index=False)
    assert main(["rfs", "--truth", str(bad_truth), "--pred", str(preds), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert table.loc[0, "PatientID"] in err and str(bad_truth) in err and "Relapse" in err


def test_rfs_truth_as_people_write_it_scores_as_the_canonical_one(release, tmp_path):
    # semicolons, lower-case ids, Relapse spelled yes/no in the truth; underscores in the predictions' ids
    root, oracle = release
    truth = pd.read_csv(root / "Task 2" / "HECKTOR_2025_Training_Task_2.csv")
    preds = oracle[["PatientID", "true_risk"]].rename(columns={"true_risk": "Prediction"})
    preds.to_csv(tmp_path / "canonical.csv", index=False)
    odd_truth = truth.assign(PatientID=truth["PatientID"].str.lower(), Relapse=truth["Relapse"].map({1: "yes", 0: "No"}))
    odd_truth.to_csv(tmp_path / "truth.csv", index=False, sep=";")
    preds.assign(PatientID=preds["PatientID"].str.replace("-", "_")).to_csv(tmp_path / "odd.csv", index=False)
    scores = []
    for t, p in ((root / "Task 2" / "HECKTOR_2025_Training_Task_2.csv", "canonical.csv"), (tmp_path / "truth.csv", "odd.csv")):
        assert main(["rfs", "--truth", str(t), "--pred", str(tmp_path / p), "-o", str(tmp_path / p[:-4]),
                     "--n-boot", "10", "--quiet"]) == 0
        scores.append(json.loads((tmp_path / p[:-4] / "summary.json").read_text()))
    assert scores[1]["c_index"] == scores[0]["c_index"] and scores[1]["n_patients"] == scores[0]["n_patients"] == len(truth)


@pytest.mark.parametrize("task,column", [("rfs", "RFS"), ("hpv", "HPV Status")])
def test_repeated_truth_rows_are_read_once_or_refused_when_they_differ(release, tmp_path, capsys, caplog, task, column):
    root, oracle = release
    truth = pd.read_csv(root / {"rfs": "Task 2/HECKTOR_2025_Training_Task_2.csv",
                                "hpv": "Task 3/HECKTOR_2025_Training_Task_3.csv"}[task])
    value = oracle["true_risk"] if task == "rfs" else (oracle["hpv_prob"] > 0.5).astype(int)
    pd.DataFrame({"PatientID": oracle["PatientID"], "Prediction": value}).to_csv(tmp_path / "p.csv", index=False)
    row = truth.dropna(subset=[column]).iloc[[0]]
    pid = row["PatientID"].item()
    args = [task, "--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv"), "--n-boot", "10", "--quiet"]
    pd.concat([truth, row.assign(PatientID=pid.lower())]).to_csv(tmp_path / "t.csv", index=False)
    assert main(args + ["-o", str(tmp_path / "same")]) == 0
    assert pid in caplog.text and "identical values" in caplog.text
    s = json.loads((tmp_path / "same" / "summary.json").read_text())
    assert s["n_patients"] == len(truth.dropna(subset=[column]))
    changed = row.assign(**{column: 1 - row[column] if task == "hpv" else row[column] + 100})
    pd.concat([truth, changed]).to_csv(tmp_path / "t.csv", index=False)
    assert main(args + ["-o", str(tmp_path / "differ")]) == 2
    err = capsys.readouterr().err
    assert pid in err and str(tmp_path / "t.csv") in err and f"['{column}']" in err
    assert not (tmp_path / "differ").exists()
    # the same rule for the predictions: a patient predicted twice with different values is refused
    preds = pd.read_csv(tmp_path / "p.csv")
    first = preds.iloc[[0]].assign(PatientID=preds.loc[0, "PatientID"].replace("-", "_"),
                                   Prediction=1 - preds.loc[0, "Prediction"])
    pd.concat([preds, first]).to_csv(tmp_path / "p.csv", index=False)
    truth.to_csv(tmp_path / "t.csv", index=False)
    assert main(args + ["-o", str(tmp_path / "twice")]) == 2
    err = capsys.readouterr().err
    assert preds.loc[0, "PatientID"] in err and str(tmp_path / "p.csv") in err and "['Prediction']" in err
