"""Lymph-node sampling, and what a HECKTOR trainer hands nnU-Net: loaders, transforms, mirroring, DS shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from hecktor_nnunet.training.base_trainer import DEBUG_ENV, TINY_NETWORK
from hecktor_nnunet.training.registry import TRAINERS_DIR
from hecktor_nnunet.training.sampling import LymphNodeDataLoader, gtvn_class_key
from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                 SpatialTransformWithPETMotion)

from nnunet_training_support import DATASET_ID, DATASET_NAME


def _loader(folders, share: float, patch=(16, 16, 16)) -> tuple[LymphNodeDataLoader, nnUNetDatasetBlosc2]:
    pre = folders.preprocessed / DATASET_NAME
    ds = nnUNetDatasetBlosc2(str(pre / "nnUNetPlans_3d_fullres"))
    lm = PlansManager(str(pre / "nnUNetPlans.json")).get_label_manager(json.loads((pre / "dataset.json").read_text()))
    dl = LymphNodeDataLoader(ds, 2, patch, patch, lm, oversample_foreground_percent=0.0, node_key=2,
                             node_share=share)
    return dl, ds


def test_gtvn_key_for_labels_and_regions():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = {"background": 0, "GTVp": 1, "GTVn": 2}
    regions = {"background": 0, "GTV": [1, 2], "GTVn": [2], "GTVp": [1]}
    assert gtvn_class_key(LabelManager(labels, None), {"labels": labels}) == 2
    assert gtvn_class_key(LabelManager(regions, [1, 2, 1]), {"labels": regions}) == (2,)
    with pytest.raises(ValueError, match="GTVn"):
        gtvn_class_key(LabelManager({"background": 0, "a": 1}, None), {"labels": {"background": 0, "a": 1}})


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_configured_share_of_patches_centred_on_gtvn(nnunet_dataset, share):
    dl, _ = _loader(nnunet_dataset, share)
    node, tumour = np.array([[0, 30, 30, 30]]), np.array([[0, 20, 20, 20]])
    locations = {1: tumour, 2: node}
    np.random.seed(0)
    n = 2000
    centred = 0
    for _ in range(n):
        lb, ub = dl.get_bbox((40, 40, 40), False, locations)
        centred += [lb[i] + 8 for i in range(3)] == [30, 30, 30]
    assert centred / n == pytest.approx(share, abs=0.04)


def test_without_gtvn_voxels_falls_back_to_nnunet(nnunet_dataset):
    dl, _ = _loader(nnunet_dataset, 1.0)
    np.random.seed(0)
    lb, _ = dl.get_bbox((40, 40, 40), True, {1: np.array([[0, 20, 20, 20]]), 2: np.zeros((0, 4), int)})
    assert [x + 8 for x in lb] == [20, 20, 20]


def test_every_patch_contains_gtvn_at_share_one(nnunet_dataset):
    dl, ds = _loader(nnunet_dataset, 1.0, patch=(8, 8, 8))
    with_nodes = [k for k in ds.identifiers if len(ds.load_case(k)[3]["class_locations"][2])]
    assert with_nodes, "synthetic dataset has no GTVn"
    dl.indices = with_nodes
    np.random.seed(1)
    for _ in range(10):
        batch = dl.generate_train_batch()
        assert all((batch["target"][b] == 2).any() for b in range(2))


@pytest.fixture()
def in_process_env(nnunet_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_preprocessed", str(nnunet_dataset.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINERS_DIR))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv(DEBUG_ENV, "1")


def _trainer(name: str):
    from nnunetv2.run.run_training import get_trainer_from_args

    t = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, name, device=torch.device("cpu"))
    t.initialize()
    return t


def test_trainer_hands_nnunet_node_loader_for_training_only(in_process_env):
    t = _trainer("nnUNetTrainerHecktorFocalTverskyPETAugNodes")
    train, val = t.get_dataloaders()
    assert type(train.data_loader) is LymphNodeDataLoader and train.data_loader.node_share == 0.33
    assert type(val.data_loader) is nnUNetDataLoader
    pipeline = train.data_loader.transforms
    assert isinstance(pipeline, ComposeTransforms)
    kinds = [type(getattr(x, "transform", x)) for x in pipeline.transforms]  # RandomTransform wraps one
    assert SpatialTransformWithPETMotion in kinds and PETIntensityTransform in kinds  # the motion is folded in
    folded = next(x for x in pipeline.transforms if isinstance(x, SpatialTransformWithPETMotion))
    assert isinstance(folded.motion, PETMisregistrationTransform) and folded.motion.p == 0.5
    assert not any(isinstance(getattr(x, "transform", x), (SpatialTransformWithPETMotion, PETMisregistrationTransform,
                                                           PETIntensityTransform))
                   for x in val.data_loader.transforms.transforms)
    # deep supervision: one target per network output, same spatial shapes
    batch = next(train)
    out = t.network(batch["data"])
    assert len(out) == len(batch["target"]) == len(t.configuration_manager.pool_op_kernel_sizes) - 1
    assert [o.shape[2:] for o in out] == [tg.shape[2:] for tg in batch["target"]]
    widths = {c.out_channels for c in t.network.modules() if isinstance(c, torch.nn.Conv3d)}
    assert widths <= {TINY_NETWORK.max_features, 3}, widths  # tiny mode; 3 = segmentation heads
    loss = t.loss(out, batch["target"])
    assert torch.isfinite(loss)


def test_mirror_left_right_only(in_process_env):
    t = _trainer("nnUNetTrainerHecktorMirrorLR")
    *_, mirror_axes = t.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert mirror_axes == (t.left_right_axis(),) == t.inference_allowed_mirroring_axes
    stock = _trainer("nnUNetTrainerHecktorFocal")
    assert stock.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[-1] == (0, 1, 2)


def test_node_loader_is_built_without_rebinding_nnunets_names(in_process_env, monkeypatch):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module

    class Untouchable(nnUNetDataLoader):
        def __init__(self, *args, **kwargs):
            raise AssertionError("nnU-Net's module-level nnUNetDataLoader name was used")

    monkeypatch.setattr(nnunet_trainer_module, "nnUNetDataLoader", Untouchable)
    t = _trainer("nnUNetTrainerHecktorNodeSampling")
    train, val = t.get_dataloaders()
    assert type(train.data_loader) is LymphNodeDataLoader and type(val.data_loader) is nnUNetDataLoader
    assert nnunet_trainer_module.nnUNetDataLoader is Untouchable  # nothing rebound


def test_get_dataloaders_with_the_stock_loader_builds_what_nnunet_builds(in_process_env):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from hecktor_nnunet.training.sampling import get_dataloaders_with

    t = _trainer("nnUNetTrainerHecktorPETAug")
    ours, stock = get_dataloaders_with(t, nnUNetDataLoader), nnUNetTrainer.get_dataloaders(t)
    for a, b in zip(ours, stock):
        assert type(a) is type(b) and type(a.data_loader) is type(b.data_loader) is nnUNetDataLoader
        for attr in ("batch_size", "patch_size", "final_patch_size", "oversample_foreground_percent", "indices"):
            assert np.array_equal(np.asarray(getattr(a.data_loader, attr), dtype=object),
                                  np.asarray(getattr(b.data_loader, attr), dtype=object)), attr
        assert a.data_loader.get_do_oversample.__name__ == b.data_loader.get_do_oversample.__name__
        kinds = [[type(getattr(x, "transform", x)) for x in g.data_loader.transforms.transforms] for g in (a, b)]
        assert kinds[0] == kinds[1]


def test_hecktor_losses_wrap_nnunets_dice_ce_with_nnunets_weights(in_process_env):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from hecktor_nnunet.training.losses import FocalLoss

    t = _trainer("nnUNetTrainerHecktorFocal")
    stock = nnUNetTrainer._build_loss(t)
    assert isinstance(t.loss, DeepSupervisionWrapper) and t.loss.weight_factors == stock.weight_factors
    dice_ce, focal = t.loss.loss.terms
    assert isinstance(dice_ce, DC_and_CE_loss) and isinstance(focal, FocalLoss) and focal.gamma == t.loss_recipe.gamma
