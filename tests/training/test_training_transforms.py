"""PET-only transforms: CT and label bit-identical, shifts within the bound, placement in nnU-Net's pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                 SpatialTransformWithPETMotion, add_pet_transforms,
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
    before, seg_before = img.clone(), seg.clone()
    torch.manual_seed(1)
    np.random.seed(1)
    out = transform(image=img, segmentation=seg)
    assert torch.equal(out["image"][0], before[0])
    assert torch.equal(out["segmentation"], seg_before)
    assert not torch.equal(out["image"][1], before[1])
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
    out = rigid_resample(vol, np.eye(3), (2 * SPACING[0], 0.0, -SPACING[2]), SPACING)
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


@pytest.mark.parametrize("dummy_2d", [False, True])
def test_misregistration_folded_into_3d_spatial_transform(dummy_2d):
    pipeline = nnUNetTrainer.get_training_transforms(
        (24, 32, 32), (-0.5, 0.5), None, (0, 1, 2), dummy_2d, use_mask_for_norm=[False, False],
        foreground_labels=[1, 2])
    motion, intensity = PETMisregistrationTransform(1, SPACING, p=1.0), PETIntensityTransform(1, SPACING)
    out = add_pet_transforms(pipeline, [motion, intensity])
    spatial = next(i for i, t in enumerate(pipeline.transforms) if isinstance(t, SpatialTransform))
    if dummy_2d:  # the spatial transform sees 2-D slices: both follow it
        assert out.transforms[spatial + 2:spatial + 4] == [motion, intensity]
    else:
        assert isinstance(out.transforms[spatial], SpatialTransformWithPETMotion)
        assert out.transforms[spatial].motion is motion and out.transforms[spatial + 1] is intensity
    assert len(out.transforms) == len(pipeline.transforms) + (2 if dummy_2d else 1)
    img, seg = _sample()
    big = torch.nn.functional.pad(img, (4, 4, 4, 4))      # the loader hands a larger patch (in-plane here)
    res = out(image=big, segmentation=torch.nn.functional.pad(seg, (4, 4, 4, 4)))
    assert res["image"].shape == (2, 24, 32, 32) and res["segmentation"].shape == (1, 24, 32, 32)


def _spatial(**kwargs) -> SpatialTransform:
    """nnU-Net's spatial transform as nnUNetTrainer configures it (overrides in ``kwargs``)."""
    settings = dict(patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0, p_rotation=0.2,
                    rotation=(-0.5, 0.5), p_scaling=0.2, scaling=(0.7, 1.4), p_synchronize_scaling_across_axes=1,
                    bg_style_seg_sampling=False, border_mode_seg="constant", padding_value_seg=-1)
    return SpatialTransform((24, 32, 32), **{**settings, **kwargs})


def _smooth_input(shape=(48, 60, 60)):
    axes = np.meshgrid(*[np.arange(k) * s for k, s in zip(shape, SPACING)], indexing="ij")
    pet = torch.from_numpy(sum(np.sin(a / (9.0 + 3 * i)) for i, a in enumerate(axes))).float()
    ct = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    seg = (pet > 0.5).to(torch.int16)[None]
    return torch.stack([ct, pet]), seg


@pytest.mark.parametrize("spatial_kwargs", [dict(p_rotation=0, p_scaling=0),
                                            dict(p_rotation=1, rotation=(0.4, 0.4), p_scaling=1, scaling=(1.2, 1.2))],
                         ids=["crop", "rotated-scaled"])
def test_folded_motion_is_the_motion_in_the_patient_frame(spatial_kwargs):
    """Folded PET == the input PET moved about the patch centre, then nnU-Net's spatial transform.

    CT and labels are exactly the stock spatial transform's; PET matches the two-step reference
    (which interpolates twice) on the inner voxels.
    """
    from hecktor_nnunet.training.transforms import _rotation_matrix

    img, seg = _smooth_input()
    spatial = _spatial(**spatial_kwargs)
    folded = SpatialTransformWithPETMotion(spatial, PETMisregistrationTransform(1, SPACING))
    motion = {"apply": True, "shift_mm": [4.0, -3.0, 2.5], "angles_rad": list(np.deg2rad([3.0, -2.0, 3.0]))}
    np.random.seed(0), torch.manual_seed(0)
    params = spatial.get_parameters(image=img)
    out = folded.apply({"image": img.clone(), "segmentation": seg.clone()}, **params, pet_motion=motion)
    stock = spatial.apply({"image": img.clone(), "segmentation": seg.clone()}, **params)
    assert torch.equal(out["image"][0], stock["image"][0]) and torch.equal(out["segmentation"], stock["segmentation"])
    # reference: move the whole input PET about the patch centre (the input's centre here), then crop/resample
    rotation = _rotation_matrix(motion["angles_rad"])
    moved_input = torch.stack([img[0], _trilinear_reference(img[1], rotation, motion["shift_mm"], SPACING)])
    ref = spatial.apply({"image": moved_input, "segmentation": seg.clone()}, **params)["image"][1]
    inner = (slice(4, -4), slice(4, -4), slice(4, -4))
    assert (out["image"][1] - ref)[inner].abs().max() < 0.05      # a motion in the patch frame: 0.67
    assert (out["image"][1] - stock["image"][1])[inner].abs().max() > 0.1   # it did move


def test_folded_motion_falls_back_after_an_elastic_deformation():
    img, seg = _smooth_input()
    spatial = _spatial(p_rotation=0, p_scaling=0, p_elastic_deform=1.0)
    folded = SpatialTransformWithPETMotion(spatial, PETMisregistrationTransform(1, SPACING))
    motion = {"apply": True, "shift_mm": [4.0, -3.0, 2.5], "angles_rad": [0.0, 0.0, 0.0]}
    np.random.seed(0), torch.manual_seed(0)
    params = spatial.get_parameters(image=img)
    out = folded.apply({"image": img.clone(), "segmentation": seg.clone()}, **params, pet_motion=motion)
    stock = spatial.apply({"image": img.clone(), "segmentation": seg.clone()}, **params)
    assert torch.equal(out["image"][0], stock["image"][0]) and torch.equal(out["segmentation"], stock["segmentation"])
    expected = rigid_resample(stock["image"][1], np.eye(3), motion["shift_mm"], SPACING)
    torch.testing.assert_close(out["image"][1], expected)


def _trilinear_reference(vol: torch.Tensor, rotation: torch.Tensor, shift_mm, spacing) -> torch.Tensor:
    """The same rigid motion by one N-D ``grid_sample`` (trilinear/bilinear) over an ``affine_grid``."""
    from torch.nn import functional as F

    n = torch.tensor(vol.shape, dtype=torch.float64)
    sp = torch.tensor(spacing, dtype=torch.float64)
    half = (n - 1) / 2
    a = torch.diag(1 / (sp * half)) @ torch.as_tensor(rotation, dtype=torch.float64) @ torch.diag(sp * half)
    t = torch.tensor(shift_mm, dtype=torch.float64) / (sp * half)
    rev = list(range(vol.ndim))[::-1]   # affine_grid wants (x, y[, z]): last array axis first
    theta = torch.cat([a[rev][:, rev], t[rev][:, None]], dim=1).float()
    grid = F.affine_grid(theta[None], [1, 1, *vol.shape], align_corners=True)
    return F.grid_sample(vol[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]


@pytest.mark.parametrize("shape,spacing,angles", [
    ((24, 32, 32), SPACING, (3.0, -2.0, 2.5)),
    ((20, 26, 30), (6.0, 4.2, 4.2), (-3.0, 3.0, -1.0)),
    ((30, 28), (2.0, 1.5), (3.0,)),
], ids=["3d", "3d-anisotropic", "2d"])
def test_two_pass_resample_matches_one_trilinear_pass(shape, spacing, angles):
    """The two 2-D passes move the content like one trilinear resample (smooth volume, inner voxels)."""
    from hecktor_nnunet.training.transforms import _rotation_matrix

    axes = np.meshgrid(*[np.arange(k) * s for k, s in zip(shape, spacing)], indexing="ij")
    vol = torch.from_numpy(sum(np.sin(a / (7.0 + 2 * i)) for i, a in enumerate(axes))).float()
    rotation = _rotation_matrix(list(np.deg2rad(angles)))
    shift = [1.3, -2.2, 3.1][:len(shape)]
    ours, ref = rigid_resample(vol, rotation, shift, spacing), _trilinear_reference(vol, rotation, shift, spacing)
    inner = tuple(slice(3, -3) for _ in shape)
    assert ours.shape == vol.shape and ours.dtype == vol.dtype
    assert (ours - ref)[inner].abs().max() < 0.01 * vol.abs().max()
    assert (ours - vol)[inner].abs().max() > 0.1        # it did move


def test_blur_equals_separable_convolution():
    from torch.nn import functional as F

    from hecktor_nnunet.training.transforms import gaussian_blur

    vol = torch.rand(9, 11, 13, generator=torch.Generator().manual_seed(0))
    sigma = (0.4, 1.3, 0.0)
    ref = vol[None, None]
    for axis, s in enumerate(sigma):
        if s == 0:
            continue
        x = torch.arange(-math.ceil(3 * s), math.ceil(3 * s) + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (x / s) ** 2)
        k /= k.sum()
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(k)
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = len(k) // 2
        ref = F.conv3d(F.pad(ref, pad, mode="replicate"), k.view(shape))
    torch.testing.assert_close(gaussian_blur(vol, sigma), ref[0, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(gaussian_blur(vol, sigma, scale=1.5), 1.5 * ref[0, 0], atol=1e-6, rtol=0)


def test_misregistration_probability():
    img, _ = _sample()
    never = PETMisregistrationTransform(1, SPACING, p=0.0)
    assert all(never(image=img)["image"] is img for _ in range(5))
    half = PETMisregistrationTransform(1, SPACING, p=0.5)
    moved = sum(not torch.equal(half(image=img.clone())["image"][1], img[1]) for _ in range(200))
    assert 70 < moved < 130
    with pytest.raises(ValueError, match="probability"):
        PETMisregistrationTransform(1, SPACING, p=1.5)


def test_pet_transforms_leave_nnunet_random_draws_alone():
    """Under one seed, stock and PET pipelines draw the same nnU-Net augmentations: CT and labels agree."""
    stock = nnUNetTrainer.get_training_transforms(
        (24, 32, 32), (-0.5, 0.5), None, (0, 1, 2), False, use_mask_for_norm=[False, False], foreground_labels=[1, 2])
    with_pet = add_pet_transforms(stock, [PETMisregistrationTransform(1, SPACING, p=0.5),
                                          PETIntensityTransform(1, SPACING, p_blur=0.5)])
    img, seg = _sample()
    with_pet(image=img.clone(), segmentation=seg.clone())   # the PET transforms seed their own generators
    changed = 0
    for seed in range(8):
        outs = []
        for pipeline in (stock, with_pet):
            np.random.seed(seed), torch.manual_seed(seed)
            outs.append(pipeline(image=img.clone(), segmentation=seg.clone()))
        assert torch.equal(outs[0]["image"][0], outs[1]["image"][0])
        assert torch.equal(outs[0]["segmentation"], outs[1]["segmentation"])
        changed += not torch.equal(outs[0]["image"][1], outs[1]["image"][1])
    assert changed >= 6


def _draw_in_child(random, queue):
    np.random.seed(123)                                     # as nnU-Net's augmentation workers do
    queue.put(random().uniform())


def test_own_random_is_seeded_afresh_in_another_process():
    import multiprocessing as mp

    from hecktor_nnunet.training.transforms import OwnRandom

    random = OwnRandom()
    random()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_draw_in_child, args=(random, queue))
    child.start()
    drawn_there = queue.get(timeout=60)
    child.join()
    assert drawn_there != random().uniform()             # a copied generator would repeat the parent's draw


@pytest.mark.parametrize("angles,scale", [((20.0, -15.0, 25.0), 1.2), ((3.0, 3.0, -3.0), 0.8), ((70.0, 0.0, 0.0), 1.0)],
                         ids=["turned-scaled", "small-turn", "first-axis-turned-70deg"])
def test_affine_resample_matches_one_3d_pass(angles, scale):
    """Two 2-D passes (or the 3-D pass they fall back to) == one trilinear pass, zeros outside."""
    from torch.nn import functional as F

    from hecktor_nnunet.training.transforms import _rotation_matrix, affine_resample

    shape, out_shape = (30, 40, 36), (20, 24, 28)
    axes = np.meshgrid(*[np.arange(k, dtype=float) for k in shape], indexing="ij")
    vol = torch.from_numpy(sum(np.sin(a / (4.0 + i)) for i, a in enumerate(axes)) + 3.0).float()
    matrix = _rotation_matrix(list(np.deg2rad(angles))) * scale
    offset = (np.asarray(shape) - 1) / 2 - matrix @ ((np.asarray(out_shape) - 1) / 2) + [0.7, -1.3, 2.2]
    ours = affine_resample(vol, matrix, offset, out_shape, padding="zeros")
    # reference: output voxel i -> input voxel matrix @ i + offset, one trilinear grid_sample
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in out_shape], indexing="ij"), -1) @ matrix.T + offset
    grid = torch.from_numpy(idx[..., ::-1] * 2 / (np.asarray(shape[::-1]) - 1) - 1).float()[None]
    ref = F.grid_sample(vol[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]
    assert ours.shape == out_shape
    deep = torch.from_numpy(np.all((idx >= 2) & (idx <= np.asarray(shape) - 3), axis=-1))  # 2 voxels from the edge
    assert deep.float().mean() > 0.5
    assert (ours - ref)[deep].abs().max() < 0.01 * vol.abs().max()  # the transposed matrix: ~1x
    outside = torch.from_numpy(np.any((idx < -2) | (idx > np.asarray(shape) + 1), axis=-1))  # zeros padding
    assert torch.all(ours[outside] == 0)
