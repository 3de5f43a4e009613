"""Issue 7: SegResNet inside nnU-Net's pipeline and the residual-encoder presets, trained and predicting."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from hecktor_nnunet.io.geometry import Grid
from hecktor_nnunet.inference.predict import predict
from hecktor_nnunet.training.architectures import segresnet_levels
from hecktor_nnunet.training.base_trainer import DEBUG_ENV
from hecktor_nnunet.training.registry import TRAINERS_DIR

from nnunet_training_support import BIN, DATASET_ID, DATASET_NAME, run, train

RESENC_PLANS = "nnUNetResEncUNetMPlans"


def test_segresnet_levels_follow_plans_and_patch():
    assert segresnet_levels((48, 48, 48), 4) == 4
    assert segresnet_levels((128, 128, 128), 6) == 5
    assert segresnet_levels((36, 28, 28), 3) == 3
    assert segresnet_levels((40, 24, 24), 5) == 4  # 40 and 24 divide by 8, not by 16
    with pytest.raises(ValueError, match=r"patch size \[18, 28, 28\]"):
        segresnet_levels((18, 28, 28), 4)


@pytest.fixture()
def segresnet_trainer(nnunet_dataset, monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args

    monkeypatch.setenv("nnUNet_preprocessed", str(nnunet_dataset.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINERS_DIR))
    monkeypatch.setenv(DEBUG_ENV, "1")
    t = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, "nnUNetTrainerHecktorSegResNetFocalPETAug",
                              device=torch.device("cpu"))
    t.initialize()
    return t


def test_segresnet_trainer_builds_monai_net_without_deep_supervision(segresnet_trainer):
    from monai.networks.nets import SegResNet

    from hecktor_nnunet.training.losses import SumOfLosses

    t = segresnet_trainer
    assert isinstance(t.network, SegResNet) and not t.enable_deep_supervision
    assert t._get_deep_supervision_scales() is None
    assert isinstance(t.loss, SumOfLosses)  # focal compound, not wrapped for deep supervision
    t.set_deep_supervision_enabled(True)  # nnU-Net calls this after validation: must be harmless
    patch = t.configuration_manager.patch_size
    out = t.network(torch.randn(1, 2, *patch))
    assert out.shape == (1, 3, *patch)
    assert t.loss(out, torch.randint(0, 3, (1, 1, *patch))).ndim == 0


def _predict_one(folders, tmp_path, trainer, plans="nnUNetPlans"):
    pid = sorted(p.name for p in (folders.release / "Task 1").iterdir())[0]
    flat = tmp_path / "in"
    flat.mkdir()
    for key in ("CT", "PT"):
        shutil.copy(folders.release / "Task 1" / pid / f"{pid}__{key}.nii.gz", flat)
    written = predict(flat, tmp_path / "out", dataset=DATASET_ID, trainer=trainer, plans=plans, folds=[0],
                      device="cpu", results_dir=folders.results, raw_dir=folders.raw, quiet=True)
    assert written == [tmp_path / "out" / f"{pid}.nii.gz"]
    out = sitk.ReadImage(str(written[0]))
    ct = sitk.ReadImage(str(flat / f"{pid}__CT.nii.gz"))
    assert Grid.of(out).same_as(Grid.of(ct))
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2}


@pytest.mark.slow
def test_segresnet_predicts(nnunet_dataset, trained, tmp_path):
    name = "nnUNetTrainerHecktorSegResNet"
    assert trained[name].returncode == 0, trained[name].stderr[-3000:]
    _predict_one(nnunet_dataset, tmp_path, name)


@pytest.mark.slow
def test_resenc_m_plans_train_and_predict(nnunet_dataset, tmp_path):
    f = nnunet_dataset
    env = f.env(nnUNet_n_proc_DA="1")
    p = run([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DATASET_ID), "-pl", "nnUNetPlannerResEncM"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    p = run([str(BIN / "nnUNetv2_preprocess"), "-d", str(DATASET_ID), "-plans_name", RESENC_PLANS, "-c", "3d_fullres",
             "-np", "1"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    plans = json.loads((f.preprocessed / DATASET_NAME / f"{RESENC_PLANS}.json").read_text())
    assert plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    p = train(f, "nnUNetTrainerHecktorFocalPETAug", plans=RESENC_PLANS)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    model = f.model_dir("nnUNetTrainerHecktorFocalPETAug", RESENC_PLANS)
    trained_plans = json.loads((model / "plans.json").read_text())
    kwargs = trained_plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert max(kwargs["features_per_stage"]) <= 8 and set(kwargs["n_blocks_per_stage"]) == {1}  # tiny mode
    _predict_one(f, tmp_path, "nnUNetTrainerHecktorFocalPETAug", RESENC_PLANS)
