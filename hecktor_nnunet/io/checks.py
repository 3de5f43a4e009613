"""Checks on one case's images: each finding is a :class:`~hecktor_nnunet.io.problems.Problem`.

:func:`load_case` reads CT, PET (and label, extras) with every check applied, returning the images
ready for conversion, or raising :class:`~hecktor_nnunet.io.problems.CaseError` with all the
problems that make the case unusable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hecktor_nnunet.io.geometry import Grid, overlap_box, resample, voxel_volume_ml
from hecktor_nnunet.io.ids import normalise_id
from hecktor_nnunet.io.image_files import IncompleteFileError, verify_image_file
from hecktor_nnunet.io.problems import WARNING, CaseError, Problem, ProblemsError
from hecktor_nnunet.io.release import Case
from hecktor_nnunet.io.tables import collapse_duplicates, read_table

log = logging.getLogger(__name__)

VALID_LABELS = (0, 1, 2)  #: background, GTVp, GTVn (consecutive integers)
F18_HALF_LIFE_MIN = 109.77
#: robust PET maximum (99.9th percentile, SUV) above which a PET is taken to be in Bq/mL;
#: SUVs of head-and-neck tumours rarely exceed ~50, activity concentrations are in the thousands.
BQML_THRESHOLD = 200.0
#: CT values below this are padding outside the reconstructed field of view (-2048, -3024), not air
CT_PADDING_HU = -1100.0
#: a CT in HU has air (the 0.5th percentile of the values that are not padding) at or below this: ~ -1000
CT_AIR_MAX_HU = -800.0
#: ... and the median of its body (voxels 500 HU above the air) in this range: soft tissue, 0-100 HU, with
#: margins for fat (-100) and bone; a CT stored as HU + 1024 gives ~1050, a clipped uint8 CT has no body
CT_TISSUE_HU = (-100.0, 150.0)


def label_values_outside(arr: np.ndarray) -> list[float]:
    """Label values other than 0, 1, 2, non-integer values included (cheap when there are none).

    Nothing is cast first: a float label holding 1.5 reports 1.5 (a cast would have made it 1).
    """
    if arr.dtype.kind == "f":
        bad = ~np.isin(arr, VALID_LABELS)
        return sorted(set(np.unique(arr[bad]).tolist())) if bad.any() else []
    lo, hi = VALID_LABELS[0], VALID_LABELS[-1]
    if arr.min() >= lo and arr.max() <= hi:
        return []
    return sorted(set(np.unique(arr[(arr < lo) | (arr > hi)]).tolist()))


def label_counts(arr: np.ndarray) -> dict[int, int]:
    """Voxel counts of labels 1 and 2 of a label map whose values are 0, 1 and 2 (checked before)."""
    n2 = int(np.count_nonzero(arr == 2))
    return {1: int(np.count_nonzero(arr)) - n2, 2: n2}


def label_volumes_ml(label: sitk.Image) -> dict[int, float]:
    """Volumes (mL) of labels 1 and 2 of a label map on its own grid (values 0, 1, 2, checked before)."""
    voxel_ml = voxel_volume_ml(label)
    return {k: n * voxel_ml for k, n in label_counts(sitk.GetArrayViewFromImage(label)).items()}


@dataclass
class LoadedCase:
    """A case's images after checks: CT, PET and label (on the CT grid) plus extras."""

    case: Case
    ct: sitk.Image
    pet: sitk.Image
    label: sitk.Image | None
    extras: dict[str, sitk.Image] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: volumes (mL) of labels 1 and 2 in the label file as stored, before any resampling (None without a label)
    label_volumes_ml: dict[int, float] | None = None


def read_image(path: Path, patient_id: str, what: str) -> sitk.Image:
    """Read a 3D image or raise a :class:`CaseError` naming patient and file.

    A file with fewer bytes than its header declares (a truncated ``.nii.gz``, whose missing part
    SimpleITK would read as zeros) is an error, see :func:`~hecktor_nnunet.io.image_files.verify_image_file`.
    """
    try:
        verify_image_file(path)
    except IncompleteFileError as e:
        raise CaseError([Problem(patient_id, str(path), "truncated", f"{what} file is incomplete: {e.strerror}")]) from e
    except OSError as e:
        raise CaseError([Problem(patient_id, str(path), "unreadable", f"cannot read {what}: {e.strerror or e}")]) from e
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise CaseError([Problem(patient_id, str(path), "unreadable", f"cannot read {what}: {first}")]) from e
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError([Problem(patient_id, str(path), "not_3d",
                                 f"{what} must be a 3D scalar image, got {img.GetDimension()}D with "
                                 f"{img.GetNumberOfComponentsPerPixel()} component(s)")])
    return img


def finite_problem(img: sitk.Image, patient_id: str, path: Path, what: str) -> Problem | None:
    """An error if the image holds NaN or infinite values."""
    if img.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return None
    arr = sitk.GetArrayViewFromImage(img)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        return Problem(patient_id, str(path), "non_finite", f"{what} holds {bad} NaN/inf voxel(s)")
    return None


def pet_looks_like_bqml(pet: sitk.Image, threshold: float = BQML_THRESHOLD) -> tuple[bool, float]:
    """Whether a PET is in Bq/mL rather than SUV; returns (verdict, robust max)."""
    arr = sitk.GetArrayViewFromImage(pet)
    sample = arr[:: max(1, arr.shape[0] // 32)]  # every few slices: cheap on 200^3 volumes
    robust_max = float(np.percentile(sample, 99.9))
    return robust_max > threshold, robust_max


def ct_units_problem(ct: sitk.Image, patient_id: str, path: Path) -> Problem | None:
    """A warning when a CT does not look like HU (air not near -1000, or soft tissue not near 0-100 HU).

    Cheap: percentiles of every few slices, every few voxels in-plane (~0.5 M voxels of a 512 x 512 x 200 CT).
    """
    arr = sitk.GetArrayViewFromImage(ct)
    step = max(1, arr.shape[2] // 128)
    sample = np.asarray(arr[:: max(1, arr.shape[0] // 32), ::step, ::step], dtype=np.float32)
    sample = sample[sample >= CT_PADDING_HU]
    if not sample.size:
        return Problem(patient_id, str(path), "ct_units",
                       f"CT values do not look like HU: every sampled value is below {CT_PADDING_HU:g}", WARNING)
    air = float(np.percentile(sample, 0.5))
    body = sample[sample > air + 500.0]
    tissue = float(np.median(body)) if body.size else None
    if air <= CT_AIR_MAX_HU and tissue is not None and CT_TISSUE_HU[0] <= tissue <= CT_TISSUE_HU[1]:
        return None
    seen = f"air (0.5th percentile) {air:.0f}, body median " + ("none" if tissue is None else f"{tissue:.0f}")
    return Problem(patient_id, str(path), "ct_units",
                   f"CT values do not look like HU: {seen}, stored as {ct.GetPixelIDTypeAsString()}; expected air "
                   f"near -1000 and soft tissue near 0-100 HU (a clipped unsigned CT, or HU + 1024 stored without "
                   "its rescale intercept?)", WARNING)


def read_suv_factors(path: str | Path) -> pd.DataFrame:
    """Read a table of SUV factors: PatientID, Weight (kg), InjectedDose_MBq, Delay_min.

    Any common CSV dialect (:func:`~hecktor_nnunet.io.tables.read_table`); a patient listed twice
    with the same factors is read once (warning logged), with different factors is an error.
    """
    df, _ = read_table(path)
    need = {"PatientID", "Weight", "InjectedDose_MBq", "Delay_min"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"SUV factor table {path} lacks column(s) {sorted(missing)}; "
                         f"expected {sorted(need)} (weight in kg, dose in MBq, delay in minutes)")
    df["PatientID"] = df["PatientID"].astype(str).map(normalise_id)
    df, problems = collapse_duplicates(df, str(path))
    if any(not p.usable for p in problems):
        raise ProblemsError([p for p in problems if not p.usable])
    for p in problems:
        log.warning("%s", p)
    return df.set_index("PatientID")


def bqml_to_suv(pet: sitk.Image, weight_kg: float, dose_mbq: float, delay_min: float) -> sitk.Image:
    """Body-weight SUV from activity concentration (Bq/mL), F-18 decay corrected to scan time."""
    decay = 2.0 ** (-delay_min / F18_HALF_LIFE_MIN)
    factor = (weight_kg * 1000.0) / (dose_mbq * 1e6 * decay)
    return sitk.Cast(pet, sitk.sitkFloat32) * factor


def load_case(case: Case, *, suv_factors: pd.DataFrame | None = None, extra_channels: tuple[str, ...] = (),
              bqml_threshold: float = BQML_THRESHOLD) -> LoadedCase:
    """Read and check one case.

    Raises
    ------
    CaseError
        With every problem that makes the case unusable (missing or unreadable files,
        NaN/inf, no CT/PET overlap, labels outside {0, 1, 2}, unconvertible Bq/mL PET).
    """
    pid = case.patient_id
    images = _read_images(case, extra_channels)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    ct, pet = images["CT"], images["PET"]
    ct_grid = Grid.of(ct)
    units = ct_units_problem(ct, pid, case.ct)
    if units:
        warnings.append(units)
    if overlap_box(ct_grid, Grid.of(pet)).empty:
        errors.append(Problem(pid, str(case.pet), "no_overlap",
                              "PET and CT fields of view do not overlap in physical space"))
    pet = _pet_in_suv(pet, case, suv_factors, bqml_threshold, errors, warnings)
    label, volumes = images.get("label"), None
    if label is not None:
        label, volumes = _checked_label(label, case, ct_grid, errors, warnings)
    if errors:
        raise CaseError(errors + warnings)
    extras = {k: images[k] for k in extra_channels}
    return LoadedCase(case, ct, pet, label, extras, warnings, volumes)


def _read_images(case: Case, extra_channels: tuple[str, ...]) -> dict[str, sitk.Image]:
    """CT, PET, label (when given) and the extra channels, each read and checked finite; CaseError otherwise."""
    pid = case.patient_id
    errors: list[Problem] = []
    if case.ct is None or case.pet is None:
        missing = [m for m, p in (("CT", case.ct), ("PET", case.pet)) if p is None]
        raise CaseError([Problem(pid, str(case.ct or case.pet or ""), "missing_modality",
                                 f"missing {' and '.join(missing)} image")])
    for key in extra_channels:
        if key not in case.extras:
            errors.append(Problem(pid, str(case.ct), "missing_modality", f"missing extra channel {key}"))
    images: dict[str, sitk.Image] = {}
    for what, path in [("CT", case.ct), ("PET", case.pet), ("label", case.label)] + [
            (k, case.extras[k]) for k in extra_channels if k in case.extras]:
        if path is None:
            continue
        try:
            images[what] = read_image(path, pid, what)
        except CaseError as e:
            errors += e.problems
            continue
        p = finite_problem(images[what], pid, path, what)
        if p:
            errors.append(p)
    if errors:
        raise CaseError(errors)
    return images


def _pet_in_suv(pet: sitk.Image, case: Case, suv_factors: pd.DataFrame | None, bqml_threshold: float,
                errors: list[Problem], warnings: list[Problem]) -> sitk.Image:
    """The PET in SUV: as read, or converted from Bq/mL with the patient's factors (a problem either way)."""
    pid = case.patient_id
    is_bqml, robust_max = pet_looks_like_bqml(pet, bqml_threshold)
    if not is_bqml:
        return pet
    if suv_factors is not None and pid in suv_factors.index:
        f = suv_factors.loc[pid]
        warnings.append(Problem(pid, str(case.pet), "pet_units_bqml",
                                f"PET looked like Bq/mL (99.9th percentile {robust_max:.0f}); "
                                "converted to SUV with the supplied factors", WARNING))
        return bqml_to_suv(pet, float(f["Weight"]), float(f["InjectedDose_MBq"]), float(f["Delay_min"]))
    errors.append(Problem(pid, str(case.pet), "pet_units_bqml",
                          f"PET looks like Bq/mL, not SUV (99.9th percentile {robust_max:.0f} > "
                          f"{bqml_threshold:g}); give --suv-factors with weight, dose and delay "
                          "to convert it"))
    return pet


def _checked_label(label: sitk.Image, case: Case, ct_grid: Grid, errors: list[Problem], warnings: list[Problem]
                   ) -> tuple[sitk.Image, dict | None]:
    """The label on the CT grid as UInt8, and the volumes (mL) of labels 1 and 2 in the file as stored,
    before any resampling (None when its values are invalid)."""
    pid = case.patient_id
    extra = label_values_outside(sitk.GetArrayViewFromImage(label))
    if extra:
        errors.append(Problem(pid, str(case.label), "label_values",
                              f"label values {extra} outside {{0, 1, 2}} (0 background, 1 GTVp, 2 GTVn; "
                              "non-integer values are not rounded)"))
        return label, None
    stored = label_volumes_ml(label)
    grid = Grid.of(label)
    if not grid.same_as(ct_grid):
        label = resample(label, ct_grid, "nearest", 0)
        on_ct = label_volumes_ml(label)
        change = ", ".join(f"{name} {stored[v]:.2f} -> {on_ct[v]:.2f} mL" for v, name in ((1, "GTVp"), (2, "GTVn")))
        warnings.append(Problem(pid, str(case.label), "label_grid",
                                f"label grid {grid.size} @ {_mm(grid.spacing)} mm differs from the CT grid "
                                f"{ct_grid.size} @ {_mm(ct_grid.spacing)} mm; resampled onto the CT grid with "
                                f"nearest neighbour ({change})",
                                WARNING))
    if label.GetPixelID() != sitk.sitkUInt8:
        label = sitk.Cast(label, sitk.sitkUInt8)
    for value, name in ((1, "GTVp"), (2, "GTVn")):
        if stored[value] == 0:
            warnings.append(Problem(pid, str(case.label), f"empty_{name.lower()}",
                                    f"no {name} voxel in the label", WARNING))
    return label, stored


def _mm(spacing: tuple[float, ...]) -> str:
    return " x ".join(f"{v:.3g}" for v in spacing)
