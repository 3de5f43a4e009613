"""``hecktor-nnunet cv-masks`` on a real two-fold tiny model: the masks equal each fold's validation
output restored by hand; patients in no fold, a patient in two folds and a missing choice are refused.

Fold 0 is the session's tiny model (``trained``); fold 1 is trained here by ``nnUNetv2_train`` on a
copy of the preprocessed dataset whose ``splits_final.json`` gains a second split (fold 0 unchanged),
so both validation folders are what nnU-Net itself writes.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli import nnunet as nnunet_cli
from hecktor_nnunet.dataset_conversion.restore import restore_image
from hecktor_nnunet.inference.cv_masks import cv_masks
from hecktor_nnunet.inference.postprocessing import POSTPROCESSING_FILE, Postprocessing, apply_postprocessing
from hecktor_nnunet.inference.predict import SETTINGS_FILE, ModelError
from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.geometry import Grid
from hecktor_nnunet.training.registry import TINY_TRAINER

from nnunet_training_support import BIN, DATASET_ID, DATASET_NAME, NNUNetFolders, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_folds(nnunet_dataset, trained, tmp_path_factory) -> NNUNetFolders:
    """The session's tiny model (fold 0) plus fold 1, trained on a copy with a second split."""
    assert trained[TINY_TRAINER].returncode == 0, trained[TINY_TRAINER].stderr[-3000:]
    base = tmp_path_factory.mktemp("cv_masks")
    f = NNUNetFolders(nnunet_dataset.release, nnunet_dataset.raw, base / "preprocessed", base / "results")
    shutil.copytree(nnunet_dataset.preprocessed / DATASET_NAME, f.preprocessed / DATASET_NAME)
    splits_file = f.preprocessed / DATASET_NAME / "splits_final.json"
    splits = json.loads(splits_file.read_text())
    ids = sorted(splits[0]["train"] + splits[0]["val"])
    second = sorted(splits[0]["train"])[0]
    splits_file.write_text(json.dumps([splits[0], {"train": [i for i in ids if i != second], "val": [second]}]))
    shutil.copytree(nnunet_dataset.model_dir(TINY_TRAINER), f.model_dir(TINY_TRAINER),
                    ignore=shutil.ignore_patterns(POSTPROCESSING_FILE, SETTINGS_FILE))
    p = run([str(BIN / "nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "1", "-tr", TINY_TRAINER,
             "-device", "cpu"], f.env())
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return f


@pytest.fixture()
def env(two_folds, monkeypatch):
    for k, v in two_folds.env().items():
        if k.startswith("nnUNet_"):
            monkeypatch.setenv(k, v)
    return two_folds


def _by_hand(model, fold: str, pid: str, setting: Postprocessing, record: dict) -> sitk.Image:
    """The fold's validation output, post-processed with the project's apply and restored with its restore."""
    val = sitk.ReadImage(str(model / f"fold_{fold}" / "validation" / f"{pid}.nii.gz"))
    cleaned = sitk.GetImageFromArray(apply_postprocessing(sitk.GetArrayFromImage(val), val.GetSpacing(),
                                                          setting).astype(np.uint8))
    cleaned.CopyInformation(val)
    return restore_image(cleaned, record)


def _assert_masks_by_hand(env, out, setting: Postprocessing) -> int:
    """Every mask equals the by-hand one on the patient's CT grid; returns how many differ from no post-processing."""
    model = env.model_dir(TINY_TRAINER)
    manifest = json.loads((env.raw / DATASET_NAME / "conversion_manifest.json").read_text())
    folds = {pid: p["fold"] for pid, p in json.loads((out / "cv_masks.json").read_text())["patients"].items()}
    changed = 0
    for pid, fold in folds.items():
        mask = sitk.ReadImage(str(out / f"{pid}.nii.gz"))
        expected = _by_hand(model, fold, pid, setting, manifest["cases"][pid])
        ct = sitk.ReadImage(str(env.release / "Task 1" / pid / f"{pid}__CT.nii.gz"))
        assert Grid.of(mask).same_as(Grid.of(expected)) and Grid.of(mask).same_as(Grid.of(ct))
        assert mask.GetPixelID() == sitk.sitkUInt8
        assert np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(expected)), pid
        raw = _by_hand(model, fold, pid, Postprocessing(), manifest["cases"][pid])
        changed += not np.array_equal(sitk.GetArrayFromImage(raw), sitk.GetArrayFromImage(expected))
    return changed


def test_cv_masks_equal_each_folds_validation_restored_by_hand(env, tmp_path, capsys):
    model, out = env.model_dir(TINY_TRAINER), tmp_path / "masks"
    assert nnunet_cli.main(["postprocess-select", "-d", str(DATASET_ID), "-tr", TINY_TRAINER, "-f", "0", "1",
                            "--quiet"]) == 0
    chosen = Postprocessing.from_dict(json.loads((model / POSTPROCESSING_FILE).read_text())["setting"])
    args = ["cv-masks", "-d", str(DATASET_ID), "-tr", TINY_TRAINER, "-f", "0", "1", "-o", str(out), "--allow-missing"]
    assert nnunet_cli.main(args) == 0
    printed = capsys.readouterr()
    assert f"wrote 2 mask(s), 0 already done and unchanged, to {out}" in printed.out
    assert "6 training patient(s) in no validation prediction of folds 0 1 got no mask" in printed.err
    summary = json.loads((out / "cv_masks.json").read_text())
    assert sorted(p["fold"] for p in summary["patients"].values()) == ["0", "1"] and len(summary["missing"]) == 6
    assert summary["postprocessing"] == chosen.to_dict()
    _assert_masks_by_hand(env, out, chosen)
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{pid}.nii.gz" for pid in summary["patients"])

    # a re-run redoes nothing: same files, same times
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    assert nnunet_cli.main(args + ["--quiet"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")} == stamps

    # another post-processing saved with the model is an input change: every mask is redone with it
    other = Postprocessing(keep_largest_gtvp=True, min_gtvn_ml=chosen.min_gtvn_ml + 1.0)
    write_json({"setting": other.to_dict()}, model / POSTPROCESSING_FILE)
    result = cv_masks(out, dataset=DATASET_ID, trainer=TINY_TRAINER, folds=[0, 1], allow_missing=True, quiet=True)
    assert result.postprocessing == other and len(result.written) == 2 and result.unchanged == []
    # not vacuous: the setting changes at least one of the tiny model's masks (how many varies run to run on a CPU)
    assert _assert_masks_by_hand(env, out, other) >= 1
    assert nnunet_cli.main(args + ["--overwrite"]) == 0
    assert "wrote 2 mask(s), 0 already done" in capsys.readouterr().out


def test_cv_masks_refusals(env, tmp_path, capsys):
    model = env.model_dir(TINY_TRAINER)
    # a copy of the model without a chosen post-processing
    results = tmp_path / "results"
    copy = results / model.parent.name / model.name
    shutil.copytree(model, copy, ignore=shutil.ignore_patterns(POSTPROCESSING_FILE))
    common = dict(dataset=DATASET_ID, trainer=TINY_TRAINER, folds=["0", "1"], results_dir=results, quiet=True)
    with pytest.raises(ModelError, match="no post-processing was chosen .* postprocess-select"):
        cv_masks(tmp_path / "m", **common)

    # patients in no fold's validation: named, with the folders searched; nothing written
    out = tmp_path / "masks"
    rc = nnunet_cli.main(["cv-masks", "-d", str(DATASET_ID), "-tr", TINY_TRAINER, "-f", "0", "1", "-o", str(out),
                          "--no-postprocessing"])
    err = capsys.readouterr().err
    assert rc == 2 and "6 training patient(s) of Dataset577_TinyTrain are in no validation prediction" in err
    ids = set(json.loads((env.raw / DATASET_NAME / "conversion_manifest.json").read_text())["cases"])
    validated = {p.name[:-len(".nii.gz")] for p in model.glob("fold_*/validation/*.nii.gz")}
    listed = err.split("validation prediction of folds 0 1: ")[1].split(" (searched")[0].split(", ")
    assert len(validated) == 2 and listed == sorted(ids - validated)
    assert all(str(model / f"fold_{k}" / "validation") in err for k in (0, 1)) and "--allow-missing" in err
    assert not out.exists()

    # one patient in two folds' validation (a broken split): both folds named
    first = sorted((copy / "fold_0" / "validation").glob("*.nii.gz"))[0]
    shutil.copy(first, copy / "fold_1" / "validation" / first.name)
    pid = first.name[:-len(".nii.gz")]
    with pytest.raises(ValueError, match=rf"{pid} is in the validation of fold 0 .* and of fold 1"):
        cv_masks(tmp_path / "m", postprocess=False, allow_missing=True, **common)
    with pytest.raises(ValueError, match="inside the model folder"):
        cv_masks(copy / "fold_0" / "validation", postprocess=False, allow_missing=True, **common)
    assert sorted(os.listdir(copy / "fold_0" / "validation")) == sorted(os.listdir(model / "fold_0" / "validation"))

    # an unreadable validation file: named with its patient; that patient gets no mask, the other one does
    (copy / "fold_1" / "validation" / first.name).unlink()
    broken = sorted((copy / "fold_1" / "validation").glob("*.nii.gz"))[0]
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=rf"{broken.name[:-len('.nii.gz')]}: cannot read {broken}"):
        cv_masks(tmp_path / "m", postprocess=False, allow_missing=True, **common)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [".hecktor.lock", ".hecktor_cv_masks", first.name,
                                                                   "cv_masks.json"]
