"""One patient's radiomics: read the mask, reorient, crop, resample, run PyRadiomics, cache the row.

Runs in worker processes (:class:`PatientJob` and :class:`PatientResult` are picklable); a failing
computation becomes a :class:`~hecktor_nnunet.io.problems.Problem` naming the patient and region; a
region too small for some features (:mod:`~hecktor_nnunet.prognosis.radiomics_extent`) is a flag
and a warning, not a failure.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hecktor_nnunet.io.atomic_io import file_stamp, write_json
from hecktor_nnunet.io.checks import label_values_outside
from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, crop, overlap_box, resample, uncrop
from hecktor_nnunet.io.label_grid import label_map_on_grid
from hecktor_nnunet.io.problems import ERROR, WARNING, CaseError, Problem
from hecktor_nnunet.prognosis.pet_descriptors import MASK_FEATURES, PET_FEATURES, pet_descriptors
from hecktor_nnunet.prognosis.radiomics_extent import KEPT_CLASSES, Extent, degenerate_extractor
from hecktor_nnunet.prognosis.radiomics_settings import (MODALITIES, ORIENTATION, REGION_LABELS, SHELL_REGION,
                                                         ExtractionSettings, crop_margin_voxels, extractor_on_grid,
                                                         pyradiomics_grid, radiomics_extractor,
                                                         radiomics_feature_names, resampling_interpolator)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientJob:
    """One patient's work: image and mask paths, the settings and the grid policy (picklable).

    ``resample_nearest``: a mask off the CT grid is resampled (nearest neighbour, with a warning)
    instead of refused (:func:`~hecktor_nnunet.io.label_grid.label_map_on_grid`).
    """

    patient_id: str
    ct: str
    pet: str
    mask: str
    settings: ExtractionSettings
    cache_dir: str | None = None
    resample_nearest: bool = False


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


def nan_row(settings: ExtractionSettings) -> dict[str, float]:
    """Every column of a row, NaN (flags: empty), in the table's column order."""
    row: dict[str, float] = {}
    for region in settings.all_regions:
        row[f"flag_{region}_empty"] = 1.0
        row[f"flag_{region}_tiny"] = 0.0
        row[f"flag_{region}_degenerate"] = 0.0
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


def _canonical(image: sitk.Image) -> sitk.Image:
    """``image`` stored in the :data:`ORIENTATION` axis order (axes permuted and flipped; values untouched)."""
    if sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()) == ORIENTATION:
        return image
    return sitk.DICOMOrient(image, ORIENTATION)


def _read_label(job: PatientJob, ct_grid: Grid, problems: list[Problem]) -> sitk.Image:
    """The mask on the CT grid as ``uint8`` 0/1/2 (raises :class:`CaseError` ``grid_mismatch``)."""
    mask, found = label_map_on_grid(sitk.ReadImage(job.mask), ct_grid, job.patient_id, job.mask,
                                    job.resample_nearest, what="mask", reference="the CT grid")
    problems += found
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


def _pyradiomics_extent(image: sitk.Image, region_mask: sitk.Image, setting: dict) -> tuple[Extent, str]:
    """The extent of the region PyRadiomics keeps and, if its resegmentation removed voxels, the words saying so.

    Follows ``resegmentMode: absolute`` (the shipped CT file); other modes are left to PyRadiomics.
    """
    mask = sitk.GetArrayViewFromImage(region_mask) > 0
    window = setting.get("resegmentRange")
    if not window or setting.get("resegmentMode", "absolute") != "absolute":
        return Extent.of(mask), ""
    values = sitk.GetArrayViewFromImage(image)
    hi = window[1] if len(window) > 1 else np.inf
    kept = mask & (values >= window[0]) & (values <= hi)
    return Extent.of(kept), (f" after resegmentation to {list(window)}" if kept.sum() < mask.sum() else "")


def _extract_region(job: PatientJob, modality: str, image: sitk.Image, region_mask: sitk.Image,
                    region: str, on_grid: bool, problems: list[Problem]) -> tuple[dict[str, float], str | None]:
    """One region's PyRadiomics features in one modality, and a note when the region is degenerate there."""
    path = str(job.settings.params_pet if modality == "PET" else job.settings.params_ct)
    names = radiomics_feature_names(path)
    file = job.pet if modality == "PET" else job.ct
    nan = {f"{modality}_{region}_{n}": float("nan") for n in names}
    setting = radiomics_extractor(path).settings
    extent, resegmented = _pyradiomics_extent(image, region_mask, setting)
    reason = extent.shortfall(setting)
    if extent.voxels < 2:  # PyRadiomics refuses a single voxel
        return nan, f"{modality} {reason}{resegmented}: every PyRadiomics feature NaN"
    extractor = (degenerate_extractor(path, on_grid) if reason else
                 extractor_on_grid(path) if on_grid else radiomics_extractor(path))
    try:
        with warnings.catch_warnings():  # numpy's "Mean of empty slice": the note below names the NaN
            if reason:
                warnings.simplefilter("ignore", RuntimeWarning)
            result = extractor.execute(image, region_mask, label=1)
    except Exception as exc:  # PyRadiomics raises bare ValueError/RuntimeError
        problems.append(Problem(job.patient_id, file, "radiomics_failed",
                                f"{modality} region {region}: PyRadiomics failed: {exc}", ERROR))
        return nan, None
    row, undefined = {}, []
    for n in names:
        value = float(result[n]) if n in result else float("nan")
        if reason and n in result and not np.isfinite(value):
            undefined.append(n.split("_", 1)[-1])
        elif not reason and not np.isfinite(value):
            problems.append(Problem(job.patient_id, file, "feature_failed",
                                    f"{modality} region {region}: feature {n} is not finite ({value}); "
                                    "PyRadiomics logged the cause", ERROR))
        row[f"{modality}_{region}_{n}"] = value
    if reason is None:
        return row, None
    kept = [c for c in radiomics_extractor(path).enabledFeatures if c in KEPT_CLASSES]
    dropped = [c for c in radiomics_extractor(path).enabledFeatures if c not in KEPT_CLASSES]
    return row, (f"{modality} {reason}{resegmented}: {' and '.join(kept) or 'no class'} computed"
                 + (f", {'/'.join(dropped)} NaN" if dropped else "")
                 + (f" ({', '.join(undefined)} undefined: NaN)" if undefined else ""))


def extract_patient(job: PatientJob) -> PatientResult:
    """Features of one patient (never raises: failures come back as problems).

    Parameters
    ----------
    job : PatientJob
        Paths and settings.

    Returns
    -------
    PatientResult
        ``row`` maps column -> value (NaN for empty/tiny regions, the features a degenerate region
        cannot have, and failed features); ``row`` is None when the patient's files cannot be read or
        the mask is off the CT grid and ``job.resample_nearest`` is False.
    """
    start = time.perf_counter()
    cached = _read_cache(job)
    if cached is not None:
        return cached
    problems: list[Problem] = []
    try:
        row = _compute_patient(job, problems)
    except CaseError as exc:  # mask off the CT grid, NaN in an image: its problems say why
        problems += exc.problems
        row = None
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
    row = nan_row(settings)
    ct = sitk.ReadImage(job.ct)
    label_img = _canonical(_read_label(job, Grid.of(ct), problems))
    ct = _canonical(ct)
    ct_grid = Grid.of(ct)
    box = bounding_box(sitk.GetArrayViewFromImage(label_img))
    if box is None:
        problems.append(Problem(job.patient_id, job.mask, "mask_empty",
                                "the mask has no GTVp or GTVn: all features are NaN", WARNING))
        return row
    pad = crop_margin_voxels(settings, ct_grid.spacing)
    crop_box = IndexBox.from_bounds(np.asarray(box.start) - pad, np.asarray(box.stop) + pad).intersect(
        IndexBox.full(ct_grid))
    _check_finite(job, "CT", sitk.GetArrayViewFromImage(ct)[crop_box.slices()])
    pet_crop = _pet_on_crop(job, ct_grid, box, crop_box, problems)
    _check_finite(job, "PET", sitk.GetArrayViewFromImage(pet_crop))
    label = sitk.GetArrayViewFromImage(label_img)[crop_box.slices()]
    spacing_zyx = tuple(reversed(ct_grid.spacing))
    regions = _regions(label, settings, spacing_zyx)
    voxel_ml = float(np.prod(ct_grid.spacing)) / 1000.0
    make_inputs = partial(_RegionInputs, ct, pet_crop, label_img, crop_box)
    for region, mask in regions.items():
        row.update(_region_features(job, region, mask, voxel_ml, make_inputs, problems))
    row.update(pet_descriptors(sitk.GetArrayFromImage(pet_crop), np.asarray(label), regions, spacing_zyx))
    return row


def _check_finite(job: PatientJob, modality: str, values: np.ndarray) -> None:
    """Raise :class:`CaseError` ``non_finite`` when the image has NaN or infinite voxels around the labels."""
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise CaseError([Problem(job.patient_id, job.pet if modality == "PET" else job.ct, "non_finite",
                                 f"{modality} has {bad} NaN or infinite voxel(s) around the labels "
                                 f"(on the cropped CT grid): no features", ERROR)])


def _pet_on_crop(job: PatientJob, ct_grid: Grid, box: IndexBox, crop_box: IndexBox,
                 problems: list[Problem]) -> sitk.Image:
    """The PET resampled (linear) onto the crop of the CT grid; a warning when the labels leave its field of view."""
    pet_full = sitk.ReadImage(job.pet, sitk.sitkFloat32)
    if not overlap_box(ct_grid, Grid.of(pet_full)).contains(box):
        problems.append(Problem(job.patient_id, job.pet, "pet_fov",
                                "the labelled region is partly outside the PET field of view (SUV 0 there)",
                                WARNING))
    return resample(pet_full, crop_box.subgrid(ct_grid), "linear", 0.0, sitk.sitkFloat32)


def _region_features(job: PatientJob, region: str, mask: np.ndarray, voxel_ml: float,
                     make_inputs: Callable[[str, np.ndarray], "_RegionInputs"], problems: list[Problem]
                     ) -> dict[str, float]:
    """One region's flags and PyRadiomics features (both modalities); a warning when tiny or degenerate.

    ``make_inputs(region, mask)`` builds the region's :class:`_RegionInputs` (only for a region that gets
    PyRadiomics).
    """
    min_ml = job.settings.min_volume_ml
    volume = float(np.count_nonzero(mask)) * voxel_ml
    row = {f"flag_{region}_empty": float(volume == 0), f"flag_{region}_tiny": float(0 < volume < min_ml),
           f"flag_{region}_degenerate": 0.0}
    if volume == 0:
        return row
    if volume < min_ml:
        problems.append(Problem(job.patient_id, job.mask, "region_tiny",
                                f"region {region} is {volume:.3g} mL, below min_volume_ml {min_ml} mL: "
                                f"its PyRadiomics features are NaN (flag_{region}_tiny)", WARNING))
        return row
    inputs, notes = make_inputs(region, mask), []
    for modality in MODALITIES:
        path = str(job.settings.params_pet if modality == "PET" else job.settings.params_ct)
        image, mask_img, on_grid = inputs.for_modality(modality, radiomics_extractor(path).settings)
        values, note = _extract_region(job, modality, image, mask_img, region, on_grid, problems)
        row.update(values)
        notes += [note] if note else []
    if notes:
        row[f"flag_{region}_degenerate"] = 1.0
        problems.append(Problem(job.patient_id, job.mask, "region_degenerate",
                                f"region {region} is degenerate on PyRadiomics' grid: {'; '.join(notes)} "
                                f"(flag_{region}_degenerate)", WARNING))
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
    """The cached result of ``job``, if computed with its settings from its files, under its grid policy.

    A row whose mask was resampled onto the CT grid is not reused when resampling is no longer allowed.
    """
    path = _cache_path(job)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("params_hash") != job.settings.params_hash or data.get("inputs") != _inputs_stamp(job):
        return None
    if data.get("mask_resampled", True) and not job.resample_nearest:
        return None
    problems = [Problem(**p) for p in data.get("problems", [])]
    return PatientResult(job.patient_id, data["row"], problems, data.get("seconds", 0.0), cached=True)


def _write_cache(job: PatientJob, result: PatientResult) -> None:
    path = _cache_path(job)
    if path is None:
        return
    write_json({"patient_id": job.patient_id, "params_hash": job.settings.params_hash,
                "inputs": _inputs_stamp(job), "seconds": result.seconds, "row": result.row,
                "mask_resampled": any(p.code == "resampled" for p in result.problems),
                "problems": [p.to_dict() for p in result.problems]}, path)
