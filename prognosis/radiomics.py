"""Radiomics of GTVp, GTVn, their union and an optional peritumoral shell, on PET (SUV) and CT (HU).

One row per patient, columns ``<modality>_<region>_<feature>`` (``PET_GTVp_original_firstorder_Maximum``,
``CT_GTV_original_shape_MeshVolume``, ``PET_GTVn_SUVpeak``, ``MASK_GTVn_count``) and, per region,
``flag_<region>_empty`` / ``flag_<region>_tiny`` (1 when the region's features are NaN because it is
empty or smaller than ``min_volume_ml``).

Per patient: read the mask (``<ID>.nii.gz`` on the CT grid), crop the CT grid to the bounding box of
all labels plus a margin, resample the PET (linear) onto that cropped CT grid, then run PyRadiomics
once per region and modality with the params files of :data:`DEFAULT_PARAMS`. Each patient's row is
cached (one JSON per patient, written atomically) under a key that includes the settings hash and
the mask, CT and PET files' size and time, so an interrupted run resumes where it stopped.

The values are those of PyRadiomics run the plain way on the whole images (the CT as read from its
file, the PET resampled linearly onto the whole CT grid, one full-grid mask per region), only
cheaper. PyRadiomics anchors its ``resampledPixelSpacing`` grid at the mask's origin, so a cropped
input would move that grid; :func:`pyradiomics_grid` computes the grid of the whole-image run,
the CT and the label map are resampled onto it from the whole images (the small output is the only
cost), the PET from its crop (the margin covers the interpolation), and PyRadiomics runs on those
with its own resampling switched off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml
from scipy import ndimage

from hecktor_nnunet.io.atomic_io import atomic_path, remove_temp_files, write_json, write_table
from hecktor_nnunet.io.checks import label_values_outside
from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, crop, overlap_box, resample, uncrop
from hecktor_nnunet.io.label_maps import find_label_maps
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.pet_descriptors import MASK_FEATURES, PET_FEATURES, pet_descriptors

log = logging.getLogger(__name__)

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
META_KEY = b"hecktor.radiomics"
#: Bumped when the descriptors or the column naming change (part of the settings hash).
FORMAT_VERSION = 1


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

    @property
    def params_hash(self) -> str:
        """SHA-256 (16 hex digits) of the loaded params files and the region settings."""
        key = {"PET": self.params("PET"), "CT": self.params("CT"), "regions": list(self.regions),
               "shell_mm": self.shell_mm, "min_volume_ml": self.min_volume_ml, "format": FORMAT_VERSION}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PatientJob:
    """One patient's work: image and mask paths plus the settings (picklable)."""

    patient_id: str
    ct: str
    pet: str
    mask: str
    settings: ExtractionSettings
    cache_dir: str | None = None


@dataclass
class PatientResult:
    """A patient's feature row (None when the patient failed) and its problems."""

    patient_id: str
    row: dict[str, float] | None
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False


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
def _extractor_on_grid(params_path: str):
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


def _interpolator(setting: dict) -> int:
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


def _regions(label: np.ndarray, settings: ExtractionSettings, spacing_zyx) -> dict[str, np.ndarray]:
    out = {name: np.isin(label, REGION_LABELS[name]) for name in settings.regions}
    if settings.shell_mm:
        gtv = label > 0
        if gtv.any():
            dist = ndimage.distance_transform_edt(~gtv, sampling=spacing_zyx)
            out[SHELL_REGION] = (dist <= settings.shell_mm) & ~gtv
        else:
            out[SHELL_REGION] = np.zeros_like(gtv)
    return out


def _nan_row(settings: ExtractionSettings) -> dict[str, float]:
    """Every column of a row, NaN (flags 1 = empty), in the table's column order."""
    row: dict[str, float] = {}
    for region in settings.all_regions:
        row[f"flag_{region}_empty"] = 1.0
        row[f"flag_{region}_tiny"] = 0.0
    for modality, path in (("PET", settings.params_pet), ("CT", settings.params_ct)):
        for region in settings.all_regions:
            for name in radiomics_feature_names(str(path)):
                row[f"{modality}_{region}_{name}"] = float("nan")
    for region in settings.all_regions:
        for name in PET_FEATURES:
            row[f"PET_{region}_{name}"] = float("nan")
    for name in MASK_FEATURES:
        row[name] = float("nan")
    return row


def _read_label(job: PatientJob, ct_grid: Grid, problems: list[Problem]) -> sitk.Image:
    mask = sitk.ReadImage(job.mask)
    if not Grid.of(mask).same_as(ct_grid):
        problems.append(Problem(job.patient_id, job.mask, "mask_grid",
                                "mask is not on the CT grid; resampled onto it (nearest neighbour)", WARNING))
        mask = resample(mask, ct_grid, "nearest", 0, sitk.sitkUInt8)
    arr = sitk.GetArrayViewFromImage(mask)
    odd = label_values_outside(arr)
    if not odd:
        return mask if mask.GetPixelID() == sitk.sitkUInt8 else sitk.Cast(mask, sitk.sitkUInt8)
    problems.append(Problem(job.patient_id, job.mask, "label_values",
                            f"label values {odd} are not 0/1/2; those voxels are treated as background",
                            WARNING))
    out = sitk.GetImageFromArray(np.where(np.isin(arr, [1, 2]), arr, 0).astype(np.uint8))
    out.CopyInformation(mask)
    return out


def _extract_region(job: PatientJob, modality: str, image: sitk.Image, region_mask: sitk.Image,
                    region: str, on_grid: bool, problems: list[Problem]) -> dict[str, float]:
    path = str(job.settings.params_pet if modality == "PET" else job.settings.params_ct)
    names = radiomics_feature_names(path)
    file = job.pet if modality == "PET" else job.ct
    window = radiomics_extractor(path).settings.get("resegmentRange")
    if window:
        values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(region_mask) > 0]
        hi = window[1] if len(window) > 1 else np.inf
        if not np.any((values >= window[0]) & (values <= hi)):
            problems.append(Problem(job.patient_id, file, "resegmented_empty",
                                    f"{modality} region {region}: no voxel inside the resegmentation range "
                                    f"{window}: {modality} features are NaN", WARNING))
            return {f"{modality}_{region}_{n}": float("nan") for n in names}
    extractor = _extractor_on_grid(path) if on_grid else radiomics_extractor(path)
    try:
        result = extractor.execute(image, region_mask, label=1)
    except Exception as exc:  # PyRadiomics raises bare ValueError/RuntimeError
        problems.append(Problem(job.patient_id, file, "radiomics_failed",
                                f"{modality} region {region}: PyRadiomics failed: {exc}", ERROR))
        return {f"{modality}_{region}_{n}": float("nan") for n in names}
    row = {}
    for n in names:
        value = float(result[n]) if n in result else float("nan")
        if not np.isfinite(value):
            problems.append(Problem(job.patient_id, file, "feature_failed",
                                    f"{modality} region {region}: feature {n} is not finite ({value}); "
                                    "PyRadiomics logged the cause", ERROR))
        row[f"{modality}_{region}_{n}"] = value
    return row


def extract_patient(job: PatientJob) -> PatientResult:
    """Features of one patient (never raises: failures come back as problems).

    Parameters
    ----------
    job : PatientJob
        Paths and settings.

    Returns
    -------
    PatientResult
        ``row`` maps column -> value (NaN for empty/tiny regions and failed features); ``row`` is
        None only when the patient's files cannot be read.
    """
    start = time.perf_counter()
    cached = _read_cache(job)
    if cached is not None:
        return cached
    problems: list[Problem] = []
    try:
        row = _compute_patient(job, problems)
    except Exception as exc:  # unreadable or inconsistent files: report, keep the other patients going
        log.debug("patient %s failed", job.patient_id, exc_info=True)
        problems.append(Problem(job.patient_id, job.mask, "radiomics_failed", f"{type(exc).__name__}: {exc}", ERROR))
        row = None
    result = PatientResult(job.patient_id, row, problems, time.perf_counter() - start)
    if row is not None:
        _write_cache(job, result)
    return result


def _compute_patient(job: PatientJob, problems: list[Problem]) -> dict[str, float]:
    settings = job.settings
    row = _nan_row(settings)
    ct = sitk.ReadImage(job.ct)
    ct_grid = Grid.of(ct)
    label_img = _read_label(job, ct_grid, problems)
    box = bounding_box(sitk.GetArrayViewFromImage(label_img))
    if box is None:
        problems.append(Problem(job.patient_id, job.mask, "mask_empty",
                                "the mask has no GTVp or GTVn: all features are NaN", WARNING))
        return row
    pad = crop_margin_voxels(settings, ct_grid.spacing)
    crop_box = IndexBox.from_bounds(np.asarray(box.start) - pad, np.asarray(box.stop) + pad).intersect(
        IndexBox.full(ct_grid))
    pet_full = sitk.ReadImage(job.pet, sitk.sitkFloat32)
    if not overlap_box(ct_grid, Grid.of(pet_full)).contains(box):
        problems.append(Problem(job.patient_id, job.pet, "pet_fov",
                                "the labelled region is partly outside the PET field of view (SUV 0 there)",
                                WARNING))
    pet_crop = resample(pet_full, crop_box.subgrid(ct_grid), "linear", 0.0, sitk.sitkFloat32)
    del pet_full
    label = sitk.GetArrayViewFromImage(label_img)[crop_box.slices()]
    spacing_zyx = tuple(reversed(ct_grid.spacing))
    regions = _regions(label, settings, spacing_zyx)
    voxel_ml = float(np.prod(ct_grid.spacing)) / 1000.0
    for region, mask in regions.items():
        volume = float(np.count_nonzero(mask)) * voxel_ml
        row[f"flag_{region}_empty"] = float(volume == 0)
        row[f"flag_{region}_tiny"] = float(0 < volume < settings.min_volume_ml)
        if volume < settings.min_volume_ml:
            continue
        inputs = _RegionInputs(ct, pet_crop, label_img, crop_box, region, mask)
        for modality in MODALITIES:
            path = str(settings.params_pet if modality == "PET" else settings.params_ct)
            image, mask_img, on_grid = inputs.for_modality(modality, radiomics_extractor(path).settings)
            row.update(_extract_region(job, modality, image, mask_img, region, on_grid, problems))
    row.update(pet_descriptors(sitk.GetArrayFromImage(pet_crop), np.asarray(label), regions, spacing_zyx))
    return row


class _RegionInputs:
    """The images and mask PyRadiomics gets for one region, as the whole-image run would see them.

    ``ct`` and ``label_img`` are whole (the CT as read, the label map on the CT grid), ``pet_crop``
    is the PET on the CT grid inside ``crop_box``, ``mask`` the region inside ``crop_box``.
    """

    def __init__(self, ct: sitk.Image, pet_crop: sitk.Image, label_img: sitk.Image, crop_box: IndexBox,
                 region: str, mask: np.ndarray) -> None:
        self.ct, self.pet_crop, self.label_img, self.crop_box = ct, pet_crop, label_img, crop_box
        self.region, self.mask = region, mask
        local = bounding_box(mask)
        self.box = IndexBox(tuple(int(a + b) for a, b in zip(local.start, crop_box.start)), local.size)
        self._masks: dict[Grid, sitk.Image] = {}

    def _crop_mask(self) -> sitk.Image:
        img = sitk.GetImageFromArray(self.mask.astype(np.uint8))
        img.CopyInformation(self.pet_crop)
        return img

    def _grid_mask(self, grid: Grid) -> sitk.Image:
        """The region's mask on ``grid``, nearest neighbour from the whole-grid label map."""
        if grid not in self._masks:
            if self.region in REGION_LABELS:
                source, values = self.label_img, REGION_LABELS[self.region]
            else:  # the shell is not a label value: place it on the whole grid
                source = uncrop(self._crop_mask(), self.crop_box, Grid.of(self.label_img))
                values = (1,)
            labels = sitk.Resample(source, grid.reference(sitk.sitkUInt8), sitk.Transform(),
                                   sitk.sitkNearestNeighbor, 0.0, sitk.sitkUInt8)
            mask = sitk.GetImageFromArray(np.isin(sitk.GetArrayViewFromImage(labels), values).astype(np.uint8))
            mask.CopyInformation(labels)
            self._masks[grid] = mask
        return self._masks[grid]

    def for_modality(self, modality: str, setting: dict) -> tuple[sitk.Image, sitk.Image, bool]:
        """``(image, mask, on_grid)``: on PyRadiomics' resampled grid (``on_grid``) or cropped."""
        grid = pyradiomics_grid(self.label_img, self.box, self.ct.GetSpacing(), setting)
        if grid is None:
            image = self.pet_crop if modality == "PET" else crop(self.ct, self.crop_box)
            return image, self._crop_mask(), False
        source = self.pet_crop if modality == "PET" else self.ct
        image = sitk.Resample(source, grid.reference(source.GetPixelID()), sitk.Transform(),
                              _interpolator(setting), 0.0, source.GetPixelID())
        return image, self._grid_mask(grid), True


def _file_stamp(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _inputs_stamp(job: PatientJob) -> dict[str, Any]:
    """What a cached row was computed from: the mask, CT and PET files (a change invalidates it)."""
    return {"mask": _file_stamp(job.mask), "ct": _file_stamp(job.ct), "pet": _file_stamp(job.pet)}


def _cache_path(job: PatientJob) -> Path | None:
    return Path(job.cache_dir) / f"{job.patient_id}.json" if job.cache_dir else None


def _read_cache(job: PatientJob) -> PatientResult | None:
    path = _cache_path(job)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("params_hash") != job.settings.params_hash or data.get("inputs") != _inputs_stamp(job):
        return None
    problems = [Problem(**p) for p in data.get("problems", [])]
    return PatientResult(job.patient_id, data["row"], problems, data.get("seconds", 0.0), cached=True)


def _write_cache(job: PatientJob, result: PatientResult) -> None:
    path = _cache_path(job)
    if path is None:
        return
    write_json({"patient_id": job.patient_id, "params_hash": job.settings.params_hash,
                "inputs": _inputs_stamp(job), "seconds": result.seconds, "row": result.row,
                "problems": [p.to_dict() for p in result.problems]}, path)


def extract_features(
    release_root: str | Path,
    masks_dir: str | Path,
    out: str | Path | None,
    workers: int = 1,
    params_pet: str | Path | None = None,
    params_ct: str | Path | None = None,
    regions: Sequence[str] = ("GTVp", "GTVn", "GTV"),
    shell_mm: float | None = None,
    cache_dir: str | Path | None = None,
    dask_scheduler: str | None = None,
    quiet: bool = False,
    min_volume_ml: float = MIN_VOLUME_ML,
) -> pd.DataFrame:
    """Extract the features table of every patient that has a mask.

    Parameters
    ----------
    release_root : path
        A release in any layout :func:`hecktor_nnunet.io.release.read_release` reads (CT in HU, PET in SUV).
    masks_dir : path
        Label maps ``<ID>.nii.gz`` on the CT grid (ground truth or predictions).
    out : path or None
        ``.parquet`` (metadata in the file and in ``<out>.meta.json``) or ``.csv`` (sidecar only).
    workers : int
        Processes (ignored with ``dask_scheduler``: the cluster decides).
    params_pet, params_ct : path, optional
        PyRadiomics params files (default: the shipped ``params/pet.yaml`` and ``params/ct.yaml``).
    regions : sequence of str
        Among ``GTVp``, ``GTVn``, ``GTV``.
    shell_mm : float, optional
        Adds region ``GTVshell``: the GTV dilated by ``shell_mm`` mm, minus the GTV.
    cache_dir : path, optional
        Per-patient cache; a rerun with the same settings and masks reuses it.
    dask_scheduler : str, optional
        Address of a Dask scheduler to run on.
    quiet : bool
        No progress bar.
    min_volume_ml : float
        Regions below this volume (mL) get NaN radiomics and ``flag_<region>_tiny = 1``.

    Returns
    -------
    DataFrame
        One row per patient (``PatientID`` first); ``df.attrs["radiomics"]`` holds the metadata
        (params hash, settings, versions, problems).
    """
    settings = ExtractionSettings(str(params_pet or DEFAULT_PARAMS["PET"]), str(params_ct or DEFAULT_PARAMS["CT"]),
                                  tuple(regions), shell_mm, min_volume_ml)
    release = read_release(release_root)
    masks = find_label_maps(masks_dir, "mask")
    if cache_dir:  # temporary files a killed run left in the cache
        remove_temp_files(cache_dir)
    problems: list[Problem] = []
    jobs = []
    for pid, mask in masks.items():
        try:
            case = release.case(pid)
        except KeyError:
            problems.append(Problem(pid, str(mask), "no_images", f"mask has no images in {release_root}", ERROR))
            continue
        if case.ct is None or case.pet is None:
            problems.append(Problem(pid, str(case.ct or case.pet or ""), "missing_modality",
                                    "needs both CT and PET", ERROR))
            continue
        jobs.append(PatientJob(pid, str(case.ct), str(case.pet), str(mask), settings,
                               str(cache_dir) if cache_dir else None))
    log.info("radiomics for %d patient(s) (%d mask(s) in %s)", len(jobs), len(masks), masks_dir)
    rows, seconds, n_cached = [], [], 0
    for res in parallel_map(extract_patient, jobs, workers=workers, desc="radiomics", quiet=quiet,
                            dask_scheduler=dask_scheduler):
        problems += res.problems
        n_cached += res.cached
        if res.row is not None:
            rows.append({"PatientID": res.patient_id, **res.row})
            if not res.cached:
                seconds.append(res.seconds)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("PatientID").reset_index(drop=True)
    meta = {"params_hash": settings.params_hash, "settings": asdict(settings),
            "params": {m: settings.params(m) for m in MODALITIES}, "versions": library_versions(),
            "n_patients": len(df), "n_cached": n_cached,
            "seconds_per_patient": float(np.mean(seconds)) if seconds else None,
            "problems": [p.to_dict() for p in problems]}
    for p in problems:
        (log.error if p.severity == ERROR else log.warning)("%s", p)
    if out is not None:
        write_features(df, out, meta)
    df.attrs["radiomics"] = meta
    return df


def write_features(df: pd.DataFrame, out: str | Path, meta: dict) -> None:
    """Write the table (Parquet with ``hecktor.radiomics`` schema metadata, or CSV) and ``<out>.meta.json``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    df = pd.DataFrame(df, copy=False)  # without attrs: pandas deep-copies them on every column access
    if out.suffix == ".parquet":
        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               META_KEY: json.dumps(meta).encode()})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
    else:
        write_table(df, out)
    write_json(meta, meta_path(out))


def meta_path(table: str | Path) -> Path:
    """The sidecar metadata file of a features table: ``<table>.meta.json``."""
    table = Path(table)
    return table.with_name(table.name + ".meta.json")


def read_features(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a features table (Parquet or CSV) and its metadata (``{}`` when it has none)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features table not found: {path}")
    meta: dict = {}
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
        df = table.to_pandas()
    else:
        df = pd.read_csv(path)
    if not meta and meta_path(path).is_file():
        meta = json.loads(meta_path(path).read_text())
    if "PatientID" not in df.columns:
        raise ValueError(f"features table {path} has no PatientID column")
    df.attrs.pop("radiomics", None)
    return df, meta
