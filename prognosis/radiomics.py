"""Radiomics of GTVp, GTVn, their union and an optional peritumoral shell, on PET (SUV) and CT (HU).

One row per patient with a mask, columns ``<modality>_<region>_<feature>``
(``PET_GTVp_original_firstorder_Maximum``, ``CT_GTV_original_shape_MeshVolume``, ``PET_GTVn_SUVpeak``,
``MASK_GTVn_count``) and, per region, ``flag_<region>_empty`` / ``flag_<region>_tiny`` (1 when the
region's PyRadiomics features are NaN because it is empty or smaller than ``min_volume_ml``) and
``flag_<region>_degenerate`` (1 when it is too small or flat for some feature classes on PyRadiomics'
grid: :mod:`~hecktor_nnunet.prognosis.radiomics_extent`). Every patient of the release and every mask
is accounted for: a patient without a mask, a mask without images and a mask off the CT grid are
problems naming the patient, and ``meta["patients_without_row"]`` lists them.

Per patient: read the mask (``<ID>.nii.gz`` on the CT grid: a mask on another grid is refused unless
``resample_nearest``, as ``hecktor-evaluate seg`` does), store CT and mask in the :data:`ORIENTATION`
axis order, crop the CT grid to the bounding box of all labels plus a margin, resample the PET
(linear) onto that cropped CT grid, then run PyRadiomics once per region and modality with the params
files of :data:`DEFAULT_PARAMS`. Each patient's row is cached (one JSON per patient, written
atomically) under a key that includes the settings hash and the mask, CT and PET files' size and
time, so an interrupted run resumes where it stopped.

The values are those of PyRadiomics run the plain way on the whole images stored in the
:data:`ORIENTATION` axis order (the CT as read from its file when it is stored that way; the PET
resampled linearly onto the whole CT grid, one full-grid mask per region), only cheaper: the same
patient stored LPS or RAS gives the same values, since PyRadiomics' resampling grid follows the
storage order. PyRadiomics anchors its ``resampledPixelSpacing`` grid at the mask's origin, so a
cropped input would move that grid; :func:`pyradiomics_grid` computes the grid of the whole-image run,
the CT and the label map are resampled onto it from the whole images (the small output is the only
cost), the PET from its crop (the margin covers the interpolation), and PyRadiomics runs on those
with its own resampling switched off.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from hecktor_nnunet.io.atomic_io import atomic_path, remove_temp_files, write_json, write_table
from hecktor_nnunet.io.label_maps import find_label_maps
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.prognosis.radiomics_patient import PatientJob, extract_patient, nan_row
from hecktor_nnunet.prognosis.radiomics_settings import (DEFAULT_PARAMS, MIN_VOLUME_ML, MODALITIES, ExtractionSettings,
                                                         library_versions)

log = logging.getLogger(__name__)

META_KEY = b"hecktor.radiomics"


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
    resample_nearest: bool = False,
    skip_missing: bool = False,
) -> pd.DataFrame:
    """Extract the features table of every patient that has a mask, and account for every other one.

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
    resample_nearest : bool
        Resample a mask that is not on its CT grid (nearest neighbour, warning ``resampled``) instead
        of refusing the patient (error ``grid_mismatch``, no row).
    skip_missing : bool
        A patient of the release without a mask is a warning (``no_mask``) instead of an error.

    Returns
    -------
    DataFrame
        One row per patient whose mask could be used (``PatientID`` first); ``df.attrs["radiomics"]``
        holds the metadata (params hash, settings, versions, problems, ``patients_without_row``).
    """
    settings = ExtractionSettings(str(params_pet or DEFAULT_PARAMS["PET"]), str(params_ct or DEFAULT_PARAMS["CT"]),
                                  tuple(regions), shell_mm, min_volume_ml)
    release = read_release(release_root)
    masks = find_label_maps(masks_dir, "mask")
    if cache_dir:  # temporary files a killed run left in the cache
        remove_temp_files(cache_dir)
    jobs, problems = _patient_jobs(release, masks, masks_dir, settings, cache_dir, resample_nearest, skip_missing)
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
    df = pd.DataFrame(rows, columns=["PatientID", *nan_row(settings)])  # every column, even without rows
    df = df.sort_values("PatientID").reset_index(drop=True)
    meta = _table_meta(settings, len(df), n_cached, seconds, problems)
    everyone = {c.patient_id for c in release.cases} | set(masks)
    meta["patients_without_row"] = sorted(everyone - set(df["PatientID"]))
    for p in problems:
        (log.error if p.severity == ERROR else log.warning)("%s", p)
    if out is not None:
        write_features(df, out, meta)
    df.attrs["radiomics"] = meta
    return df



def _patient_jobs(release, masks: dict[str, Path], masks_dir: str | Path, settings: ExtractionSettings,
                  cache_dir: str | Path | None, resample_nearest: bool, skip_missing: bool
                  ) -> tuple[list[PatientJob], list[Problem]]:
    """A job per mask whose patient has CT and PET in the release; a problem for every other mask and
    for every patient of the release without a mask (ids normalised alike: ``CHUM_001`` is ``CHUM-001``)."""
    problems: list[Problem] = []
    jobs = []
    for pid, mask in masks.items():
        try:
            case = release.case(pid)
        except KeyError:
            problems.append(Problem(pid, str(mask), "no_images", f"mask has no images in {release.root}", ERROR))
            continue
        if case.ct is None or case.pet is None:
            problems.append(Problem(pid, str(case.ct or case.pet or ""), "missing_modality",
                                    "needs both CT and PET", ERROR))
            continue
        jobs.append(PatientJob(pid, str(case.ct), str(case.pet), str(mask), settings,
                               str(cache_dir) if cache_dir else None, resample_nearest))
    for case in release.cases:
        if case.patient_id not in masks:
            problems.append(Problem(case.patient_id, str(masks_dir), "no_mask",
                                    "no mask <ID>.nii.gz for this patient of the release: no row"
                                    + ("" if skip_missing else " (see --skip-missing)"),
                                    WARNING if skip_missing else ERROR))
    return jobs, problems


def _table_meta(settings: ExtractionSettings, n_patients: int, n_cached: int, seconds: list[float],
                problems: list[Problem]) -> dict:
    """The metadata of a features table: settings and their hash, versions, timing, problems."""
    return {"params_hash": settings.params_hash, "settings": asdict(settings),
            "params": {m: settings.params(m) for m in MODALITIES}, "versions": library_versions(),
            "n_patients": n_patients, "n_cached": n_cached,
            "seconds_per_patient": float(np.mean(seconds)) if seconds else None,
            "problems": [p.to_dict() for p in problems]}

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
