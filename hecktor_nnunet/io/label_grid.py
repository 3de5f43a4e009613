"""A label map on the CT grid it belongs to: the one grid policy of the commands that read label maps.

A label map whose grid is the CT's (within :meth:`Grid.same_as <hecktor_nnunet.io.geometry.Grid.same_as>`'s
1e-3 mm) is used as it is. Any other grid is refused with a message that shows both grids, unless the
user opts in to a nearest-neighbour resampling (``--resample-nearest``), which is then reported. A
mask whose header was lost (spacing 1, origin 0) is thus refused instead of landing outside the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.geometry import Grid, resample
from hecktor_nnunet.io.problems import WARNING, CaseError, Problem


def grid_text(grid: Grid, direction: bool = False) -> str:
    """``size (..), spacing (..), origin (..)`` of a grid, rounded for messages (``direction`` adds it)."""
    text = (f"size {grid.size}, spacing {tuple(round(s, 4) for s in grid.spacing)}, "
            f"origin {tuple(round(o, 3) for o in grid.origin)}")
    return text + (f", direction {tuple(round(d, 3) for d in grid.direction)}" if direction else "")


def label_map_on_grid(image: sitk.Image, grid: Grid, patient_id: str, path: str | Path, resample_nearest: bool,
                      what: str = "prediction", reference: str = "the truth's CT grid"
                      ) -> tuple[sitk.Image, list[Problem]]:
    """``image`` on ``grid``: unchanged when already on it, else resampled (nearest neighbour) if allowed.

    Parameters
    ----------
    image : sitk.Image
        The label map as read.
    grid : Grid
        The CT grid it must lie on.
    patient_id, path : str
        Named in the problems.
    resample_nearest : bool
        Resample a label map on another grid (with a ``resampled`` warning) instead of refusing it.
    what, reference : str
        How the messages name the label map (``"prediction"``, ``"mask"``) and the grid.

    Returns
    -------
    (sitk.Image, list of Problem)
        The label map on ``grid`` (its pixel type kept) and the warning when it was resampled.

    Raises
    ------
    CaseError
        ``grid_mismatch``, showing both grids (directions too when they differ), when the grids differ
        and ``resample_nearest`` is False.
    """
    own = Grid.of(image)
    if own.same_as(grid):
        return image, []
    if not resample_nearest:
        turned = not np.allclose(own.direction, grid.direction, atol=1e-3)
        raise CaseError([Problem(patient_id, str(path), "grid_mismatch",
                                 f"{what} grid ({grid_text(own, turned)}) differs from {reference} "
                                 f"({grid_text(grid, turned)}); use --resample-nearest to resample it")])
    warning = Problem(patient_id, str(path), "resampled", f"{what} resampled (nearest) onto {reference}", WARNING)
    return resample(image, grid, "nearest", 0), [warning]
