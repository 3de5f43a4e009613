"""PET-only transforms: CT and label bit-identical, shifts within the bound, placement in nnU-Net's pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                 insert_after_spatial, rigid_resample)

SPACING = (3.0, 2.0, 2.0)


def _sample(seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(2, 24, 32, 32, generator=g)
    z, y, x = torch.meshgrid(torch.arange(24.), torch.arange(32.), torch.arange(32.), indexing="ij")
    img[1] = torch.exp(-(((z - 12) * 3) ** 2 + ((y - 16) * 2) ** 2 + ((x - 16) * 2) ** 2) / (2 * 6.0 ** 2))
    seg = torch.randint(0, 3, (1, 24, 32, 32), generator=g).to(torch.int16)
    return img, seg


def _centroid_mm(vol: torch.Tensor) -> np.ndarray:
    v = vol.numpy().astype(float)
    idx = np.indices(v.shape).reshape(3, -1)
    return (idx * v.ravel()).sum(1) / v.sum() * np.array(SPACING)


@pytest.mark.parametrize("transform", [
    PETMisregistrationTransform(1, SPACING, max_shift_mm=4.0, max_rotation_deg=3.0),
    PETIntensityTransform(1, SPACING, p_blur=1.0),
], ids=["misregistration", "intensity"])
def test_changes_pet_only(transform):
    img, seg = _sample()
    ct_before, seg_before = img[0].clone(), seg.clone()
    torch.manual_seed(1)
    np.random.seed(1)
    out = transform(image=img, segmentation=seg)
    assert torch.equal(out["image"][0], ct_before)
    assert torch.equal(out["segmentation"], seg_before)
    assert not torch.equal(out["image"][1], img[1])
    assert out["image"].shape == img.shape and out["image"].dtype == img.dtype


def test_misregistration_shift_stays_within_bound():
    img, seg = _sample()
    t = PETMisregistrationTransform(1, SPACING, max_shift_mm=4.0, max_rotation_deg=0.0)
    c0 = _centroid_mm(img[1])
    np.random.seed(0)
    for _ in range(20):
        params = t.get_parameters(image=img)
        assert np.all(np.abs(params["shift_mm"]) <= 4.0)
        out = t.apply({"image": img.clone(), "segmentation": seg}, **params)
        moved = _centroid_mm(out["image"][1]) - c0
        np.testing.assert_allclose(moved, -np.array(params["shift_mm"]), atol=0.05)  # content moves by -shift
        assert np.all(np.abs(moved) <= 4.0 + 0.05)


def test_integer_voxel_shift_is_exact_translation():
    vol = torch.randn(10, 12, 14)
    out = rigid_resample(vol, torch.eye(3), (2 * SPACING[0], 0.0, -SPACING[2]), SPACING)
    # output[i] = input[i + 2] along axis 0, output[..., k] = input[..., k - 1] along axis 2
    torch.testing.assert_close(out[:-2, :, 1:], vol[2:, :, :-1], atol=1e-5, rtol=0)


def test_rotation_keeps_patch_centre():
    img, _ = _sample()
    t = PETMisregistrationTransform(1, SPACING, max_shift_mm=0.0, max_rotation_deg=3.0)
    out = t.apply({"image": img.clone()}, shift_mm=[0.0, 0.0, 0.0], angles_rad=list(np.deg2rad([3.0, -3.0, 3.0])))
    np.testing.assert_allclose(_centroid_mm(out["image"][1]), _centroid_mm(img[1]), atol=0.1)
    assert not torch.equal(out["image"][1], img[1])


def test_intensity_scale_within_range_without_blur():
    img, _ = _sample()
    t = PETIntensityTransform(1, SPACING, scale_range=(0.8, 1.25), p_blur=0.0)
    np.random.seed(3)
    for _ in range(10):
        out = t(image=img.clone())["image"][1]
        ratio = (out / img[1])[img[1].abs() > 1e-3]
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), atol=1e-4)
        assert 0.8 <= ratio[0].item() <= 1.25


def test_blur_preserves_mass_and_lowers_peak():
    img, _ = _sample()
    out = PETIntensityTransform(1, SPACING, scale_range=(1.0, 1.0), blur_sigma_mm=(3.0, 3.0), p_blur=1.0)(
        image=img.clone())["image"][1]
    assert out.max() < img[1].max()
    assert out.sum().item() == pytest.approx(img[1].sum().item(), rel=1e-3)


@pytest.mark.parametrize("dummy_2d", [False, True])
def test_inserted_right_after_nnunet_spatial_transform(dummy_2d):
    pipeline = nnUNetTrainer.get_training_transforms(
        (24, 32, 32), (-0.5, 0.5), None, (0, 1, 2), dummy_2d, use_mask_for_norm=[False, False],
        foreground_labels=[1, 2])
    extra = [PETMisregistrationTransform(1, SPACING), PETIntensityTransform(1, SPACING)]
    out = insert_after_spatial(pipeline, extra)
    types = [type(t) for t in out.transforms]
    anchor = types.index(Convert2DTo3DTransform) if dummy_2d else types.index(SpatialTransform)
    assert out.transforms[anchor + 1:anchor + 3] == extra
    assert len(out.transforms) == len(pipeline.transforms) + 2
    img, seg = _sample()
    res = out(image=img[:, :, :, :], segmentation=seg)
    assert res["image"].shape == (2, 24, 32, 32)


@pytest.mark.parametrize("shape", [(7, 5, 4), (6, 9), (1, 5, 3)])
def test_broadcast_affine_grid_equals_torch(shape):
    from torch.nn import functional as F

    from hecktor_nnunet.training.transforms import _affine_grid

    dim = len(shape)
    theta = torch.eye(dim, dim + 1) + 0.05 * torch.randn(dim, dim + 1, generator=torch.Generator().manual_seed(0))
    ref = F.affine_grid(theta[None], [1, 1, *shape], align_corners=True)[0]
    assert torch.allclose(_affine_grid(theta, shape), ref, atol=1e-6)
