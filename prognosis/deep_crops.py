"""The deep prognosis model's inputs: PET/CT crops around the lesions, mask channels and PET measures.

Per patient (:func:`crop_patient`): read CT, PET and the label map (0 background, 1 GTVp, 2 GTVn; on
the CT grid, see :func:`~hecktor_nnunet.io.label_grid.label_map_on_grid`), find the bounding box of
GTVp + GTVn, and resample onto a cube of ``size`` voxels at ``spacing_mm`` (axes along LPS, centred on
that box) four channels:

====  ======================================================================
0     CT, clipped to a soft-tissue window [-250, 250] HU and divided by 250
1     PET, ``log(1 + SUV)``
2     GTVp, fraction of each voxel inside it (the label map resampled linearly)
3     GTVn, likewise
====  ======================================================================

Outside an image's field of view the CT is air (-1024 HU) and the PET 0. With the crop come the
conventional PET measures of :func:`~hecktor_nnunet.prognosis.pet_descriptors.pet_descriptors`
(:data:`MEASURE_COLUMNS`: SUVmax, MTV and TLG of GTVp and GTVn, the number of nodes), computed on the
CT grid like the radiomics ones, under the radiomics table's column names.

What is refused, naming the patient and the file (:class:`~hecktor_nnunet.io.problems.Problem`,
severity error; the patient gets no crop): a missing or unreadable CT, PET or mask, a mask on another
grid than its CT (unless ``resample_nearest``), label values other than 0/1/2, NaN in an image
around the lesions, lesions entirely outside the PET, and a mask without any GTVp or GTVn voxel
(``mask_empty``) unless ``empty_mask="centre"``: then the crop is centred on the middle of the CT and
PET overlap, the mask channels are empty, the measures missing, and a warning names the patient.
Lesions partly outside the PET or larger than the crop are warnings.

Crops are cached (``<cache>/<PatientID>.npz``, written atomically) under a key of the settings and
the CT, PET and mask files' size and time, so a rerun, or the other task, reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import atomic_path, file_stamp, remove_temp_files
from hecktor_nnunet.io.checks import read_image
from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, crop, overlap_box, resample
from hecktor_nnunet.io.label_grid import label_map_on_grid
from hecktor_nnunet.io.label_maps import find_label_maps, label_array
from hecktor_nnunet.io.problems import WARNING, CaseError, Problem
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.pet_descriptors import pet_descriptors

log = logging.getLogger(__name__)

CHANNELS = ("CT", "PET", "GTVp", "GTVn")
CT_WINDOW_HU = (-250.0, 250.0)
AIR_HU = -1024.0
#: Regions of the PET measures (label values), as in the radiomics table.
MEASURE_REGIONS = {"GTVp": (1,), "GTVn": (2,)}
#: The measure columns, in order (radiomics table names): SUVmax, MTV and TLG of GTVp and GTVn and the
#: number of nodes, the mask-derived measures of the top HECKTOR 2025 entries; the other descriptors
#: (SUVmean, SUVpeak, the union) add columns that mostly repeat these.
MEASURE_COLUMNS = tuple(f"PET_{r}_{k}" for r in MEASURE_REGIONS for k in ("SUVmax", "MTV_ml", "TLG")) + (
    "MASK_GTVn_count",)
#: Margin (mm) of the CT-grid crop the measures are computed on (covers the 6.2 mm SUVpeak sphere).
MEASURE_MARGIN_MM = 10.0
#: Bumped when the channels, their scaling or the measures change (part of the cache key).
CROP_VERSION = 2
EMPTY_MASK = ("skip", "centre")


@dataclass(frozen=True)
class CropSettings:
    """What decides a crop.

    Attributes
    ----------
    size : int
        Voxels per side of the cube (a multiple of 8, at least 16).
    spacing_mm : float
        Its isotropic spacing (mm); the cube spans ``size * spacing_mm`` mm.
    empty_mask : {"skip", "centre"}
        A mask without lesion voxels: no crop (error ``mask_empty``), or a crop centred on the CT/PET
        overlap with empty mask channels (warning ``mask_empty_centred``).
    resample_nearest : bool
        Resample a mask that is not on its CT grid (nearest neighbour, warning) instead of refusing it.
    """

    size: int = 32
    spacing_mm: float = 4.0
    empty_mask: str = "skip"
    resample_nearest: bool = False

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 8:
            raise ValueError(f"crop size must be a multiple of 8 and at least 16 voxels, got {self.size}")
        if not self.spacing_mm > 0:
            raise ValueError(f"crop spacing must be positive (mm), got {self.spacing_mm}")
        if self.empty_mask not in EMPTY_MASK:
            raise ValueError(f"empty_mask must be one of {EMPTY_MASK}, got {self.empty_mask!r}")

    @property
    def key(self) -> str:
        """Hash of the settings and :data:`CROP_VERSION` (the cache key's settings part)."""
        text = json.dumps({**asdict(self), "version": CROP_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def grid(self, centre_mm: np.ndarray) -> Grid:
        """The cube's grid (LPS axes) centred on a physical point (mm)."""
        half = (self.size - 1) / 2 * self.spacing_mm
        origin = tuple(float(c - half) for c in centre_mm)
        return Grid((self.size,) * 3, (float(self.spacing_mm),) * 3, origin, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


@dataclass
class Crop:
    """One patient's network input.

    Attributes
    ----------
    image : ndarray, float32 (4, size, size, size)
        Channels :data:`CHANNELS`, numpy order (z, y, x) within each.
    measures : dict
        :data:`MEASURE_COLUMNS` -> value (NaN for an empty region).
    """

    image: np.ndarray
    measures: dict[str, float]


@dataclass(frozen=True)
class CropJob:
    """One patient's files and the settings (picklable for worker processes)."""

    patient_id: str
    ct: str
    pet: str
    mask: str
    settings: CropSettings
    cache_dir: str | None = None


@dataclass
class CropResult:
    patient_id: str
    crop: Crop | None
    problems: list[Problem] = field(default_factory=list)
    cached: bool = False


def _centre_of_box(grid: Grid, box: IndexBox) -> np.ndarray:
    mid = (np.asarray(box.start, dtype=float) + np.asarray(box.stop, dtype=float) - 1) / 2
    return grid.index_to_physical(mid)[0]


def _check_finite(job: CropJob, what: str, path: str, values: np.ndarray) -> None:
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise CaseError([Problem(job.patient_id, path, "non_finite",
                                 f"{what} has {bad} NaN or infinite voxel(s) in the crop around the lesions")])


def _measures(job: CropJob, ct: sitk.Image, pet: sitk.Image, label: sitk.Image, box: IndexBox) -> dict[str, float]:
    """PET measures on the CT grid around the lesions (the PET resampled linearly there, as radiomics does)."""
    grid = Grid.of(ct)
    pad = np.ceil(MEASURE_MARGIN_MM / np.asarray(grid.spacing)).astype(int)
    cbox = IndexBox.from_bounds(np.asarray(box.start) - pad, np.asarray(box.stop) + pad).intersect(IndexBox.full(grid))
    pet_crop = sitk.GetArrayFromImage(resample(pet, cbox.subgrid(grid), "linear", 0.0, sitk.sitkFloat32))
    _check_finite(job, "PET", job.pet, pet_crop)
    lab = sitk.GetArrayViewFromImage(label)[cbox.slices()]
    regions = {name: np.isin(lab, values) for name, values in MEASURE_REGIONS.items()}
    return pet_descriptors(pet_crop, np.asarray(lab), regions, tuple(reversed(grid.spacing)))


def compute_crop(job: CropJob) -> tuple[Crop, list[Problem]]:
    """One patient's crop and the warnings about it.

    Raises
    ------
    CaseError
        The problems (errors) that leave the patient without a crop; see the module docstring.
    """
    s, pid = job.settings, job.patient_id
    problems: list[Problem] = []
    ct = read_image(Path(job.ct), pid, "CT")
    pet = sitk.Cast(read_image(Path(job.pet), pid, "PET"), sitk.sitkFloat32)
    ct_grid = Grid.of(ct)
    mask, found = label_map_on_grid(read_image(Path(job.mask), pid, "mask"), ct_grid, pid, job.mask,
                                    s.resample_nearest, what="mask", reference="the CT grid")
    problems += found
    label_arr = label_array(mask, Path(job.mask), pid)
    label = sitk.GetImageFromArray(label_arr)
    label.CopyInformation(mask)
    box = bounding_box(label_arr)
    pet_fov = overlap_box(ct_grid, Grid.of(pet))
    if box is None:
        if s.empty_mask == "skip":
            raise CaseError([Problem(pid, job.mask, "mask_empty",
                                     "the mask has no GTVp or GTVn voxel: no crop (the patient is left out; "
                                     "--empty-mask centre crops the middle of the CT/PET overlap instead)")])
        if pet_fov.empty:
            raise CaseError([Problem(pid, job.pet, "pet_no_overlap", "the PET does not overlap the CT")])
        problems.append(Problem(pid, job.mask, "mask_empty_centred",
                                "the mask has no GTVp or GTVn voxel: crop centred on the middle of the CT/PET "
                                "overlap, empty mask channels, PET measures missing", WARNING))
        centre = _centre_of_box(ct_grid, pet_fov)
        measures = {c: float("nan") for c in MEASURE_COLUMNS}
    else:
        inside = box.intersect(pet_fov)
        if inside.empty:
            raise CaseError([Problem(pid, job.pet, "pet_no_overlap",
                                     "the lesions lie entirely outside the PET field of view: no crop")])
        if not pet_fov.contains(box):
            problems.append(Problem(pid, job.pet, "pet_fov",
                                    "the lesions are partly outside the PET field of view (SUV 0 there)", WARNING))
        extent = np.asarray(box.size) * np.asarray(ct_grid.spacing)
        cube = s.size * s.spacing_mm
        if np.any(extent > cube):
            problems.append(Problem(pid, job.mask, "crop_cut",
                                    f"the lesions span {tuple(round(float(e)) for e in extent)} mm, more than the "
                                    f"{cube:g} mm crop: their outer parts are cut", WARNING))
        centre = _centre_of_box(ct_grid, box)
        measures = _measures(job, ct, pet, label, box)
    grid = s.grid(centre)
    ct_arr = sitk.GetArrayFromImage(resample(ct, grid, "linear", AIR_HU, sitk.sitkFloat32))
    pet_arr = sitk.GetArrayFromImage(resample(pet, grid, "linear", 0.0, sitk.sitkFloat32))
    _check_finite(job, "CT", job.ct, ct_arr)
    _check_finite(job, "PET", job.pet, pet_arr)
    channels = [np.clip(ct_arr, *CT_WINDOW_HU) / CT_WINDOW_HU[1], np.log1p(np.clip(pet_arr, 0, None))]
    for value in (1, 2):
        region = sitk.GetImageFromArray((label_arr == value).astype(np.float32))
        region.CopyInformation(label)
        if box is not None:  # only the lesions' box matters: everything else is 0
            lo = np.maximum(np.asarray(box.start) - 1, 0)
            region = crop(region, IndexBox.from_bounds(lo, np.minimum(np.asarray(box.stop) + 1, ct_grid.size)))
        channels.append(sitk.GetArrayFromImage(resample(region, grid, "linear", 0.0, sitk.sitkFloat32)))
    image = np.stack(channels).astype(np.float32)
    return Crop(image, {c: float(measures.get(c, float("nan"))) for c in MEASURE_COLUMNS}), problems


def _stamp(job: CropJob) -> dict:
    return {k: {"path": str(Path(p).resolve()), **file_stamp(p)}
            for k, p in (("ct", job.ct), ("pet", job.pet), ("mask", job.mask))}


def _cache_path(job: CropJob) -> Path | None:
    return Path(job.cache_dir) / f"{job.patient_id}.npz" if job.cache_dir else None


def _read_cache(job: CropJob) -> CropResult | None:
    path = _cache_path(job)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            head = json.loads(str(data["head"]))
            if (head.get("key") != job.settings.key or head.get("inputs") != _stamp(job)
                    or head.get("measures") != list(MEASURE_COLUMNS)):
                return None
            crop_ = Crop(data["image"].astype(np.float32), dict(zip(MEASURE_COLUMNS, data["measures"].tolist())))
    except (OSError, ValueError, KeyError):
        return None
    problems = [Problem(**p) for p in head.get("problems", [])]
    return CropResult(job.patient_id, crop_, problems, cached=True)


def _write_cache(job: CropJob, result: CropResult) -> None:
    path = _cache_path(job)
    if path is None or result.crop is None:
        return
    head = {"patient_id": job.patient_id, "key": job.settings.key, "settings": asdict(job.settings),
            "inputs": _stamp(job), "measures": list(MEASURE_COLUMNS),
            "problems": [p.to_dict() for p in result.problems]}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, image=result.crop.image, head=np.asarray(json.dumps(head)),
                            measures=np.asarray([result.crop.measures[c] for c in MEASURE_COLUMNS], dtype=float))


def crop_patient(job: CropJob) -> CropResult:
    """The crop of one patient, from the cache when it is there (never raises: failures are problems)."""
    cached = _read_cache(job)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    try:
        crop_, problems = compute_crop(job)
    except CaseError as exc:
        return CropResult(job.patient_id, None, list(exc.problems))
    except Exception as exc:  # an inconsistent file: report it, keep the other patients going
        log.debug("crop of %s failed", job.patient_id, exc_info=True)
        return CropResult(job.patient_id, None, [Problem(job.patient_id, job.mask, "crop_failed",
                                                         f"{type(exc).__name__}: {exc}")])
    result = CropResult(job.patient_id, crop_, problems)
    _write_cache(job, result)
    log.debug("crop of %s in %.2f s", job.patient_id, time.perf_counter() - t0)
    return result


class CropStore(Mapping[str, Crop]):
    """PatientID -> :class:`Crop` of the patients that have one, and the problems of every patient.

    Attributes
    ----------
    settings : CropSettings
    problems : list of Problem
        Errors (the patient has no crop) and warnings (it has one), each naming patient and file.
    """

    def __init__(self, crops: dict[str, Crop], settings: CropSettings, problems: list[Problem] | None = None):
        self._crops = dict(crops)
        self.settings = settings
        self.problems = list(problems or [])

    def __getitem__(self, patient_id: str) -> Crop:
        try:
            return self._crops[patient_id]
        except KeyError:
            why = [p.message for p in self.problems if p.patient_id == patient_id and not p.usable]
            raise KeyError(f"patient {patient_id} has no crop"
                           + (f": {'; '.join(why)}" if why else " (not in the release or the masks)")) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._crops)

    def __len__(self) -> int:
        return len(self._crops)

    def images(self, ids) -> np.ndarray:
        """The images of ``ids`` stacked: float32 (n, 4, size, size, size)."""
        return np.stack([self[i].image for i in ids])

    def measures(self) -> pd.DataFrame:
        """The PET measures of every patient with a crop, indexed by PatientID (columns :data:`MEASURE_COLUMNS`)."""
        ids = sorted(self._crops)
        return pd.DataFrame([[self._crops[i].measures[c] for c in MEASURE_COLUMNS] for i in ids],
                            index=pd.Index(ids, name="PatientID"), columns=list(MEASURE_COLUMNS))

    def without_crop(self) -> dict[str, str]:
        """PatientID -> why it has no crop (the messages of its errors)."""
        out: dict[str, list[str]] = {}
        for p in self.problems:
            if not p.usable and p.patient_id not in self._crops:
                out.setdefault(p.patient_id, []).append(f"{p.message} ({p.file})" if p.file else p.message)
        return {k: "; ".join(v) for k, v in sorted(out.items())}


def build_crops(release_root: str | Path, masks_dir: str | Path, settings: CropSettings, *,
                patients: list[str] | None = None, cache_dir: str | Path | None = None, workers: int = 1,
                quiet: bool = False) -> CropStore:
    """Crop every patient that has CT, PET and a mask (or only ``patients``); name every other one.

    Parameters
    ----------
    release_root : path
        A release in any layout :func:`~hecktor_nnunet.io.release.read_release` reads (CT in HU, PET in SUV).
    masks_dir : path
        Label maps ``<ID>.nii.gz`` on the CT grids (true or predicted masks).
    settings : CropSettings
    patients : list of str, optional
        Only these patients (normalised ids); each one without images or mask is an error problem.
    cache_dir : path, optional
        Per-patient cache (see the module docstring).
    workers : int
        Processes.

    Returns
    -------
    CropStore
        The crops and every problem (a patient of the release without a mask, a mask without images,
        a failed crop: errors naming patient and file).
    """
    release = read_release(release_root)
    masks = find_label_maps(masks_dir, "mask")
    cases = {c.patient_id: c for c in release.cases}
    wanted = sorted(set(cases) | set(masks)) if patients is None else sorted(set(patients))
    if cache_dir:
        remove_temp_files(cache_dir)
    jobs, problems = [], []
    for pid in wanted:
        case = cases.get(pid)
        if case is None:
            problems.append(Problem(pid, str(masks.get(pid, release.root)), "no_images",
                                    f"no CT/PET for this patient in {release.root}"))
            continue
        if case.ct is None or case.pet is None:
            what = "CT" if case.ct is None else "PET"
            problems.append(Problem(pid, str(case.ct or case.pet or release.root), "missing_modality",
                                    f"no {what} image in {release.root}"))
            continue
        if pid not in masks:
            problems.append(Problem(pid, str(masks_dir), "no_mask",
                                    f"no mask {pid}.nii.gz (or .nii, .mha, .nrrd) in the mask folder"))
            continue
        jobs.append(CropJob(pid, str(case.ct), str(case.pet), str(masks[pid]), settings,
                            str(cache_dir) if cache_dir else None))
    crops = {}
    for res in parallel_map(crop_patient, jobs, workers=workers, desc="crops", quiet=quiet):
        problems += res.problems
        if res.crop is not None:
            crops[res.patient_id] = res.crop
    for p in problems:
        (log.warning if p.usable else log.error)("%s", p)
    log.info("crops of %d patient(s) (%d without one) from %s and %s", len(crops), len(wanted) - len(crops),
             release_root, masks_dir)
    return CropStore(crops, settings, problems)
