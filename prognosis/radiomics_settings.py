"""What decides the radiomics numbers: the params files, regions and margins, PyRadiomics' grid.

:class:`ExtractionSettings` is hashed into a features table's ``params_hash``; the PyRadiomics
extractors and the resampling grid of a whole-image run (:func:`pyradiomics_grid`) are computed here
once per params file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import yaml

from hecktor_nnunet.io.geometry import Grid, IndexBox

MODALITIES = ("PET", "CT")
DEFAULT_PARAMS = {m: files("hecktor_nnunet.prognosis") / "params" / f"{m.lower()}.yaml" for m in MODALITIES}
REGION_LABELS = {"GTVp": (1,), "GTVn": (2,), "GTV": (1, 2)}
SHELL_REGION = "GTVshell"
#: Crop margin (mm) around the labels, beyond the shell, at least: covers the 6.2 mm SUVpeak sphere.
#: :func:`crop_margin_voxels` widens it to PyRadiomics' padded resampling grid.
MARGIN_MM = 15.0
#: Regions below this volume (mL) are flagged "tiny" and get NaN radiomics (one voxel of the
#: 0.98x0.98x3 mm CT grid is 0.003 mL; a 4 mm radius sphere is 0.27 mL).
MIN_VOLUME_ML = 0.25
#: Every image and mask is stored in this axis order before extraction (``sitk.DICOMOrient``: axes
#: permuted and flipped, no interpolation), so a patient stored LPS or RAS gives the same features.
ORIENTATION = "LPS"
#: Bumped when the descriptors, the column naming or the handling of degenerate regions change
#: (part of the settings hash). 2: reorientation to :data:`ORIENTATION`, ``flag_<region>_degenerate``.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that decides the numbers in a features table (hashed into ``params_hash``).

    Attributes
    ----------
    params_pet, params_ct : str
        PyRadiomics YAML files.
    regions : tuple of str
        Any of ``GTVp``, ``GTVn``, ``GTV``.
    shell_mm : float or None
        Width (mm) of the peritumoral shell around the GTV; None for no shell.
    min_volume_ml : float
        Regions smaller than this (mL) are flagged tiny.
    """

    params_pet: str
    params_ct: str
    regions: tuple[str, ...] = ("GTVp", "GTVn", "GTV")
    shell_mm: float | None = None
    min_volume_ml: float = MIN_VOLUME_ML

    def __post_init__(self) -> None:
        unknown = [r for r in self.regions if r not in REGION_LABELS]
        if unknown or not self.regions:
            raise ValueError(f"unknown region(s) {unknown}; choose from {list(REGION_LABELS)}")
        if self.shell_mm is not None and self.shell_mm <= 0:
            raise ValueError(f"shell_mm must be positive (mm), got {self.shell_mm}")
        for p in (self.params_pet, self.params_ct):
            if not Path(p).is_file():
                raise FileNotFoundError(f"PyRadiomics params file not found: {p}")

    @property
    def all_regions(self) -> tuple[str, ...]:
        return self.regions + ((SHELL_REGION,) if self.shell_mm else ())

    def params(self, modality: str) -> dict:
        """The loaded params file of ``modality`` (``"PET"`` or ``"CT"``)."""
        return _load_yaml(self.params_pet if modality == "PET" else self.params_ct)

    @cached_property
    def params_hash(self) -> str:
        """SHA-256 (16 hex digits) of the params files, the region settings, the column format and the
        orientation (read once per settings object)."""
        key = {"PET": self.params("PET"), "CT": self.params("CT"), "regions": list(self.regions),
               "shell_mm": self.shell_mm, "min_volume_ml": self.min_volume_ml, "format": FORMAT_VERSION,
               "orientation": ORIENTATION}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]



def _load_yaml(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text()) or {}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that compute the features."""
    import radiomics

    return {"pyradiomics": str(radiomics.__version__), "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__}


@lru_cache(maxsize=4)
def radiomics_extractor(params_path: str):
    """The PyRadiomics extractor of a params file (one per process; PyRadiomics' log quietened)."""
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return featureextractor.RadiomicsFeatureExtractor(params_path)


@lru_cache(maxsize=4)
def extractor_on_grid(params_path: str):
    """The extractor of a params file for inputs already on its resampled grid (resampling off)."""
    from radiomics import featureextractor

    radiomics_extractor(params_path)  # quietens PyRadiomics' log
    return featureextractor.RadiomicsFeatureExtractor(params_path, resampledPixelSpacing=None)


def _resampled_spacing(setting: dict) -> np.ndarray | None:
    """``resampledPixelSpacing`` of PyRadiomics settings (None when it does not resample)."""
    spacing = setting.get("resampledPixelSpacing")
    if spacing is None or setting.get("interpolator") is None:
        return None
    return np.asarray(spacing, dtype=float)


def resampling_interpolator(setting: dict) -> int:
    """The SimpleITK interpolator of PyRadiomics settings (PyRadiomics falls back to B-spline)."""
    name = setting.get("interpolator", sitk.sitkBSpline)
    return getattr(sitk, name, sitk.sitkBSpline) if isinstance(name, str) else int(name)


def crop_margin_voxels(settings: ExtractionSettings, spacing: Sequence[float]) -> np.ndarray:
    """Crop margin (voxels, x/y/z) around the labels that leaves every feature unchanged.

    Covers :data:`MARGIN_MM` plus the shell, and the whole-image PyRadiomics run's resampled grid:
    ``padDistance`` voxels of ``resampledPixelSpacing`` beyond the region plus one voxel of
    rounding, and the interpolator's reach (two voxels, three for B-spline).
    """
    spacing = np.asarray(spacing, dtype=float)
    need = np.full(3, MARGIN_MM)
    for modality in MODALITIES:
        setting = radiomics_extractor(str(settings.params_pet if modality == "PET" else settings.params_ct)).settings
        step = _resampled_spacing(setting)
        step = spacing if step is None else np.where(step == 0, spacing, np.maximum(step, spacing))
        need = np.maximum(need, (setting.get("padDistance", 5) + 1.5) * step + 3 * spacing)
    return np.ceil((need + (settings.shell_mm or 0.0)) / spacing).astype(int)


def pyradiomics_grid(mask: sitk.Image, box: IndexBox, image_spacing: Sequence[float], setting: dict) -> Grid | None:
    """The grid PyRadiomics resamples a region onto when it is given the whole images.

    Follows ``radiomics.imageoperations.resampleImage`` (PyRadiomics 3.1) step by step, with the
    same floating-point operations: a lattice of ``resampledPixelSpacing`` anchored at the mask's
    origin, over the region's bounding box plus ``padDistance`` voxels, clipped to the image.

    Parameters
    ----------
    mask : sitk.Image
        A whole-grid image with the mask's geometry (only its geometry is used).
    box : IndexBox
        The region's bounding box on that grid.
    image_spacing : sequence of float
        Spacing (mm) of the image the features are computed on.
    setting : dict
        PyRadiomics settings (``resampledPixelSpacing``, ``interpolator``, ``padDistance``).

    Returns
    -------
    Grid or None
        None when PyRadiomics would not interpolate (no resampling, or the image already has the
        requested spacing): then it only crops, and a crop with enough margin gives the same values.
    """
    resampled = _resampled_spacing(setting)
    if resampled is None:
        return None
    pad = setting.get("padDistance", 5)
    mask_spacing = np.array(mask.GetSpacing())
    resampled = np.where(resampled == 0, mask_spacing, resampled)
    bb = np.array([*box.start, *box.size])
    resampled = np.where(bb[3:] != 1, resampled, mask_spacing)
    if np.allclose(np.array(image_spacing), resampled):
        return None
    ratio = mask_spacing / resampled
    lower = np.floor((bb[:3] - 0.5) * ratio - pad)
    upper = np.ceil((bb[:3] + bb[3:] - 0.5) * ratio + pad)
    max_upper = np.ceil(np.array(mask.GetSize()) * ratio) - 1
    lower = np.where(lower < 0, 0, lower)
    upper = np.where(upper > max_upper, max_upper, upper)
    size = np.array(upper - lower + 1, dtype="int").tolist()
    origin_index = np.array(.5 * (resampled - mask_spacing) / mask_spacing) + lower / ratio
    origin = mask.TransformContinuousIndexToPhysicalPoint(origin_index)
    return Grid(tuple(size), tuple(resampled.tolist()), tuple(origin), tuple(mask.GetDirection()))


@lru_cache(maxsize=4)
def radiomics_feature_names(params_path: str) -> tuple[str, ...]:
    """The feature names a params file produces (``original_firstorder_Mean``, ...).

    Found by running the extractor once on a small cube phantom, so every image type and feature
    class the user enables is covered; empty regions then get the same columns filled with NaN.
    """
    rng = np.random.default_rng(0)
    arr = rng.uniform(0, 10, size=(12, 12, 12)).astype(np.float32)
    mask = np.zeros(arr.shape, dtype=np.uint8)
    mask[3:9, 3:9, 3:9] = 1
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 2.0))
    msk = sitk.GetImageFromArray(mask)
    msk.CopyInformation(img)
    settings = radiomics_extractor(params_path).settings
    if settings.get("resegmentRange"):
        lo, hi = settings["resegmentRange"][0], settings["resegmentRange"][-1]
        hi = lo + 500.0 if hi is None or not np.isfinite(hi) else hi
        img = sitk.GetImageFromArray(lo + arr / 10 * (hi - lo))
        img.SetSpacing((2.0, 2.0, 2.0))
    result = radiomics_extractor(params_path).execute(img, msk, label=1)
    return tuple(k for k in result if not k.startswith("diagnostics_"))
