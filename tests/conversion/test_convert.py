import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli.convert import main as convert_main
from hecktor_nnunet.cli.restore import main as restore_main
from hecktor_nnunet.dataset_conversion.convert import convert_release
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.demo.synth import generate_release


def _arr(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _restore_own_labels(dataset_dir, out):
    assert restore_main([str(dataset_dir / "labelsTr"), "--manifest", str(dataset_dir / "conversion_manifest.json"),
                         "-o", str(out), "--quiet"]) == 0
    return out


def _dice(a, b, label):
    a, b = a == label, b == label
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else 2 * (a & b).sum() / denom


@pytest.mark.parametrize("crop", ["none", "overlap"])
def test_round_trip_on_ct_grid_is_exact(tiny_release, tmp_path, crop):
    res = convert_release(tiny_release, 510, raw_dir=tmp_path, settings=ConversionSettings(crop=crop), quiet=True)
    assert res.ok and len(res.converted) == 9
    ds = res.dataset_dir
    assert len(list((ds / "imagesTr").glob("*_0000.nii.gz"))) == 8
    assert len(list((ds / "imagesTs").glob("*_0001.nii.gz"))) == 1
    pid = sorted((ds / "labelsTr").iterdir())[0].name.split(".")[0]
    ct = sitk.ReadImage(str(ds / "imagesTr" / f"{pid}_0000.nii.gz"))
    pet = sitk.ReadImage(str(ds / "imagesTr" / f"{pid}_0001.nii.gz"))
    assert ct.GetSize() == pet.GetSize() and np.allclose(ct.GetOrigin(), pet.GetOrigin())
    out = _restore_own_labels(ds, tmp_path / "restored")
    for case in read_release(tiny_release).cases:
        if case.labelled:
            restored = sitk.ReadImage(str(out / f"{case.patient_id}.nii.gz"))
            original = sitk.ReadImage(str(case.label))
            assert restored.GetSize() == original.GetSize()
            assert np.allclose(restored.GetOrigin(), original.GetOrigin())
            assert np.array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(original))


@pytest.mark.parametrize("spacing,crop", [((2.1, 2.1, 3.0), "headneck"), ((2.0, 2.0, 2.0), "overlap")])
def test_round_trip_with_resampling(tiny_release, tmp_path, spacing, crop):
    s = ConversionSettings(spacing=spacing, crop=crop, crop_size_mm=(150, 150, 200))
    res = convert_release(tiny_release, 511, raw_dir=tmp_path, settings=s, quiet=True)
    manifest = json.loads((res.dataset_dir / "conversion_manifest.json").read_text())
    first = next(iter(manifest["cases"].values()))
    assert np.allclose(first["output_grid"]["spacing"], spacing)
    out = _restore_own_labels(res.dataset_dir, tmp_path / "restored")
    for case in read_release(tiny_release).cases:
        if case.labelled:
            a, b = _arr(case.label), _arr(out / f"{case.patient_id}.nii.gz")
            assert a.shape == b.shape
            for label in (1, 2):
                assert _dice(a, b, label) >= 0.99, (case.patient_id, label, _dice(a, b, label))


def test_bad_cases_are_skipped_listed_and_exit_nonzero(bad_release, tmp_path, capsys):
    args = [str(bad_release), "-d", "512", "-o", str(tmp_path), "--quiet"]
    assert convert_main(args) == 1
    err = capsys.readouterr().err
    oracle = pd.read_csv(bad_release.parent / "release_oracle.csv").fillna("")
    fatal = oracle[oracle["bad"].isin(["pet_bqml", "label_3", "missing_pet", "nan_ct", "no_overlap"])]
    for pid in fatal["PatientID"]:
        assert pid in err
    manifest = json.loads(next(tmp_path.glob("Dataset512_*/conversion_manifest.json")).read_text())
    assert set(manifest["failed"]) == set(fatal["PatientID"])
    assert all(pid not in manifest["cases"] for pid in fatal["PatientID"])
    # the rest converted; re-running with --skip-bad resumes and exits 0
    assert convert_main(args + ["--skip-bad"]) == 0


def test_suv_factors_convert_bqml_pet(tmp_path):
    root = tmp_path / "rel"
    generate_release(root, 2, seed=4, bad={"pet_bqml": 1})
    res = convert_release(root, 513, raw_dir=tmp_path / "raw", suv_factors=tmp_path / "rel_suv_factors.csv",
                          quiet=True)
    assert res.ok
    bq = pd.read_csv(tmp_path / "rel_oracle.csv").query("bad == 'pet_bqml'")["PatientID"].item()
    pet = _arr(res.dataset_dir / "imagesTr" / f"{bq}_0001.nii.gz")
    assert 2 < pet.max() < 60  # back in SUV
    assert any(p.code == "pet_units_bqml" and p.patient_id == bq for p in res.problems)


def test_resume_and_overwrite(tiny_release, tmp_path):
    res = convert_release(tiny_release, 514, raw_dir=tmp_path, quiet=True)
    ds = res.dataset_dir
    keep = ds / "imagesTr" / f"{res.converted[0]}_0000.nii.gz"
    mtime = keep.stat().st_mtime_ns
    redo = res.converted[1]
    (ds / ".hecktor_cases" / f"{redo}.json").unlink()
    (ds / "imagesTr" / f"{redo}_0000.nii.gz").unlink()
    res2 = convert_release(tiny_release, 514, raw_dir=tmp_path, quiet=True)
    assert res2.ok and (ds / "imagesTr" / f"{redo}_0000.nii.gz").is_file()
    assert keep.stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_release(tiny_release, 514, raw_dir=tmp_path, settings=ConversionSettings(crop="none"), quiet=True)
    res3 = convert_release(tiny_release, 514, raw_dir=tmp_path, settings=ConversionSettings(crop="none"),
                           overwrite=True, quiet=True)
    assert res3.ok and keep.stat().st_mtime_ns != mtime
    with pytest.raises(ValueError, match="outside the release"):
        convert_release(tiny_release, 515, raw_dir=tiny_release, quiet=True)


def test_regions_splits_clinical_and_extra_channel(tiny_release, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for case in read_release(tiny_release).cases[:5]:
        shutil.copy(case.ct, flat / case.ct.name)
        shutil.copy(case.pet, flat / case.pet.name)
        shutil.copy(case.pet, flat / f"{case.patient_id}__RTDOSE.nii.gz")
        if case.label:
            shutil.copy(case.label, flat / case.label.name)
    s = ConversionSettings(regions=True, extra_channels=("RTDOSE",), pet_norm="none")
    res = convert_release(flat, 516, raw_dir=tmp_path / "raw", settings=s, splits="leave-one-centre-out",
                          quiet=True)
    ds = json.loads((res.dataset_dir / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "GTV": [1, 2], "GTVn": [2], "GTVp": [1]}
    assert ds["regions_class_order"] == [1, 2, 1]
    assert ds["channel_names"] == {"0": "CT", "1": "noNorm", "2": "zscore"}
    assert len(list((res.dataset_dir / "imagesTr").glob("*_0002.nii.gz"))) == ds["numTraining"]
    splits = json.loads((res.dataset_dir / "splits_final.json").read_text())
    assert len(splits) == len({p.split("-")[0] for p in res.converted})


def test_2022_layout_converts(tmp_path):
    root = tmp_path / "hecktor2022_training"
    generate_release(root, 3, layout="2022", seed=5)
    res = convert_release(root, 517, raw_dir=tmp_path / "raw", quiet=True)
    assert res.ok and len(list((res.dataset_dir / "labelsTr").iterdir())) == 3
    clinical = pd.read_csv(res.dataset_dir / "clinical.csv")
    assert {"Relapse", "RFS", "HPV Status", "Gender"} <= set(clinical.columns)


def test_restore_rejects_wrong_grid_and_labels(tiny_release, tmp_path):
    res = convert_release(tiny_release, 518, raw_dir=tmp_path / "raw", quiet=True)
    preds = tmp_path / "preds"
    preds.mkdir()
    pid = res.converted[0]
    lab = sitk.ReadImage(str(res.dataset_dir / "labelsTr" / f"{pid}.nii.gz"))
    arr = sitk.GetArrayFromImage(lab)
    arr[0, 0, 0] = 3
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(lab)
    sitk.WriteImage(bad, str(preds / f"{pid}.nii.gz"))
    manifest = str(res.dataset_dir / "conversion_manifest.json")
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o")]) == 2
    sitk.WriteImage(sitk.Shrink(lab, [2, 2, 2]), str(preds / f"{pid}.nii.gz"))
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o")]) == 2
    sitk.WriteImage(lab, str(preds / "NOPE-001.nii.gz"))
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o")]) == 2


def test_restore_matches_ids_by_their_normal_form(tiny_release, tmp_path, capsys):
    res = convert_release(tiny_release, 519, raw_dir=tmp_path / "raw", quiet=True)
    pid = res.converted[0]
    preds = tmp_path / "preds"
    preds.mkdir()
    shutil.copy(res.dataset_dir / "labelsTr" / f"{pid}.nii.gz", preds / f"{pid.lower().replace('-', '_')}.nii.gz")
    manifest = str(res.dataset_dir / "conversion_manifest.json")
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o"), "--quiet"]) == 0
    assert np.array_equal(_arr(tmp_path / "o" / f"{pid}.nii.gz"), _arr(read_release(tiny_release).case(pid).label))
    shutil.copy(res.dataset_dir / "labelsTr" / f"{pid}.nii.gz", preds / f"{pid}.nii.gz")  # two files, one patient
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert pid in err and "two predictions for one patient" in err and not (tmp_path / "o2").exists()


def _copy_release(tiny_release, tmp_path, n=4):
    """A small editable copy of the tiny release: its first n labelled patients."""
    root = tmp_path / "release"
    for case in [c for c in read_release(tiny_release).cases if c.labelled][:n]:
        for p in (case.ct, case.pet, case.label):
            if p is not None:
                dst = root / "Task 1" / case.patient_id / p.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dst)
    return root


def _stamps(ds):
    return {str(p.relative_to(ds)): p.stat().st_mtime_ns for p in ds.rglob("*.nii.gz")}


def test_resume_checks_inputs_and_outputs(tiny_release, tmp_path):
    rel = _copy_release(tiny_release, tmp_path)
    res = convert_release(rel, 520, raw_dir=tmp_path / "raw", quiet=True)
    ds, (a, b, c, d) = res.dataset_dir, res.converted
    before = _stamps(ds)
    # a deleted output is rebuilt
    (ds / "imagesTr" / f"{a}_0001.nii.gz").unlink()
    # a corrected source label is converted again
    label = next((rel / "Task 1" / b).glob(f"{b}.nii.gz"))
    img = sitk.ReadImage(str(label))
    arr = sitk.GetArrayFromImage(img)
    arr[arr == 2] = 0
    fixed = sitk.GetImageFromArray(arr)
    fixed.CopyInformation(img)
    sitk.WriteImage(fixed, str(label))
    # a patient gone from the release leaves nothing behind
    shutil.rmtree(rel / "Task 1" / c)
    res2 = convert_release(rel, 520, raw_dir=tmp_path / "raw", quiet=True)
    assert res2.ok and res2.converted == [a, b, d]
    after = _stamps(ds)
    assert (ds / "imagesTr" / f"{a}_0001.nii.gz").is_file()
    assert not (_arr(ds / "labelsTr" / f"{b}.nii.gz") == 2).any()
    assert not any(c in name for name in after) and not (ds / ".hecktor_cases" / f"{c}.json").exists()
    assert {p.patient_id for p in res2.problems if p.code == "stale_output"} == {c}
    assert after[f"imagesTr/{d}_0000.nii.gz"] == before[f"imagesTr/{d}_0000.nii.gz"]  # untouched: not redone
    manifest = json.loads((ds / "conversion_manifest.json").read_text())
    assert set(manifest["cases"]) == {a, b, d}
    assert set(manifest["cases"][a]["outputs"]) == {f"imagesTr/{a}_0000.nii.gz", f"imagesTr/{a}_0001.nii.gz",
                                                    f"labelsTr/{a}.nii.gz"}


def test_another_release_into_the_same_dataset_is_refused(tiny_release, tmp_path):
    rel = _copy_release(tiny_release, tmp_path, n=2)
    convert_release(rel, 521, raw_dir=tmp_path / "raw", quiet=True)
    other = tmp_path / "other"
    generate_release(other, 2, seed=7)
    with pytest.raises(FileExistsError, match="another release"):
        convert_release(other, 521, raw_dir=tmp_path / "raw", quiet=True)
    res = convert_release(other, 521, raw_dir=tmp_path / "raw", overwrite=True, quiet=True)
    ids = {c.patient_id for c in read_release(other).cases}
    assert set(res.converted) == ids
    assert {p.name.split("_0")[0] for p in (res.dataset_dir / "imagesTr").iterdir()} == ids


def test_splits_removed_when_no_longer_asked_for(tiny_release, tmp_path):
    rel = _copy_release(tiny_release, tmp_path, n=4)
    res = convert_release(rel, 522, raw_dir=tmp_path / "raw", splits="leave-one-centre-out", quiet=True)
    assert (res.dataset_dir / "splits_final.json").is_file()
    res = convert_release(rel, 522, raw_dir=tmp_path / "raw", quiet=True)
    manifest = json.loads((res.dataset_dir / "conversion_manifest.json").read_text())
    assert "splits" not in manifest and not (res.dataset_dir / "splits_final.json").exists()
    assert any(p.code == "stale_splits" for p in res.problems)


def test_unreadable_record_and_leftovers_do_not_block_a_resume(tiny_release, tmp_path, caplog):
    rel = _copy_release(tiny_release, tmp_path, n=3)
    res = convert_release(rel, 523, raw_dir=tmp_path / "raw", quiet=True)
    ds = res.dataset_dir
    record = ds / ".hecktor_cases" / f"{res.converted[0]}.json"
    record.write_text("")  # a kill during the first record write
    leftovers = [ds / "imagesTr" / f".{res.converted[1]}_0001.nii.gz.hecktor-tmp-4f00hblv.nii.gz",
                 ds / ".hecktor_cases" / f".{res.converted[1]}.json.hecktor-tmp-x1y2z3w4.json",
                 ds / f".conversion_manifest.json.hecktor-tmp-abcdefgh.json"]
    for p in leftovers:
        p.write_text("")
    res2 = convert_release(rel, 523, raw_dir=tmp_path / "raw", quiet=True)
    assert res2.ok and res2.converted == res.converted
    assert str(record) in caplog.text
    assert json.loads(record.read_text())["patient_id"] == res.converted[0]
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in ds.rglob(".*") if "hecktor-tmp" in p.name]


def test_a_second_writer_fails_fast(tiny_release, tmp_path, capsys):
    from hecktor_nnunet.io.atomic_io import folder_lock

    rel = _copy_release(tiny_release, tmp_path, n=2)
    ds = tmp_path / "raw" / "Dataset524_HECKTOR2025"
    with folder_lock(ds, "hecktor-convert (another run)"):
        for extra in ([], ["--overwrite"], ["--crop", "none"]):
            assert convert_main([str(rel), "-d", "524", "-o", str(tmp_path / "raw"), "--quiet", *extra]) == 2
            err = capsys.readouterr().err
            assert "another run" in err and str(ds) in err
    assert sorted(p.name for p in ds.iterdir()) == [".hecktor.lock"]  # the folder was not touched
    assert convert_main([str(rel), "-d", "524", "-o", str(tmp_path / "raw"), "--quiet"]) == 0


def test_quiet_still_prints_errors(bad_release, tmp_path, capsys):
    assert convert_main([str(bad_release), "-d", "525", "-o", str(tmp_path), "--quiet"]) == 1
    captured = capsys.readouterr()
    oracle = pd.read_csv(bad_release.parent / "release_oracle.csv").fillna("")
    pid = oracle.loc[oracle["bad"] == "label_3", "PatientID"].item()
    line = next(l for l in captured.err.splitlines() if pid in l and "label_values" in l)
    assert "ERROR" in line and ".nii.gz" in line
    assert captured.out == ""


def test_restore_rejects_non_integer_predictions(tiny_release, tmp_path):
    res = convert_release(_copy_release(tiny_release, tmp_path, n=1), 526, raw_dir=tmp_path / "raw", quiet=True)
    pid = res.converted[0]
    lab = sitk.ReadImage(str(res.dataset_dir / "labelsTr" / f"{pid}.nii.gz"))
    arr = sitk.GetArrayFromImage(lab).astype(np.float32)
    arr[arr == 2] = 1.5
    pred = sitk.GetImageFromArray(arr)
    pred.CopyInformation(lab)
    preds = tmp_path / "preds"
    preds.mkdir()
    sitk.WriteImage(pred, str(preds / f"{pid}.nii.gz"))
    manifest = str(res.dataset_dir / "conversion_manifest.json")
    assert restore_main([str(preds), "--manifest", manifest, "-o", str(tmp_path / "o"), "--quiet"]) == 2
    assert not (tmp_path / "o" / f"{pid}.nii.gz").exists()


def test_prediction_images_are_uncompressed_and_a_change_of_ending_redoes_the_case(tiny_release, tmp_path):
    from hecktor_nnunet.dataset_conversion.cases import convert_images

    cases = read_release(tiny_release).cases[:2]
    ids = sorted(c.patient_id for c in cases)
    images, gz = tmp_path / "images", tmp_path / "gz"
    reference = convert_images(cases, gz, ConversionSettings(), ending=".nii.gz", quiet=True)
    shutil.copytree(gz, images)  # a --keep-work folder of an earlier version: .nii.gz images and their records
    manifest = convert_images(cases, images, ConversionSettings(), quiet=True)
    assert sorted(p.name for p in images.iterdir() if not p.name.startswith(".")) == \
        [f"{i}_{c:04d}.nii" for i in ids for c in (0, 1)]  # redone as .nii, the .nii.gz images removed
    for pid in ids:
        record, ref = manifest["cases"][pid], reference["cases"][pid]
        assert record["files"] == [f"{pid}_0000.nii", f"{pid}_0001.nii"]
        assert record["output_grid"] == ref["output_grid"]
        for new, old in zip(record["files"], ref["files"]):
            with open(images / new, "rb") as f:
                assert f.read(2) != b"\x1f\x8b"  # not gzip
            np.testing.assert_array_equal(_arr(images / new), _arr(gz / old))  # same voxels, same type
