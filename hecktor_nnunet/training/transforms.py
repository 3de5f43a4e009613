"""PET-only batchgeneratorsv2 transforms, and the one function that inserts them into nnU-Net's pipeline.

Both transforms touch only the PET channel of the image; CT and the segmentation pass through
unchanged (the same tensors). They work on one sample ``(C, X, Y[, Z])`` after nnU-Net's spatial
transform, so they see the final patch and its voxel spacing (mm, in nnU-Net's axis order).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform


def _rotation_matrix(angles: Sequence[float]) -> torch.Tensor:
    """3x3 rotation (array-axis order) from angles (rad) about axes 0, 1, 2; 2x2 for one angle."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return torch.tensor([[c, -s], [s, c]], dtype=torch.float32)
    r = torch.eye(3)
    for axis, a in enumerate(angles):
        i, j = [k for k in range(3) if k != axis]
        m = torch.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
        r = m @ r
    return r


def _affine_grid(theta: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``F.affine_grid(theta[None], [1, 1, *shape], align_corners=True)[0]``, built by broadcasting.

    Same values (tested), several times faster on CPU: the grid is a sum of three broadcast 1-D
    ramps per component instead of a batched matrix product over every voxel.
    """
    dim = len(shape)
    ramps = []
    for comp in range(dim):  # grid component ``comp`` runs along array axis ``dim - 1 - comp``
        axis = dim - 1 - comp
        n = shape[axis]
        ramp = torch.linspace(-1, 1, n) if n > 1 else torch.zeros(1)
        view = [1] * dim
        view[axis] = n
        ramps.append(ramp.view(view))
    grid = torch.empty(*shape, dim)
    for k in range(dim):
        acc = theta[k, dim] + theta[k, 0] * ramps[0]
        for j in range(1, dim):
            acc = acc + theta[k, j] * ramps[j]
        grid[..., k] = acc
    return grid


def rigid_resample(volume: torch.Tensor, rotation: torch.Tensor, shift_mm: Sequence[float],
                   spacing: Sequence[float]) -> torch.Tensor:
    """Resample one channel ``(X, Y[, Z])`` after a rigid motion about the patch centre.

    The output at physical offset ``x`` (mm, from the centre) takes the input at ``R x + shift``:
    content moves by ``-shift`` for a pure translation. Linear interpolation, border values
    replicated at the edges.
    """
    dim = volume.ndim
    shape = torch.tensor(volume.shape, dtype=torch.float32)
    sp = torch.tensor([float(s) for s in spacing], dtype=torch.float32)
    half = torch.clamp((shape - 1) / 2, min=1e-6)  # voxels per normalised unit (align_corners=True)
    to_mm = torch.diag(sp * half)
    from_mm = torch.diag(1 / (sp * half))
    a = from_mm @ rotation @ to_mm
    t = from_mm @ torch.tensor([float(s) for s in shift_mm], dtype=torch.float32)
    # affine_grid wants (x, y[, z]) = (last array axis first)
    rev = list(range(dim))[::-1]
    theta = torch.cat([a[rev][:, rev], t[rev][:, None]], dim=1)
    grid = _affine_grid(theta, tuple(volume.shape))[None]
    out = F.grid_sample(volume[None, None].float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out[0, 0].to(volume.dtype)


class PETMisregistrationTransform(BasicTransform):
    """Small random rigid motion of the PET channel only (patient motion between PET and CT).

    Parameters
    ----------
    pet_channel : int
        Index of PET in the image channels.
    spacing : sequence of float
        Voxel spacing of the patch (mm), one per spatial axis in the array's order.
    max_shift_mm : float
        Each axis' translation is drawn uniformly from ``[-max_shift_mm, max_shift_mm]``.
    max_rotation_deg : float
        Each axis' rotation (about the patch centre) is drawn from ``[-max, max]`` degrees.
    """

    def __init__(self, pet_channel: int, spacing: Sequence[float], max_shift_mm: float = 4.0,
                 max_rotation_deg: float = 3.0) -> None:
        super().__init__()
        if max_shift_mm < 0 or max_rotation_deg < 0:
            raise ValueError("max_shift_mm and max_rotation_deg must be >= 0")
        self.pet_channel = int(pet_channel)
        self.spacing = tuple(float(s) for s in spacing)
        self.max_shift_mm = float(max_shift_mm)
        self.max_rotation_deg = float(max_rotation_deg)

    def get_parameters(self, **data_dict) -> dict:
        dim = data_dict["image"].ndim - 1
        n_angles = 3 if dim == 3 else 1
        shift = np.random.uniform(-self.max_shift_mm, self.max_shift_mm, size=dim)
        angles = np.deg2rad(np.random.uniform(-self.max_rotation_deg, self.max_rotation_deg, size=n_angles))
        return {"shift_mm": shift.tolist(), "angles_rad": angles.tolist()}

    def apply(self, data_dict: dict, **params) -> dict:
        img = data_dict["image"]
        out = img.clone()
        out[self.pet_channel] = rigid_resample(img[self.pet_channel], _rotation_matrix(params["angles_rad"]),
                                               params["shift_mm"], self.spacing)
        data_dict["image"] = out
        return data_dict


def _gaussian_kernel(sigma_vox: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma_vox)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    return k / k.sum()


def gaussian_blur(volume: torch.Tensor, sigma_vox: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur of one channel ``(X, Y[, Z])``; sigma in voxels per axis (0 skips)."""
    out = volume[None, None].float()
    for axis, s in enumerate(sigma_vox):
        if s <= 0:
            continue
        k = _gaussian_kernel(float(s))
        shape = [1, 1] + [1] * volume.ndim
        shape[2 + axis] = len(k)
        pad = [0, 0] * volume.ndim
        pad[2 * (volume.ndim - 1 - axis)] = pad[2 * (volume.ndim - 1 - axis) + 1] = len(k) // 2
        conv = F.conv3d if volume.ndim == 3 else F.conv2d
        out = conv(F.pad(out, pad, mode="replicate"), k.view(shape))
    return out[0, 0].to(volume.dtype)


class PETIntensityTransform(ImageOnlyTransform):
    """Scanner-to-scanner PET variation on the PET channel only: global scaling and resolution blur.

    The scale mimics SUV calibration differences; it acts on SUV when the dataset keeps PET
    unnormalised (``hecktor-convert --pet-norm none``) and is a contrast change after per-case
    z-scoring. The blur mimics reconstruction/resolution differences (PSF, filters).

    Parameters
    ----------
    pet_channel : int
        Index of PET in the image channels.
    spacing : sequence of float
        Voxel spacing of the patch (mm).
    scale_range : (float, float)
        Multiplier drawn uniformly.
    blur_sigma_mm : (float, float)
        Isotropic Gaussian sigma (mm) drawn uniformly when the blur is applied.
    p_blur : float
        Probability of blurring a sample.
    """

    def __init__(self, pet_channel: int, spacing: Sequence[float], scale_range: tuple[float, float] = (0.8, 1.25),
                 blur_sigma_mm: tuple[float, float] = (0.5, 3.0), p_blur: float = 0.3) -> None:
        super().__init__()
        if scale_range[0] <= 0 or scale_range[0] > scale_range[1]:
            raise ValueError(f"scale_range must be positive and increasing, got {scale_range}")
        self.pet_channel = int(pet_channel)
        self.spacing = tuple(float(s) for s in spacing)
        self.scale_range = tuple(float(s) for s in scale_range)
        self.blur_sigma_mm = tuple(float(s) for s in blur_sigma_mm)
        self.p_blur = float(p_blur)

    def get_parameters(self, **data_dict) -> dict:
        sigma = np.random.uniform(*self.blur_sigma_mm) if np.random.uniform() < self.p_blur else 0.0
        return {"scale": float(np.random.uniform(*self.scale_range)), "sigma_mm": float(sigma)}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        out = img.clone()
        pet = img[self.pet_channel]
        if params["sigma_mm"] > 0:
            pet = gaussian_blur(pet, [params["sigma_mm"] / s for s in self.spacing])
        out[self.pet_channel] = pet * params["scale"]
        return out


def insert_after_spatial(pipeline: ComposeTransforms, extra: Sequence[BasicTransform]) -> ComposeTransforms:
    """Insert ``extra`` into nnU-Net's training pipeline right after its spatial transform.

    There the sample is the final patch (3-D again if nnU-Net used pseudo-2-D augmentation), and
    nnU-Net's intensity, mirroring and label transforms still follow.

    Raises
    ------
    RuntimeError
        If the pipeline has no ``SpatialTransform`` (nnU-Net's pipeline changed).
    """
    transforms = list(pipeline.transforms)
    idx = next((i for i, t in enumerate(transforms) if isinstance(t, SpatialTransform)), None)
    if idx is None:
        raise RuntimeError("nnU-Net's training pipeline has no SpatialTransform; cannot place the PET transforms")
    if idx + 1 < len(transforms) and isinstance(transforms[idx + 1], Convert2DTo3DTransform):
        idx += 1
    transforms[idx + 1:idx + 1] = list(extra)
    return ComposeTransforms(transforms)
