"""Conventional PET and lesion descriptors, computed directly from the SUV image and the label map.

These are the numbers clinicians quote (SUVmax, SUVpeak, MTV, TLG) and the node burden. They are
computed on the PET resampled onto the CT grid (where the masks live), in the same crop the
radiomics use. Column names follow ``<modality>_<region>_<feature>``: ``PET_GTVp_SUVmax``,
``MASK_GTVn_count`` (``MASK`` = computed from the label map alone).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Radius (mm) of a sphere of 1 mL: (3 / (4 pi) * 1000 mm^3) ** (1/3).
PEAK_RADIUS_MM = float((3.0 * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))
PET_FEATURES = ("SUVmax", "SUVmean", "SUVpeak", "MTV_ml", "TLG")
MASK_FEATURES = ("MASK_GTVn_count", "MASK_GTVn_total_ml", "MASK_GTVn_largest_ml",
                 "MASK_GTV_primary_to_farthest_node_mm")


def suv_peak(pet: np.ndarray, region: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    """Mean SUV in a 1 mL sphere centred on the hottest voxel of ``region``.

    Parameters
    ----------
    pet : ndarray (z, y, x)
        SUV image.
    region : ndarray of bool (z, y, x)
        The region whose maximum locates the sphere (must be non-empty).
    spacing_zyx : tuple of float
        Voxel spacing in mm, numpy axis order.

    Returns
    -------
    float
        SUVpeak: mean over all image voxels (inside or outside the region) whose centre lies within
        :data:`PEAK_RADIUS_MM` (6.2 mm) of the hottest voxel's centre. When several voxels share the
        maximum (a plateau), the one whose sphere has the highest mean is used.
    """
    from scipy.signal import fftconvolve

    spacing = np.asarray(spacing_zyx, dtype=float)
    half = np.floor(PEAK_RADIUS_MM / spacing).astype(int)
    offsets = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    kernel = (sum(o ** 2 for o in offsets) <= PEAK_RADIUS_MM ** 2 + 1e-9).astype(float)
    top = pet[region].max()
    hottest = region & (pet >= top)
    box = ndimage.find_objects(hottest.astype(np.uint8))[0]
    lo = [max(sl.start - h, 0) for sl, h in zip(box, half)]
    hi = [min(sl.stop + h, n) for sl, h, n in zip(box, half, pet.shape)]
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    # sphere sums over voxels inside the image only (the image edge truncates the sphere)
    sums = fftconvolve(pet[window].astype(float), kernel, mode="same")
    counts = fftconvolve(np.ones(sums.shape), kernel, mode="same")
    return float((sums / np.round(counts))[hottest[window]].max())


def region_pet_descriptors(pet: np.ndarray, region: np.ndarray,
                           spacing_zyx: tuple[float, float, float]) -> dict[str, float]:
    """SUVmax, SUVmean, SUVpeak (SUV), MTV (mL) and TLG (SUV x mL) of one region.

    MTV is the volume of the region itself (the segmentation is the metabolic volume; no SUV
    threshold is applied). An empty region gives NaN for every value.
    """
    n = int(region.sum())
    if n == 0:
        return {k: float("nan") for k in PET_FEATURES}
    values = pet[region]
    mtv = n * float(np.prod(spacing_zyx)) / 1000.0
    mean = float(values.mean())
    return {"SUVmax": float(values.max()), "SUVmean": mean,
            "SUVpeak": suv_peak(pet, region, spacing_zyx), "MTV_ml": mtv, "TLG": mean * mtv}


def lesion_descriptors(label: np.ndarray, spacing_zyx: tuple[float, float, float]) -> dict[str, float]:
    """Node burden and spread from a label map (0 background, 1 GTVp, 2 GTVn).

    Nodes are the connected components of label 2 (26-connectivity: voxels touching by a corner
    belong to one node). Returns the number of nodes, their total and largest volume (mL), and the
    distance (mm) from the primary's centroid to the farthest node centroid (NaN without a primary
    or without nodes).
    """
    spacing = np.asarray(spacing_zyx, dtype=float)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    nodes, n_nodes = ndimage.label(label == 2, structure=np.ones((3, 3, 3), dtype=bool))
    where = np.nonzero(nodes)                     # node voxels only: no pass over the background
    ids = nodes[where]
    sizes = np.bincount(ids, minlength=n_nodes + 1)[1:]
    distance = float("nan")
    primary = label == 1
    if n_nodes and primary.any():
        c_primary = np.argwhere(primary).mean(axis=0) * spacing
        c_nodes = np.stack([np.bincount(ids, weights=i, minlength=n_nodes + 1)[1:] for i in where], axis=1)
        distance = float(np.linalg.norm(c_nodes / sizes[:, None] * spacing - c_primary, axis=1).max())
    return {
        "MASK_GTVn_count": float(n_nodes),
        "MASK_GTVn_total_ml": float(sizes.sum()) * voxel_ml,
        "MASK_GTVn_largest_ml": float(sizes.max()) * voxel_ml if n_nodes else 0.0,
        "MASK_GTV_primary_to_farthest_node_mm": distance,
    }


def pet_descriptors(pet: np.ndarray, label: np.ndarray, regions: dict[str, np.ndarray],
                    spacing_zyx: tuple[float, float, float]) -> dict[str, float]:
    """All conventional descriptors of one patient as ``{column: value}``.

    Parameters
    ----------
    pet : ndarray (z, y, x)
        SUV on the CT grid (cropped).
    label : ndarray (z, y, x)
        Label map on the same grid.
    regions : dict
        Region name -> boolean mask, e.g. ``{"GTVp": label == 1, ...}``.
    spacing_zyx : tuple of float
        Voxel spacing (mm) in numpy axis order.
    """
    out: dict[str, float] = {}
    for name, mask in regions.items():
        for key, value in region_pet_descriptors(pet, mask, spacing_zyx).items():
            out[f"PET_{name}_{key}"] = value
    out.update(lesion_descriptors(label, spacing_zyx))
    return out
