"""PET-only batchgeneratorsv2 transforms, and the one function that inserts them into nnU-Net's pipeline.

Both transforms touch only the PET channel of the image, in place (as nnU-Net's own intensity
transforms do: the sample tensors belong to the pipeline); CT and the segmentation pass through
unchanged, and nothing is copied but the PET channel where it is resampled. They draw their
random numbers from a generator of their own (:class:`OwnRandom`), not from nnU-Net's. They work on
one sample ``(C, X, Y[, Z])`` after nnU-Net's spatial transform, so they see the final patch and its
voxel spacing (mm, in nnU-Net's axis order). A trainer states what it draws with the settings
:class:`PETMisregistration` and :class:`PETIntensity`, which build the transforms for its dataset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform


def _rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """3x3 rotation (array-axis order) from angles (rad) about axes 0, 1, 2; 2x2 for one angle."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    r = np.eye(3)
    for axis, a in enumerate(angles):
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
        r = m @ r
    return r


@lru_cache(maxsize=32)
def _ramp(n: int) -> torch.Tensor:
    """``0, 1, ..., n - 1`` (float32), shared: the grids of one patch size are built from the same ramps."""
    return torch.arange(n, dtype=torch.float32)


def _plane_grid(coef_x: Sequence[float], coef_y: Sequence[float], shape: tuple[int, int, int]) -> torch.Tensor:
    """A ``(N, H, W, 2)`` grid for 2-D ``grid_sample`` whose two components are affine in the indices.

    Component ``x`` is ``coef_x[0] * n + coef_x[1] * h + coef_x[2] * w + coef_x[3]`` at index
    ``(n, h, w)`` (``y`` likewise), built by broadcasting 1-D ramps (no per-voxel products).
    """
    n, h, w = shape
    out = torch.empty(n, h, w, 2)
    ramps = [_ramp(k) for k in shape]
    for k, c in enumerate((coef_x, coef_y)):
        plane = (ramps[1] * c[1]).view(-1, 1) + (ramps[2] * c[2] + c[3])
        torch.add(plane, (ramps[0] * c[0]).view(-1, 1, 1), out=out[..., k])
    return out


def _normalised(coefs: Sequence[float], size: int) -> list[float]:
    """Affine voxel coordinate along an axis of ``size`` voxels -> grid_sample's (align_corners=True)."""
    if size <= 1:
        return [0.0] * 4
    scale = 2.0 / (size - 1)
    return [float(c) * scale for c in coefs[:3]] + [float(coefs[3]) * scale - 1.0]


def _sample_2d(planes: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinear ``grid_sample`` of ``planes`` ``(N, H, W)`` (``padding``: grid_sample's padding_mode)."""
    return F.grid_sample(planes[:, None], grid, mode="bilinear", padding_mode=padding, align_corners=True)[:, 0]


def affine_resample(volume: torch.Tensor, matrix: np.ndarray, offset: Sequence[float],
                    out_shape: Sequence[int] | None = None, padding: str = "border") -> torch.Tensor:
    """Resample one channel ``(X, Y[, Z])``: output voxel ``i`` takes the input at ``matrix @ i + offset``.

    Coordinates are voxel indices (array-axis order); linear interpolation; ``padding`` is
    ``grid_sample``'s padding_mode for points outside the input (``"border"``, ``"zeros"``,
    ``"reflection"``).

    A 3-D volume is resampled in two passes of PyTorch's 2-D ``grid_sample`` (vectorised on CPU,
    its 3-D one is not: about 10x slower per voxel): first every slice of the first axis that the
    output reaches is sampled in-plane where the output voxels taking their value from that depth
    need it, then every voxel is interpolated along the first axis between those slices. The
    composition is the affine map exactly; the interpolation is linear along each axis, like
    trilinear, but in-plane positions are those of the slices a value is taken from. Needs
    ``|matrix[0, 0]| >= 0.5`` (a first axis turned by at most 60 degrees); otherwise one 3-D pass.
    """
    m, b = np.asarray(matrix, dtype=float), np.asarray([float(o) for o in offset])
    n_in = tuple(volume.shape)
    n = tuple(int(k) for k in (out_shape or n_in))
    vol = volume.float()
    if volume.ndim == 2:  # one 2-D pass
        grid = _plane_grid(_normalised([0.0, m[1, 0], m[1, 1], b[1]], n_in[1]),
                           _normalised([0.0, m[0, 0], m[0, 1], b[0]], n_in[0]), (1, *n))
        return _sample_2d(vol[None], grid, padding)[0].to(volume.dtype)
    if abs(m[0, 0]) < 0.5:
        return _affine_resample_3d(vol, m, b, n, padding).to(volume.dtype)
    m, b = m.tolist(), b.tolist()  # plain floats: a dozen scalar steps, cheaper than NumPy's
    # source depth z'(i) = m[0] . i + b[0]: the input slices the output reaches
    reach = [c * (k - 1) for c, k in zip(m[0], n)]
    lowest, highest = b[0] + sum(min(r, 0.0) for r in reach), b[0] + sum(max(r, 0.0) for r in reach)
    first = int(min(max(math.floor(lowest), 0), n_in[0] - 1))
    last = int(max(min(math.floor(highest) + 1, n_in[0] - 1), first))
    # pass 1: slice k sampled in-plane at the position its depth needs (i0 eliminated through z' = k)
    rows = [[m[r][0] / m[0][0], m[r][1] - m[r][0] * m[0][1] / m[0][0], m[r][2] - m[r][0] * m[0][2] / m[0][0],
             b[r] - m[r][0] * b[0] / m[0][0] + m[r][0] / m[0][0] * first] for r in (1, 2)]
    planes = _sample_2d(vol[first:last + 1], _plane_grid(_normalised(rows[1], n_in[2]), _normalised(rows[0], n_in[1]),
                                                         (last + 1 - first, n[1], n[2])), padding)
    # pass 2: along the first axis; one (axis 0, axis 2) plane per index of axis 1 (rows stay contiguous)
    depth_coefs = [m[0][1], m[0][0], m[0][2], b[0] - first]
    if first == last:  # one slice: no interpolation along the first axis, only the padding beyond it
        planes = torch.cat([planes, planes if padding == "border" else torch.zeros_like(planes)])
    grid = _plane_grid(_normalised([0.0, 0.0, 1.0, 0.0], n[2]), _normalised(depth_coefs, planes.shape[0]),
                       (n[1], n[0], n[2]))
    return _sample_2d(planes.permute(1, 0, 2), grid, padding).permute(1, 0, 2).to(volume.dtype)


def _affine_resample_3d(vol: torch.Tensor, m: np.ndarray, b: np.ndarray, n: tuple[int, ...],
                        padding: str) -> torch.Tensor:
    """:func:`affine_resample` in one 3-D ``grid_sample`` pass (for large turns of the first axis)."""
    ramps = [torch.arange(k, dtype=torch.float64) for k in n]
    grid = torch.empty(*n, 3)
    for comp, axis in enumerate((2, 1, 0)):  # grid_sample wants (x, y, z): last array axis first
        c = _normalised([m[axis, 0], m[axis, 1], m[axis, 2], b[axis]], vol.shape[axis])
        grid[..., comp] = ((ramps[0] * c[0]).view(-1, 1, 1) + (ramps[1] * c[1]).view(1, -1, 1)
                           + (ramps[2] * c[2] + c[3]).view(1, 1, -1))
    return F.grid_sample(vol[None, None], grid[None], mode="bilinear", padding_mode=padding, align_corners=True)[0, 0]


def rigid_motion(rotation: np.ndarray, shift_mm: Sequence[float], spacing: Sequence[float]) -> np.ndarray:
    """The rigid motion ``x -> R x + shift`` (mm) in voxel units: ``S^-1 R S`` and ``S^-1 shift``."""
    sp = np.asarray([float(s) for s in spacing])
    return np.asarray(rotation, dtype=float) * sp[None, :] / sp[:, None], np.asarray(shift_mm, dtype=float) / sp


def rigid_resample(volume: torch.Tensor, rotation: np.ndarray | torch.Tensor, shift_mm: Sequence[float],
                   spacing: Sequence[float]) -> torch.Tensor:
    """Resample one channel ``(X, Y[, Z])`` after a rigid motion about the patch centre.

    The output at physical offset ``x`` (mm, from the centre) takes the input at ``R x + shift``:
    content moves by ``-shift`` for a pure translation. Linear interpolation (two 2-D passes, see
    :func:`affine_resample`), border values replicated at the edges.
    """
    m, t = rigid_motion(rotation, shift_mm, spacing)
    centre = (np.asarray(volume.shape, dtype=float) - 1) / 2
    return affine_resample(volume, m, centre - m @ centre + t)


class OwnRandom:
    """The random generator of one transform in one process, seeded from NumPy's global one on first use.

    The PET transforms draw from it rather than from the global generators that nnU-Net's data
    loader and transforms use, so adding them to a pipeline leaves every nnU-Net draw (patches,
    spatial and intensity augmentations) as it was: under one seed a trainer with PET augmentation
    sees the same patches as one without. A copy that reaches another process (a data-augmentation
    worker) is seeded afresh there, from that worker's own global generator.
    """

    def __init__(self) -> None:
        self._pid: int | None = None
        self._generator: np.random.Generator | None = None

    def __call__(self) -> np.random.Generator:
        if self._pid != os.getpid():
            self.seed(np.random.randint(0, 2 ** 31 - 1))
        return self._generator

    def seed(self, seed: int) -> None:
        """Restart the generator from ``seed`` in this process (NumPy's global generator untouched)."""
        self._generator = np.random.default_rng(seed)
        self._pid = os.getpid()


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
    p : float
        Probability that a sample is moved at all (drawn from the transform's :class:`OwnRandom`).
    """

    def __init__(self, pet_channel: int, spacing: Sequence[float], max_shift_mm: float = 4.0,
                 max_rotation_deg: float = 3.0, p: float = 1.0) -> None:
        super().__init__()
        if max_shift_mm < 0 or max_rotation_deg < 0:
            raise ValueError("max_shift_mm and max_rotation_deg must be >= 0")
        if not 0 <= p <= 1:
            raise ValueError(f"p must be a probability, got {p}")
        self.pet_channel = int(pet_channel)
        self.spacing = tuple(float(s) for s in spacing)
        self.max_shift_mm = float(max_shift_mm)
        self.max_rotation_deg = float(max_rotation_deg)
        self.p = float(p)
        self.random = OwnRandom()

    def get_parameters(self, **data_dict) -> dict:
        rng = self.random()
        if rng.uniform() >= self.p:
            return {"apply": False}
        dim = data_dict["image"].ndim - 1
        n_angles = 3 if dim == 3 else 1
        shift = rng.uniform(-self.max_shift_mm, self.max_shift_mm, size=dim)
        angles = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg, size=n_angles))
        return {"apply": True, "shift_mm": shift.tolist(), "angles_rad": angles.tolist()}

    def apply(self, data_dict: dict, **params) -> dict:
        if not params.get("apply", True):
            return data_dict
        img = data_dict["image"]
        img[self.pet_channel] = rigid_resample(img[self.pet_channel], _rotation_matrix(params["angles_rad"]),
                                               params["shift_mm"], self.spacing)
        return data_dict


class SpatialTransformWithPETMotion(BasicTransform):
    """nnU-Net's spatial transform, with the PET misregistration done in the same resampling.

    Every other channel and the segmentation are exactly what ``spatial`` makes of them. When
    ``motion`` moves a sample, PET is taken once from the (larger) input at the patch position
    moved rigidly in the patient's frame (about the patch centre): no second interpolation of PET,
    no extra pass over the patch, and no made-up border (PET beyond the patch comes from the input).
    Samples with an elastic deformation, and spatial transforms whose grid convention differs
    (``align_corners``, reflection padding), get the motion after the spatial transform instead.

    Parameters
    ----------
    spatial : SpatialTransform
        nnU-Net's transform (its settings are used as they are).
    motion : PETMisregistrationTransform
        Which channel, the spacing, the bounds and the probability of the motion.
    """

    def __init__(self, spatial: SpatialTransform, motion: PETMisregistrationTransform) -> None:
        super().__init__()
        self.spatial, self.motion = spatial, motion

    def get_parameters(self, **data_dict) -> dict:
        return {**self.spatial.get_parameters(**data_dict), "pet_motion": self.motion.get_parameters(**data_dict)}

    def apply(self, data_dict: dict, **params) -> dict:
        motion = params.pop("pet_motion")
        if not motion["apply"]:
            return self.spatial.apply(data_dict, **params)
        padding = {"zeros": "zeros", "constant": "zeros", "border": "border"}.get(self.spatial.padding_mode_image)
        if (params.get("elastic_offsets") is not None or self.spatial.align_corners or padding is None
                or data_dict.get("image") is None):
            return self.motion.apply(self.spatial.apply(data_dict, **params), **motion)
        img, c = data_dict["image"], self.motion.pet_channel
        pet = self._moved_pet(img[c], params, motion, padding)
        if params["grid"] is None:  # a crop: the other channels are views, PET is written over its own
            out = self.spatial.apply(data_dict, **params)
            out["image"][c] = pet
            return out
        # resample the other channels only (a view when PET is the first or last channel)
        last = img.shape[0] - 1
        data_dict["image"] = img[:c] if c == last else img[1:] if c == 0 else torch.cat([img[:c], img[c + 1:]])
        out = self.spatial.apply(data_dict, **params)
        out["image"] = torch.cat([out["image"][:c], pet[None], out["image"][c:]])
        return out

    def _moved_pet(self, pet: torch.Tensor, params: dict, motion: dict, padding: str) -> torch.Tensor:
        """PET of the output patch: input voxel ``c + M (A (i - h) ) + t`` for output voxel ``i``.

        ``A`` is the spatial transform's affine (identity for a crop), ``h`` the patch centre
        (voxels), ``c`` the input voxel at the patch centre and ``M``, ``t`` the motion (voxels).
        """
        patch = np.asarray(self.spatial.patch_size, dtype=float)
        half = (patch - 1) / 2
        if params["grid"] is None:  # crop_tensor's window: it starts at floor(centre) - patch // 2
            start = [math.floor(c) - int(p) // 2 for c, p in zip(params["center_location_in_pixels"], patch)]
            affine, centre = np.eye(len(patch)), np.asarray(start) + half
        else:  # grid_sample(align_corners=False) reads input voxel A (i - h) + centre - 0.5
            affine, centre = np.asarray(params["affine"], dtype=float), np.asarray(
                params["center_location_in_pixels"], dtype=float) - 0.5
        m, t = rigid_motion(_rotation_matrix(motion["angles_rad"]), motion["shift_mm"], self.motion.spacing)
        matrix = m @ affine
        fill = float(self.spatial.padding_value_image) if self.spatial.padding_mode_image == "constant" else 0.0
        moved = affine_resample(pet - fill if fill else pet, matrix, centre + t - matrix @ half,
                                tuple(int(p) for p in patch), padding)
        return moved + fill if fill else moved


def _gaussian_kernel(sigma_vox: float) -> list[float]:
    """Normalised Gaussian weights at ``-r..r`` voxels, ``r = ceil(3 sigma)`` (at least 1); plain floats."""
    radius = max(1, int(math.ceil(3 * sigma_vox)))
    weights = [math.exp(-0.5 * (x / sigma_vox) ** 2) for x in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def gaussian_blur(volume: torch.Tensor, sigma_vox: Sequence[float], scale: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of one channel ``(X, Y[, Z])``, times ``scale``; sigma in voxels (0 skips).

    Border values are replicated. Each axis is a weighted sum of shifted views of the volume (a
    few taps: about 10x cheaper than ``conv3d`` on CPU for these 1-D kernels); ``scale`` rides on
    the first axis' weights.
    """
    out = volume.float()
    for axis, s in enumerate(sigma_vox):
        if s <= 0:
            continue
        k = [w * scale for w in _gaussian_kernel(float(s))]
        scale = 1.0
        r, n = len(k) // 2, out.shape[axis]
        acc = out * k[r]
        for j in range(1, r + 1):  # symmetric taps: x[i - j] and x[i + j], the border voxel beyond the edge
            w, inner = k[r + j], max(n - j, 0)
            if inner:
                acc.narrow(axis, j, inner).add_(out.narrow(axis, 0, inner), alpha=w)
                acc.narrow(axis, 0, inner).add_(out.narrow(axis, j, inner), alpha=w)
            edge = min(j, n)
            acc.narrow(axis, 0, edge).add_(out.narrow(axis, 0, 1), alpha=w)
            acc.narrow(axis, n - edge, edge).add_(out.narrow(axis, n - 1, 1), alpha=w)
        out = acc
    return (out * scale if scale != 1.0 else out).to(volume.dtype)


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
        self.random = OwnRandom()

    def get_parameters(self, **data_dict) -> dict:
        rng = self.random()
        sigma = rng.uniform(*self.blur_sigma_mm) if rng.uniform() < self.p_blur else 0.0
        return {"scale": float(rng.uniform(*self.scale_range)), "sigma_mm": float(sigma)}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        pet = img[self.pet_channel]
        if params["sigma_mm"] > 0:
            pet.copy_(gaussian_blur(pet, [params["sigma_mm"] / s for s in self.spacing], params["scale"]))
        else:
            pet.mul_(params["scale"])
        return img


@dataclass(frozen=True)
class PETMisregistration:
    """A trainer's PET misregistration: the settings of its :class:`PETMisregistrationTransform`.

    Attributes
    ----------
    max_shift_mm, max_rotation_deg : float
        Largest shift (mm) and rotation (degrees) per axis.
    p : float
        Share of patches moved (not every patient moves).
    """

    max_shift_mm: float = 4.0
    max_rotation_deg: float = 3.0
    p: float = 0.5

    def transform(self, pet_channel: int, spacing: Sequence[float]) -> PETMisregistrationTransform:
        """The transform for a dataset's PET channel and patch spacing (mm)."""
        return PETMisregistrationTransform(pet_channel, spacing, self.max_shift_mm, self.max_rotation_deg, p=self.p)


@dataclass(frozen=True)
class PETIntensity:
    """A trainer's PET intensity variation: the settings of its :class:`PETIntensityTransform`.

    Attributes
    ----------
    scale_range : (float, float)
        Global multiplier range.
    blur_sigma_mm : (float, float)
        Gaussian sigma range (mm) of the blur.
    p_blur : float
        Share of patches blurred.
    """

    scale_range: tuple[float, float] = (0.8, 1.25)
    blur_sigma_mm: tuple[float, float] = (0.5, 3.0)
    p_blur: float = 0.3

    def transform(self, pet_channel: int, spacing: Sequence[float]) -> PETIntensityTransform:
        """The transform for a dataset's PET channel and patch spacing (mm)."""
        return PETIntensityTransform(pet_channel, spacing, self.scale_range, self.blur_sigma_mm, self.p_blur)


def _spatial_index(transforms: list) -> int:
    idx = next((i for i, t in enumerate(transforms)
                if isinstance(t, (SpatialTransform, SpatialTransformWithPETMotion))), None)
    if idx is None:
        raise RuntimeError("nnU-Net's training pipeline has no SpatialTransform; cannot place the PET transforms")
    return idx


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
    idx = _spatial_index(transforms)
    if idx + 1 < len(transforms) and isinstance(transforms[idx + 1], Convert2DTo3DTransform):
        idx += 1
    transforms[idx + 1:idx + 1] = list(extra)
    return ComposeTransforms(transforms)


def add_pet_transforms(pipeline: ComposeTransforms, extra: Sequence[BasicTransform]) -> ComposeTransforms:
    """Put the PET transforms into nnU-Net's training pipeline.

    A :class:`PETMisregistrationTransform` is folded into nnU-Net's spatial transform
    (:class:`SpatialTransformWithPETMotion`) when that transform makes the final patch; with
    pseudo-2-D augmentation (the spatial transform sees 2-D slices) it follows the spatial transform
    like the other PET transforms, which are inserted right after it (:func:`insert_after_spatial`).
    """
    transforms = list(pipeline.transforms)
    idx = _spatial_index(transforms)
    pseudo_2d = idx + 1 < len(transforms) and isinstance(transforms[idx + 1], Convert2DTo3DTransform)
    motion = next((t for t in extra if isinstance(t, PETMisregistrationTransform)), None)
    if motion is not None and not pseudo_2d and isinstance(transforms[idx], SpatialTransform):
        transforms[idx] = SpatialTransformWithPETMotion(transforms[idx], motion)
        extra = [t for t in extra if t is not motion]
    return insert_after_spatial(ComposeTransforms(transforms), extra)
