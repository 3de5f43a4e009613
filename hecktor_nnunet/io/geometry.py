"""The one place for geometry: grids, index boxes, overlap, resampling, crop and uncrop.

Conventions: SimpleITK index order ``(x, y, z)`` everywhere in this module; numpy arrays from
``sitk.GetArrayFromImage`` are ``(z, y, x)``. Physical units are millimetres.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


@dataclass(frozen=True)
class Grid:
    """A voxel grid: size (voxels), spacing (mm), origin (mm), direction (row-major 3x3)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        """The grid of a SimpleITK image."""
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(o) for o in image.GetOrigin()),
            tuple(float(d) for d in image.GetDirection()),
        )

    @classmethod
    def from_dict(cls, d: dict) -> "Grid":
        return cls(tuple(d["size"]), tuple(d["spacing"]), tuple(d["origin"]), tuple(d["direction"]))

    def to_dict(self) -> dict:
        return {"size": list(self.size), "spacing": list(self.spacing),
                "origin": list(self.origin), "direction": list(self.direction)}

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices ``(n, 3)`` to physical points ``(n, 3)``."""
        index = np.atleast_2d(np.asarray(index, dtype=float))
        return np.asarray(self.origin) + (index * np.asarray(self.spacing)) @ self.matrix.T

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points ``(n, 3)`` to continuous indices ``(n, 3)``."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        return ((points - np.asarray(self.origin)) @ self.matrix) / np.asarray(self.spacing)

    def corners(self) -> np.ndarray:
        """The 8 physical corners of the grid's field of view (voxel edges, not centres)."""
        lo = -0.5 * np.ones(3)
        hi = np.asarray(self.size, dtype=float) - 0.5
        idx = np.array(list(itertools.product(*zip(lo, hi))))
        return self.index_to_physical(idx)

    def reference(self, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
        """An empty image with this grid (for resampling onto it)."""
        img = sitk.Image([int(s) for s in self.size], pixel_type)
        self.apply(img)
        return img

    def apply(self, image: sitk.Image) -> sitk.Image:
        """Stamp this grid's spacing, origin and direction onto ``image`` (sizes must match)."""
        if tuple(image.GetSize()) != tuple(self.size):
            raise ValueError(f"image size {image.GetSize()} does not match grid size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def same_as(self, other: "Grid", atol: float = 1e-3) -> bool:
        """True when both grids describe the same voxels (within ``atol`` mm / direction units)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    @property
    def superior_axis(self) -> int:
        """Index axis (0=x, 1=y, 2=z) most aligned with the physical head-foot axis."""
        return int(np.argmax(np.abs(self.matrix[2, :])))

    @property
    def superior_sign(self) -> int:
        """+1 when increasing index along :attr:`superior_axis` moves toward the head (LPS +z)."""
        return 1 if self.matrix[2, self.superior_axis] > 0 else -1


@dataclass(frozen=True)
class IndexBox:
    """A box of voxels on a grid: ``start`` and ``size`` in index order ``(x, y, z)``."""

    start: tuple[int, int, int]
    size: tuple[int, int, int]

    @classmethod
    def full(cls, grid: Grid) -> "IndexBox":
        return cls((0, 0, 0), tuple(grid.size))

    @classmethod
    def from_bounds(cls, lo: Sequence[int], hi: Sequence[int]) -> "IndexBox":
        """Box from inclusive-exclusive bounds ``[lo, hi)``."""
        return cls(tuple(int(v) for v in lo), tuple(int(h) - int(l) for l, h in zip(lo, hi)))

    @classmethod
    def from_dict(cls, d: dict) -> "IndexBox":
        return cls(tuple(d["start"]), tuple(d["size"]))

    def to_dict(self) -> dict:
        return {"start": list(self.start), "size": list(self.size)}

    @property
    def stop(self) -> tuple[int, int, int]:
        return tuple(s + n for s, n in zip(self.start, self.size))

    @property
    def empty(self) -> bool:
        return any(n <= 0 for n in self.size)

    def intersect(self, other: "IndexBox") -> "IndexBox":
        lo = np.maximum(self.start, other.start)
        hi = np.minimum(self.stop, other.stop)
        return IndexBox.from_bounds(lo, np.maximum(hi, lo))

    def union(self, other: "IndexBox") -> "IndexBox":
        return IndexBox.from_bounds(np.minimum(self.start, other.start), np.maximum(self.stop, other.stop))

    def contains(self, other: "IndexBox") -> bool:
        return all(a <= b for a, b in zip(self.start, other.start)) and all(
            a >= b for a, b in zip(self.stop, other.stop))

    def slices(self) -> tuple[slice, slice, slice]:
        """Numpy slices for a ``(z, y, x)`` array."""
        return tuple(slice(self.start[a], self.stop[a]) for a in (2, 1, 0))

    def subgrid(self, grid: Grid) -> Grid:
        """The grid of the voxels inside this box (same spacing and direction)."""
        origin = grid.index_to_physical(np.asarray(self.start, dtype=float))[0]
        return Grid(tuple(self.size), grid.spacing, tuple(float(o) for o in origin), grid.direction)


def bounding_box(mask: np.ndarray) -> IndexBox | None:
    """Index box (x, y, z order) of the non-zero voxels of a ``(z, y, x)`` array, or None.

    Uses axis projections (no full ``np.nonzero``): fast on 512x512x200 label maps.
    """
    lo, hi = [0, 0, 0], [0, 0, 0]
    for arr_axis, idx_axis in ((0, 2), (1, 1), (2, 0)):
        other = tuple(a for a in range(3) if a != arr_axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if len(hits) == 0:
            return None
        lo[idx_axis], hi[idx_axis] = int(hits[0]), int(hits[-1]) + 1
    return IndexBox.from_bounds(lo, hi)


def overlap_box(reference: Grid, other: Grid) -> IndexBox:
    """Voxels of ``reference`` whose centres lie inside ``other``'s field of view.

    Both grids must share one physical frame (as HECKTOR's CT and PET do).
    """
    idx = reference.physical_to_index(other.corners())
    lo = np.ceil(idx.min(axis=0) - 1e-6).astype(int)
    hi = np.floor(idx.max(axis=0) + 1e-6).astype(int) + 1
    return IndexBox.from_bounds(lo, hi).intersect(IndexBox.full(reference))


def crop(image: sitk.Image, box: IndexBox) -> sitk.Image:
    """The part of ``image`` inside ``box`` (exact, keeps physical positions)."""
    return sitk.RegionOfInterest(image, [int(s) for s in box.size], [int(s) for s in box.start])


def uncrop(image: sitk.Image, box: IndexBox, full: Grid, fill: float = 0) -> sitk.Image:
    """Inverse of :func:`crop`: place ``image`` at ``box`` inside an otherwise ``fill`` image on ``full``."""
    if tuple(image.GetSize()) != tuple(box.size):
        raise ValueError(f"image size {image.GetSize()} does not match crop box size {box.size}")
    arr = sitk.GetArrayViewFromImage(image)
    out = np.full(tuple(reversed(full.size)), fill, dtype=arr.dtype)
    out[box.slices()] = arr
    result = sitk.GetImageFromArray(out)
    return full.apply(result)


def resample(image: sitk.Image, grid: Grid, interpolator: str = "linear", default: float = 0.0,
             pixel_type: int | None = None) -> sitk.Image:
    """Resample ``image`` onto ``grid`` (identity transform: both share one physical frame).

    Parameters
    ----------
    interpolator : {"nearest", "linear", "bspline"}
        Use "nearest" for label maps.
    default : float
        Value outside ``image``'s field of view (0 for labels and SUV, -1024 for CT in HU).
    """
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}; choose one of {sorted(INTERPOLATORS)}")
    out_type = image.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(image, grid.reference(out_type), sitk.Transform(), INTERPOLATORS[interpolator],
                         float(default), out_type)


def grid_with_spacing(grid: Grid, box: IndexBox, spacing: Sequence[float]) -> Grid:
    """A grid with ``spacing`` (mm) covering the same physical box as ``box`` on ``grid``.

    The new grid keeps ``grid``'s direction; its field of view starts at the same corner and
    covers at least the box's extent.
    """
    spacing = np.asarray(spacing, dtype=float)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be three positive numbers in mm, got {list(spacing)}")
    extent = np.asarray(box.size) * np.asarray(grid.spacing)
    size = np.maximum(1, np.round(extent / spacing - 1e-6)).astype(int)
    corner_index = np.asarray(box.start, dtype=float) - 0.5
    corner = grid.index_to_physical(corner_index)[0]
    origin = corner + grid.matrix @ (spacing / 2)
    return Grid(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                tuple(float(o) for o in origin), grid.direction)


def voxel_volume_ml(grid_or_image: Grid | sitk.Image) -> float:
    """Volume of one voxel in millilitres."""
    spacing = grid_or_image.spacing if isinstance(grid_or_image, Grid) else grid_or_image.GetSpacing()
    return float(np.prod(spacing)) / 1000.0
