"""Where to crop: the box (on the CT grid) that a converted case keeps."""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, overlap_box

log = logging.getLogger(__name__)

BODY_HU = -500.0          # CT voxels above this are body
MIN_BODY_AREA_MM2 = 2000  # a slice with less body than this (20 cm^2) is above the head
TOP_MARGIN_MM = 20.0      # skull and scalp above the top of the brain uptake


def head_top_from_pet(pet: sitk.Image, ct_grid: Grid, brain_suv: float) -> float | None:
    """CT index (continuous, along the superior axis) of the top of the brain uptake, or None."""
    pet_grid = Grid.of(pet)
    arr = sitk.GetArrayViewFromImage(pet)  # (z, y, x)
    axis = 2 - pet_grid.superior_axis
    hot = np.count_nonzero(arr > brain_suv, axis=tuple(a for a in range(3) if a != axis))
    min_voxels = max(1, int(5000.0 / np.prod(pet_grid.spacing)))  # 5 mL of uptake in a slab
    idx = np.nonzero(hot >= min(min_voxels, max(1, hot.max() // 4)))[0] if hot.max() > 0 else []
    if len(idx) == 0:
        return None
    top = idx.max() if pet_grid.superior_sign > 0 else idx.min()
    point = np.zeros(3)
    point[pet_grid.superior_axis] = top
    phys = pet_grid.index_to_physical(point)[0]
    phys[2] += TOP_MARGIN_MM
    return float(ct_grid.physical_to_index(phys)[0][ct_grid.superior_axis])


def headneck_box(ct: sitk.Image, pet: sitk.Image, size_mm: tuple[float, float, float],
                 brain_suv: float = 3.0) -> IndexBox:
    """A fixed-size box over the head and neck on the CT grid.

    The top is the top of the PET brain uptake plus a margin (or, without brain uptake, the
    highest CT slice with body); the box extends ``size_mm[2]`` toward the feet and is centred
    in x/y on the body outline of the top 150 mm. The box is clipped to the CT.
    """
    grid = Grid.of(ct)
    sup = grid.superior_axis
    if sup != 2:
        raise ValueError("headneck crop expects axial CT slices (superior axis = index z); "
                         "use --crop overlap for this orientation")
    body = sitk.GetArrayViewFromImage(ct) > BODY_HU  # (z, y, x)
    area = body.sum(axis=(1, 2)) * grid.spacing[0] * grid.spacing[1]
    rows = np.nonzero(area >= MIN_BODY_AREA_MM2)[0]
    body_top = (rows.max() if grid.superior_sign > 0 else rows.min()) if len(rows) else (
        grid.size[2] - 1 if grid.superior_sign > 0 else 0)
    pet_top = head_top_from_pet(pet, grid, brain_suv)
    top = float(body_top) if pet_top is None else pet_top
    nz = int(round(size_mm[2] / grid.spacing[2]))
    if grid.superior_sign > 0:
        z_hi = int(np.floor(top)) + 1
        z_lo = z_hi - nz
    else:
        z_lo = int(np.ceil(top))
        z_hi = z_lo + nz
    head_slab = IndexBox.from_bounds((0, 0, max(z_lo, 0)), (grid.size[0], grid.size[1], max(min(z_hi, grid.size[2]), 1)))
    slab = body[head_slab.slices()]
    n_head = max(1, int(150.0 / grid.spacing[2]))
    slab = slab[-n_head:] if grid.superior_sign > 0 else slab[:n_head]
    if slab.any():
        ys, xs = np.nonzero(slab.any(axis=0))
        cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
    else:
        cy, cx = grid.size[1] / 2.0, grid.size[0] / 2.0
    nx = int(round(size_mm[0] / grid.spacing[0]))
    ny = int(round(size_mm[1] / grid.spacing[1]))
    x_lo, y_lo = int(round(cx - nx / 2)), int(round(cy - ny / 2))
    box = IndexBox.from_bounds((x_lo, y_lo, z_lo), (x_lo + nx, y_lo + ny, z_hi))
    return box.intersect(IndexBox.full(grid))


def choose_box(mode: str, ct: sitk.Image, pet: sitk.Image, label: sitk.Image | None,
               size_mm: tuple[float, float, float], brain_suv: float) -> tuple[IndexBox, int]:
    """The crop box for ``mode`` and the number of labelled voxels it had to be enlarged for.

    The box never cuts labelled voxels: when it would, it is enlarged to the label's bounding box
    (and the count of voxels that would have been lost is returned so the caller can warn).
    """
    grid = Grid.of(ct)
    if mode == "none":
        box = IndexBox.full(grid)
    elif mode == "overlap":
        box = overlap_box(grid, Grid.of(pet))
    elif mode == "headneck":
        box = headneck_box(ct, pet, size_mm, brain_suv).intersect(overlap_box(grid, Grid.of(pet)))
    else:
        raise ValueError(f"unknown crop mode {mode!r}")
    lost = 0
    if label is not None:
        arr = sitk.GetArrayViewFromImage(label)
        lbox = bounding_box(arr)
        if lbox is not None and not box.contains(lbox):
            inside = np.count_nonzero(arr[box.slices()]) if not box.empty else 0
            lost = int(np.count_nonzero(arr)) - inside
            box = box.union(lbox) if not box.empty else lbox
    return box, lost
