"""One patient's radiomics: read the mask, crop, resample, run PyRadiomics per region and modality, cache the row.

Runs in worker processes (:class:`PatientJob` and :class:`PatientResult` are picklable); a failing
computation becomes a :class:`~hecktor_nnunet.io.problems.Problem` naming the patient and region.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hecktor_nnunet.io.atomic_io import file_stamp, write_json
from hecktor_nnunet.io.checks import label_values_outside
from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, crop, overlap_box, resample, uncrop
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem
from hecktor_nnunet.prognosis.pet_descriptors import MASK_FEATURES, PET_FEATURES, pet_descriptors
from hecktor_nnunet.prognosis.radiomics_settings import (MODALITIES, REGION_LABELS, SHELL_REGION, ExtractionSettings,
                                                         crop_margin_voxels, extractor_on_grid, pyradiomics_grid,
                                                         radiomics_extractor, radiomics_feature_names,
                                                         resampling_interpolator)

log = logging.getLogger(__name__)


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
    extractor = extractor_on_grid(path) if on_grid else radiomics_extractor(path)
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
                              resampling_interpolator(setting), 0.0, source.GetPixelID())
        return image, self._grid_mask(grid), True


def _file_stamp(path: str) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), **file_stamp(path)}


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
