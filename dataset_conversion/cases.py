"""Converting cases: each case's images (and label) onto its output grid, in worker processes, resumable.

A case counts as finished only through its record (``.hecktor_cases/<ID>.json``), written after
its outputs were written and checked. The record holds the stamps (path, size, modification
time) of the case's inputs and outputs; a resumed run redoes the case when any of them differs.
:func:`convert_images` converts images only (for prediction); a whole dataset is
:func:`~hecktor_nnunet.dataset_conversion.convert.convert_release`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import pandas as pd
import SimpleITK as sitk

import hecktor_nnunet
from hecktor_nnunet.dataset_conversion.cropping import choose_box
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.io.atomic_io import WriteError, file_stamp, folder_lock, remove_temp_files, write_json
from hecktor_nnunet.io.checks import label_volumes_ml, load_case, read_suv_factors
from hecktor_nnunet.io.geometry import Grid, crop, grid_with_spacing, resample
from hecktor_nnunet.io.image_files import write_image
from hecktor_nnunet.io.problems import WARNING, CaseError, Problem
from hecktor_nnunet.io.release import Case, Release
from hecktor_nnunet.parallel import parallel_map

log = logging.getLogger(__name__)

RECORDS_DIR = ".hecktor_cases"  # one JSON per finished case: what makes a run resumable
DEFAULTS = {"CT": -1024.0, "PET": 0.0}
#: image file endings: a dataset's images (``dataset.json``'s ``file_ending``) and prediction's
#: temporary inputs, left uncompressed: gzip is ~85 % of converting a 512 x 512 x 150 case
DATASET_ENDING, PREDICTION_ENDING = ".nii.gz", ".nii"
IMAGE_ENDINGS = (DATASET_ENDING, PREDICTION_ENDING)
SUV_FACTOR_COLUMNS = ("Weight", "InjectedDose_MBq", "Delay_min")


def image_name(patient_id: str, channel: int, ending: str = DATASET_ENDING) -> str:
    """nnU-Net's image file name ``<ID>_XXXX<ending>``."""
    return f"{patient_id}_{channel:04d}{ending}"


def output_paths(patient_id: str, settings: ConversionSettings, images_dir: Path, labels_dir: Path | None,
                 ending: str = DATASET_ENDING) -> list[Path]:
    """Every file the conversion of one case writes (images, then the label if ``labels_dir``)."""
    paths = [images_dir / image_name(patient_id, i, ending) for i in range(len(settings.channels))]
    return paths + ([labels_dir / f"{patient_id}.nii.gz"] if labels_dir is not None else [])


def _channel_image(loaded, key: str) -> sitk.Image:
    return {"CT": loaded.ct, "PET": loaded.pet}.get(key) or loaded.extras[key]


def convert_loaded(loaded, settings: ConversionSettings, images_dir: Path, labels_dir: Path | None,
                   ending: str = DATASET_ENDING) -> dict:
    """Convert one checked case; returns its manifest record (geometry, files, label survival).

    ``record["outputs"]`` maps each written file (relative to ``images_dir.parent``) to its
    :func:`~hecktor_nnunet.io.atomic_io.file_stamp`; every file was checked complete before it was renamed.
    """
    case = loaded.case
    pid = case.patient_id
    ct_grid = Grid.of(loaded.ct)
    box, lost = choose_box(settings.crop, loaded.ct, loaded.pet, loaded.label, settings.crop_size_mm,
                           settings.brain_suv)
    problems = list(loaded.problems)
    if lost:
        problems.append(Problem(pid, str(case.label), "crop_enlarged",
                                f"the {settings.crop} crop would have cut {lost} labelled voxel(s); "
                                "box enlarged to keep them", WARNING))
    if settings.spacing is None:
        out_grid = box.subgrid(ct_grid)
        ct_out = crop(loaded.ct, box)
        label_out = crop(loaded.label, box) if loaded.label is not None else None
    else:
        out_grid = grid_with_spacing(ct_grid, box, settings.spacing)
        ct_out = resample(loaded.ct, out_grid, settings.interpolator, DEFAULTS["CT"])
        label_out = resample(loaded.label, out_grid, "nearest", 0) if loaded.label is not None else None
    paths = output_paths(pid, settings, images_dir, labels_dir if label_out is not None else None, ending)
    outputs = {}
    for i, key in enumerate(settings.channels):
        img = ct_out if key == "CT" else resample(_channel_image(loaded, key), out_grid, settings.interpolator,
                                                  DEFAULTS.get(key, 0.0), sitk.sitkFloat32)
        outputs[f"{images_dir.name}/{paths[i].name}"] = write_image(img, paths[i])
    survival = {}
    if label_out is not None:
        # original: the label file as stored (before any resampling onto the CT grid); converted: counted
        # on the output, not assumed (the check of the crop and resampling)
        orig = loaded.label_volumes_ml or label_volumes_ml(loaded.label)
        kept = label_volumes_ml(label_out)
        for value, name in ((1, "GTVp"), (2, "GTVn")):
            v0, v1 = orig[value], kept[value]
            survival[name] = {"original_ml": round(float(v0), 4), "converted_ml": round(float(v1), 4),
                              "kept_fraction": round(float(v1 / v0), 4) if v0 > 0 else None}
        if label_out.GetPixelID() != sitk.sitkUInt8:
            label_out = sitk.Cast(label_out, sitk.sitkUInt8)
        outputs[f"{labels_dir.name}/{paths[-1].name}"] = write_image(label_out, paths[-1])
    return {
        "patient_id": pid, "centre": case.centre, "labelled": label_out is not None,
        "source": {"ct": str(case.ct), "pet": str(case.pet), "label": str(case.label) if case.label else None},
        "original_ct_grid": ct_grid.to_dict(), "crop_box": box.to_dict(), "output_grid": out_grid.to_dict(),
        "image_interpolator": settings.interpolator, "label_interpolator": "nearest",
        "exact_crop": settings.spacing is None, "files": [p.name for p in paths[:len(settings.channels)]],
        "label_volumes": survival, "outputs": outputs, "problems": [p.to_dict() for p in problems],
    }


def input_stamps(case: Case, settings: ConversionSettings, suv_factors: pd.DataFrame | None) -> dict:
    """What a case's conversion reads: each input file's path, size and time, and its SUV factors."""
    files = {"ct": case.ct, "pet": case.pet, "label": case.label,
             **{k: case.extras.get(k) for k in settings.extra_channels}}
    out: dict = {}
    for role, path in files.items():
        try:
            out[role] = None if path is None else {"path": str(Path(path).resolve()), **file_stamp(path)}
        except OSError:
            out[role] = {"path": str(path), "missing": True}
    if suv_factors is not None and case.patient_id in suv_factors.index:
        row = suv_factors.loc[[case.patient_id]].iloc[0]
        out["suv_factors"] = {c: float(row[c]) for c in SUV_FACTOR_COLUMNS}
    return out


@dataclass(frozen=True)
class _Job:
    """One case to convert (picklable, sent to a worker)."""

    case: Case
    settings: ConversionSettings
    images_dir: Path
    labels_dir: Path | None
    records_dir: Path
    suv_factors: pd.DataFrame | None
    inputs: dict
    ending: str = DATASET_ENDING

    @property
    def record_path(self) -> Path:
        return self.records_dir / f"{self.case.patient_id}.json"


def _convert_job(job: _Job) -> dict:
    """Worker: convert one case; failures come back as a record with problems, never raised.

    A failed case leaves neither outputs nor a record behind (nnU-Net never sees half a case).
    """
    pid = job.case.patient_id
    job.record_path.unlink(missing_ok=True)
    try:
        loaded = load_case(job.case, suv_factors=job.suv_factors, extra_channels=job.settings.extra_channels)
        record = convert_loaded(loaded, job.settings, job.images_dir, job.labels_dir, job.ending)
        record["settings_digest"] = job.settings.digest()
        record["inputs"] = job.inputs
        write_json(record, job.record_path)
        return record
    except CaseError as e:
        problems = e.problems
    except WriteError as e:
        problems = [Problem(pid, e.filename or "", "write_failed", e.strerror or str(e))]
    except Exception as e:  # noqa: BLE001 - an unexpected failure still names the patient
        problems = [Problem(pid, str(job.case.ct), "conversion_failed", f"{type(e).__name__}: {e}")]
    for path in output_paths(pid, job.settings, job.images_dir, job.labels_dir, job.ending):
        path.unlink(missing_ok=True)
    job.record_path.unlink(missing_ok=True)
    return {"patient_id": pid, "failed": True, "problems": [p.to_dict() for p in problems]}


def read_json_or_none(path: Path) -> dict | None:
    """A JSON file's content; None when it is missing or unreadable (logged with the file's name)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        log.warning("ignoring %s: not valid JSON (%s), e.g. cut short by a kill; what it described is redone",
                    path, e)
        return None


def _finished(job: _Job) -> dict | None:
    """The case's record if it is finished: same settings, same inputs, the same files, each as recorded."""
    record = read_json_or_none(job.record_path)
    root = job.images_dir.parent
    expected = {f"{p.parent.name}/{p.name}" for p in output_paths(job.case.patient_id, job.settings, job.images_dir,
                                                                   job.labels_dir, job.ending)}
    if (record is None or record.get("settings_digest") != job.settings.digest()
            or record.get("inputs") != job.inputs or set(record.get("outputs") or ()) != expected):
        return None
    for rel, stamp in record["outputs"].items():
        try:
            if file_stamp(root / rel) != stamp:
                return None
        except OSError:
            return None
    return record


def run_case_jobs(cases: list[Case], settings, images_dir: Path, labels_dir: Path | None, records_dir: Path,
                  suv_factors: pd.DataFrame | None, workers: int, quiet: bool, ending: str = DATASET_ENDING
                  ) -> list[dict]:
    records_dir.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(c, settings, images_dir, labels_dir, records_dir, suv_factors,
                 input_stamps(c, settings, suv_factors), ending) for c in cases]
    done, todo = [], []
    for job in jobs:
        rec = _finished(job)
        if rec is None:
            todo.append(job)
        else:
            done.append(rec)
    if done:
        log.info("resuming: %d case(s) already converted and unchanged, %d to go", len(done), len(todo))
    new = list(parallel_map(_convert_job, todo, workers=workers, desc="converting", quiet=quiet))
    return sorted(done + new, key=lambda r: r["patient_id"])


def remove_stale(folder: Path, keep: set[str]) -> list[Path]:
    """Remove NIfTI images in ``folder`` that no current case owns (earlier runs, failed or vanished cases)."""
    stale = [p for p in sorted(folder.iterdir()) if p.name.endswith(IMAGE_ENDINGS) and p.name not in keep
             and not p.name.startswith(".")] if folder.is_dir() else []
    for p in stale:
        p.unlink()
    return stale


def remove_stale_records(records_dir: Path, ids: set[str]) -> None:
    for p in records_dir.glob("*.json"):
        if not p.name.startswith(".") and p.stem not in ids:
            p.unlink()


def owned_outputs(records: list[dict], folder: Path) -> set[str]:
    return {Path(rel).name for r in records if not r.get("failed") for rel in r["outputs"]
            if Path(rel).parent.name == folder.name}


def clear_leftovers(folders: Iterable[Path]) -> None:
    for folder in folders:
        removed = remove_temp_files(folder)
        if removed:
            log.info("removed %d temporary file(s) an interrupted run left in %s", len(removed), folder)


def convert_images(cases: Iterable[Case], images_dir: str | Path, settings: ConversionSettings, *,
                   workers: int = 1, suv_factors: str | Path | None = None, quiet: bool = False,
                   records_dir: str | Path | None = None, ending: str = PREDICTION_ENDING) -> dict:
    """Convert cases' images (no labels written) for prediction; returns a manifest dict.

    The folder is locked while converting; images and records of patients not in ``cases`` (a
    reused folder) are removed, so the folder holds exactly these cases. The manifest has the
    same shape as a dataset's ``conversion_manifest.json`` so
    :func:`~hecktor_nnunet.dataset_conversion.restore.restore_predictions` can invert it; each
    record's ``files`` names its channel images. They are written uncompressed (``ending``) by
    default: they are temporary, and gzip is most of the conversion's time.
    """
    images_dir = Path(images_dir)
    records_dir = Path(records_dir) if records_dir else images_dir / RECORDS_DIR
    unlabelled = [replace(c, label=None) for c in cases]
    factors = read_suv_factors(suv_factors) if suv_factors is not None else None
    with folder_lock(images_dir, "hecktor conversion"):
        clear_leftovers([images_dir, records_dir])
        records = run_case_jobs(unlabelled, settings, images_dir, None, records_dir, factors, workers, quiet, ending)
        remove_stale(images_dir, owned_outputs(records, images_dir))
        remove_stale_records(records_dir, {c.patient_id for c in unlabelled})
    return build_manifest(settings, records, None)


def build_manifest(settings: ConversionSettings, records: list[dict], release: Release | None) -> dict:
    ok = {r["patient_id"]: r for r in records if not r.get("failed")}
    return {
        "format_version": 1,
        "hecktor_nnunet_version": hecktor_nnunet.__version__,
        "simpleitk_version": sitk.Version_VersionString(),
        "settings": settings.to_dict(),
        "channels": list(settings.channels),
        "release": {"root": str(Path(release.root).resolve()), "layout": release.layout} if release else None,
        "cases": ok,
        "failed": {r["patient_id"]: r["problems"] for r in records if r.get("failed")},
    }
