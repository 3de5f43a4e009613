"""hecktor-predict end to end with the tiny trainer, post-processing selection, and its clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli import nnunet as nnunet_cli
from hecktor_nnunet.cli import predict as predict_cli
from hecktor_nnunet.io.geometry import Grid
from hecktor_nnunet.inference.predict import GC_OUTPUT, SETTINGS_FILE, ModelError, predict
from hecktor_nnunet.inference.postprocessing import POSTPROCESSING_FILE
from hecktor_nnunet.training.registry import TINY_TRAINER

from nnunet_training_support import DATASET_ID

pytestmark = pytest.mark.slow


@pytest.fixture()
def env(nnunet_dataset, trained, monkeypatch):
    assert trained[TINY_TRAINER].returncode == 0, trained[TINY_TRAINER].stderr[-3000:]
    for k, v in nnunet_dataset.env().items():
        if k.startswith("nnUNet_"):
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("nnUNet_extTrainer")  # hecktor-predict finds its trainers without `hecktor-nnunet env`
    return nnunet_dataset


def _flat_inputs(release, out, ids):
    out.mkdir()
    for pid in ids:
        for key in ("CT", "PT"):
            shutil.copy(release / "Task 1" / pid / f"{pid}__{key}.nii.gz", out / f"{pid}__{key}.nii.gz")
    return out


def _ids(release):
    return sorted(p.name for p in (release / "Task 1").iterdir())


def test_predict_flat_folder_onto_original_ct_grids(env, tmp_path, capsys):
    assert nnunet_cli.main(["postprocess-select", "-d", str(DATASET_ID), "-tr", TINY_TRAINER, "-f", "0"]) == 0
    model = env.model_dir(TINY_TRAINER)
    assert (model / POSTPROCESSING_FILE).is_file() and (model / SETTINGS_FILE).is_file()
    ids = _ids(env.release)[:2]
    inputs = _flat_inputs(env.release, tmp_path / "in", ids)
    rc = predict_cli.main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(DATASET_ID), "-tr", TINY_TRAINER,
                           "-f", "0", "-device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    for pid in ids:
        out = sitk.ReadImage(str(tmp_path / "out" / f"{pid}.nii.gz"))
        ct = sitk.ReadImage(str(inputs / f"{pid}__CT.nii.gz"))
        assert Grid.of(out).same_as(Grid.of(ct))
        assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2}


def test_cpu_prediction_shared_among_workers_equals_one_process(env, tmp_path):
    ids = _ids(env.release)[:3]
    inputs = _flat_inputs(env.release, tmp_path / "in", ids)
    common = dict(dataset=DATASET_ID, trainer=TINY_TRAINER, folds=[0], device="cpu", quiet=True, postprocess=False)
    one = predict(inputs, tmp_path / "one", workers=1, **common)
    two = predict(inputs, tmp_path / "two", workers=2, **common)
    assert [p.name for p in one] == [p.name for p in two] == [f"{pid}.nii.gz" for pid in ids]
    for a, b in zip(one, two):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(a))), sitk.GetArrayFromImage(sitk.ReadImage(str(b))))


def test_predict_grand_challenge_layout_to_gc_output(env, tmp_path):
    pid = _ids(env.release)[0]
    gc = tmp_path / "input"
    for key, sub in (("CT", "ct"), ("PT", "pet")):
        (gc / "images" / sub).mkdir(parents=True)
        img = sitk.ReadImage(str(env.release / "Task 1" / pid / f"{pid}__{key}.nii.gz"))
        sitk.WriteImage(img, str(gc / "images" / sub / "0a1b2c3d.mha"))
    written = predict(tmp_path, tmp_path / "output", dataset=DATASET_ID, trainer=TINY_TRAINER, folds=[0],
                      device="cpu", gc_output=True, quiet=True)
    assert written == [tmp_path / "output" / GC_OUTPUT]
    out = sitk.ReadImage(str(written[0]))
    ct = sitk.ReadImage(str(gc / "images" / "ct" / "0a1b2c3d.mha"))
    assert Grid.of(out).same_as(Grid.of(ct))
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2}


def test_clear_errors(env, tmp_path, capsys):
    inputs = _flat_inputs(env.release, tmp_path / "in", _ids(env.release)[:1])
    common = dict(dataset=DATASET_ID, folds=[0], device="cpu", quiet=True)
    with pytest.raises(ModelError, match="no trained model .*nnUNetTrainerHecktorNope"):
        predict(inputs, tmp_path / "o", trainer="nnUNetTrainerHecktorNope", **common)
    with pytest.raises(ModelError, match="fold_3"):
        predict(inputs, tmp_path / "o", trainer=TINY_TRAINER, **{**common, "folds": [3]})
    assert predict_cli.main(["-i", str(inputs), "-o", str(tmp_path / "o"), "-d", "999", "-tr", TINY_TRAINER]) == 2
    assert "dataset '999' not found" in capsys.readouterr().err

    # a copy of the model with edited plans / dataset.json
    results = tmp_path / "results"
    src = env.model_dir(TINY_TRAINER)
    dst = results / src.parent.name / src.name
    shutil.copytree(src, dst)
    plans = json.loads((dst / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [16, 16, 16]
    (dst / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ModelError, match="different plans.*patch_size"):
        predict(inputs, tmp_path / "o", trainer=TINY_TRAINER, results_dir=results, **common)
    shutil.copy(src / "plans.json", dst / "plans.json")
    ds = json.loads((dst / "dataset.json").read_text())
    ds["channel_names"]["2"] = "zscore"
    (dst / "dataset.json").write_text(json.dumps(ds))
    with pytest.raises(ModelError, match="expects 3 input channel"):
        predict(inputs, tmp_path / "o", trainer=TINY_TRAINER, results_dir=results, **common)
    ds = json.loads((src / "dataset.json").read_text())
    ds["hecktor"]["channels"] = ["PET", "CT"]  # same count, other content
    (dst / "dataset.json").write_text(json.dumps(ds))
    with pytest.raises(ModelError, match=r"trained on channels \['PET', 'CT'\]"):
        predict(inputs, tmp_path / "o", trainer=TINY_TRAINER, results_dir=results, **common)


def test_keep_work_folder_reused_for_other_inputs(env, tmp_path):
    ids = _ids(env.release)
    work = tmp_path / "work"
    common = dict(dataset=DATASET_ID, trainer=TINY_TRAINER, folds=[0], device="cpu", quiet=True,
                  mirroring=False, keep_work=work)
    predict(_flat_inputs(env.release, tmp_path / "a", ids[:2]), tmp_path / "out_a", **common)
    written = predict(_flat_inputs(env.release, tmp_path / "b", ids[2:3]), tmp_path / "out_b", **common)
    assert written == [tmp_path / "out_b" / f"{ids[2]}.nii.gz"]
    assert sorted(p.name for p in (work / "images").glob("*.nii*")) == [f"{ids[2]}_0000.nii", f"{ids[2]}_0001.nii"]
    assert sorted(p.name for p in (work / "pred_converted").glob("*.nii.gz")) == [f"{ids[2]}.nii.gz"]
