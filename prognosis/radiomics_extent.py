"""Degenerate regions: too few voxels, or too flat, for some PyRadiomics feature classes.

What PyRadiomics 3.1 does with a small region, measured on its own code (``tests/prognosis/
test_radiomics_robustness.py`` keeps the claims true):

* ``checkMask`` refuses a single voxel always, a region spanning fewer axes than the params file's
  ``minimumROIDimensions`` (a line when it is 2: the demo's ``mask has too few dimensions``), and one
  of at most ``minimumROISize`` voxels. The feature classes themselves do not need the check: with
  it relaxed, every class (shape, first-order, the five texture classes) gives finite values on a
  line or a plane of touching voxels.
* First-order ``RobustMeanAbsoluteDeviation`` is NaN below 3 voxels (the 10th-90th percentile band
  is empty); GLCM is NaN when no two voxels of the region touch (no co-occurrence), and so is GLRLM
  on a few such voxels.

So a region is *degenerate* when, as PyRadiomics receives it (on its resampling grid, after the
resegmentation), it has fewer than :data:`MIN_VOXELS` voxels, no two touching voxels (26-connectivity),
or fails the params file's ``minimumROIDimensions`` / ``minimumROISize``. It keeps the classes of
:data:`KEPT_CLASSES` (computed by PyRadiomics with its checks relaxed); the texture classes, which
look at neighbouring voxels along the 13 directions, are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from hecktor_nnunet.prognosis.radiomics_settings import radiomics_extractor

#: Feature classes a degenerate region keeps: they do not look at neighbouring voxels.
KEPT_CLASSES = ("shape", "firstorder")
#: Below this many voxels a region is degenerate (PyRadiomics refuses 1, RobustMeanAbsoluteDeviation needs 3).
MIN_VOXELS = 3


@dataclass(frozen=True)
class Extent:
    """How much of a region PyRadiomics gets: voxels, axes spanned, whether any two voxels touch."""

    voxels: int
    dims: int
    touching: bool

    @classmethod
    def of(cls, mask: np.ndarray) -> "Extent":
        """The extent of the non-zero voxels of ``mask`` (any axis order)."""
        where = np.nonzero(mask)
        voxels = len(where[0])
        dims = sum(int(np.ptp(axis) > 0) for axis in where) if voxels else 0
        touching = voxels > 1 and ndimage.label(mask, structure=np.ones((3,) * mask.ndim))[1] < voxels
        return cls(voxels, dims, bool(touching))

    def shortfall(self, setting: dict) -> str | None:
        """Why the region is degenerate under PyRadiomics ``setting`` (None when it is not).

        Parameters
        ----------
        setting : dict
            The ``setting`` of a params file (``minimumROIDimensions``, default 2; ``minimumROISize``).
        """
        min_dims = int(setting.get("minimumROIDimensions", 2))
        min_size = setting.get("minimumROISize")
        if self.voxels < MIN_VOXELS:
            return f"{self.voxels} voxel(s)"
        if self.dims < min_dims:
            return f"{self.dims}-D (minimumROIDimensions {min_dims})"
        if min_size is not None and self.voxels <= min_size:
            return f"{self.voxels} voxels (minimumROISize {min_size})"
        if not self.touching:
            return "no two voxels touch"
        return None


@lru_cache(maxsize=8)
def degenerate_extractor(params_path: str, on_grid: bool):
    """The extractor of a params file for a degenerate region: :data:`KEPT_CLASSES` only, checks relaxed.

    ``on_grid``: the inputs are already on PyRadiomics' resampled grid (its resampling off), as for
    :func:`~hecktor_nnunet.prognosis.radiomics_settings.extractor_on_grid`.
    """
    from radiomics import featureextractor

    base = radiomics_extractor(params_path)
    extra = {"resampledPixelSpacing": None} if on_grid else {}
    extractor = featureextractor.RadiomicsFeatureExtractor(params_path, minimumROIDimensions=1,
                                                           minimumROISize=None, **extra)
    extractor.enabledFeatures = {k: v for k, v in base.enabledFeatures.items() if k in KEPT_CLASSES}
    return extractor
