"""A HECKTOR release -> an nnU-Net v2 raw dataset, case by case, resumable, with a manifest.

Steps (each small and idempotent): read the release -> check and convert every case in worker
processes (one case in memory per worker) -> write ``dataset.json``, ``clinical.csv``,
``conversion_manifest.json`` and optional ``splits_final.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import SimpleITK as sitk

import hecktor_nnunet
from hecktor_nnunet.atomic_io import write_image, write_json, write_table
from hecktor_nnunet.checks import label_counts, load_case, read_suv_factors
from hecktor_nnunet.dataset_conversion.cropping import choose_box
from hecktor_nnunet.dataset_conversion.dataset_json import build_dataset_json
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.dataset_conversion.splits import make_splits
from hecktor_nnunet.geometry import Grid, crop, grid_with_spacing, resample, voxel_volume_ml
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.problems import ERROR, WARNING, CaseError, Problem, format_report
from hecktor_nnunet.release import Case, Release, read_release

log = logging.getLogger(__name__)

MANIFEST = "conversion_manifest.json"
RECORDS_DIR = ".hecktor_cases"  # one JSON per finished case: what makes a run resumable
DEFAULTS = {"CT": -1024.0, "PET": 0.0}


@dataclass
class ConversionResult:
    """What a conversion produced: the dataset folder, converted and failed case ids, problems."""

    dataset_dir: Path
    converted: list[str]
    failed: list[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _channel_image(loaded, key: str) -> sitk.Image:
    return {"CT": loaded.ct, "PET": loaded.pet}.get(key) or loaded.extras[key]


def convert_loaded(loaded, settings: ConversionSettings, images_dir: Path, labels_dir: Path | None) -> dict:
    """Convert one checked case; returns its manifest record (geometry, files, label survival)."""
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
    files = []
    for i, key in enumerate(settings.channels):
        img = ct_out if key == "CT" else resample(_channel_image(loaded, key), out_grid, settings.interpolator,
                                                  DEFAULTS.get(key, 0.0), sitk.sitkFloat32)
        path = images_dir / f"{pid}_{i:04d}.nii.gz"
        write_image(img, path)
        files.append(path.name)
    survival = {}
    if label_out is not None:
        orig = label_counts(sitk.GetArrayViewFromImage(loaded.label))
        kept = label_counts(sitk.GetArrayViewFromImage(label_out))
        for value, name in ((1, "GTVp"), (2, "GTVn")):
            v0 = orig[value] * voxel_volume_ml(ct_grid)
            v1 = kept[value] * voxel_volume_ml(out_grid)
            survival[name] = {"original_ml": round(float(v0), 4), "converted_ml": round(float(v1), 4),
                              "kept_fraction": round(float(v1 / v0), 4) if v0 > 0 else None}
        write_image(sitk.Cast(label_out, sitk.sitkUInt8), labels_dir / f"{pid}.nii.gz")
    return {
        "patient_id": pid, "centre": case.centre, "labelled": label_out is not None,
        "source": {"ct": str(case.ct), "pet": str(case.pet), "label": str(case.label) if case.label else None},
        "original_ct_grid": ct_grid.to_dict(), "crop_box": box.to_dict(), "output_grid": out_grid.to_dict(),
        "image_interpolator": settings.interpolator, "label_interpolator": "nearest",
        "exact_crop": settings.spacing is None, "files": files, "label_volumes": survival,
        "problems": [p.to_dict() for p in problems],
    }


@dataclass(frozen=True)
class _Job:
    """One case to convert (picklable, sent to a worker)."""

    case: Case
    settings: ConversionSettings
    images_dir: Path
    labels_dir: Path | None
    records_dir: Path
    suv_factors: pd.DataFrame | None


def _convert_job(job: _Job) -> dict:
    """Worker: convert one case; failures come back as a record with problems, never raised."""
    pid = job.case.patient_id
    try:
        loaded = load_case(job.case, suv_factors=job.suv_factors, extra_channels=job.settings.extra_channels)
        record = convert_loaded(loaded, job.settings, job.images_dir, job.labels_dir)
        record["settings_digest"] = job.settings.digest()
        write_json(record, job.records_dir / f"{pid}.json")
        return record
    except CaseError as e:
        return {"patient_id": pid, "failed": True, "problems": [p.to_dict() for p in e.problems]}
    except Exception as e:  # noqa: BLE001 - an unexpected failure still names the patient
        return {"patient_id": pid, "failed": True, "problems": [
            Problem(pid, str(job.case.ct), "conversion_failed", f"{type(e).__name__}: {e}").to_dict()]}


def _finished(records_dir: Path, pid: str, digest: str) -> dict | None:
    path = records_dir / f"{pid}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("settings_digest") == digest else None


def convert_images(cases: Iterable[Case], images_dir: str | Path, settings: ConversionSettings, *,
                   workers: int = 1, suv_factors: str | Path | None = None, quiet: bool = False,
                   records_dir: str | Path | None = None) -> dict:
    """Convert cases' images (no labels written) for prediction; returns a manifest dict.

    The manifest has the same shape as a dataset's ``conversion_manifest.json`` so
    :func:`~hecktor_nnunet.dataset_conversion.restore.restore_predictions` can invert it.
    """
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    records_dir = Path(records_dir) if records_dir else images_dir / RECORDS_DIR
    unlabelled = [replace(c, label=None) for c in cases]
    factors = read_suv_factors(suv_factors) if suv_factors is not None else None
    records = _run_jobs(unlabelled, settings, images_dir, None, records_dir, factors, workers, quiet)
    return _manifest(settings, records, None)


def _run_jobs(cases: list[Case], settings, images_dir, labels_dir, records_dir, suv_factors: pd.DataFrame | None,
              workers, quiet) -> list[dict]:
    records_dir.mkdir(parents=True, exist_ok=True)
    digest = settings.digest()
    done, todo = [], []
    for c in cases:
        rec = _finished(records_dir, c.patient_id, digest)
        (done if rec is not None else todo).append(rec if rec is not None else c)
    if done:
        log.info("resuming: %d case(s) already converted, %d to go", len(done), len(todo))
    jobs = [_Job(c, settings, images_dir, labels_dir, records_dir, suv_factors) for c in todo]
    new = list(parallel_map(_convert_job, jobs, workers=workers, desc="converting", quiet=quiet))
    return sorted(done + new, key=lambda r: r["patient_id"])


def _manifest(settings: ConversionSettings, records: list[dict], release: Release | None) -> dict:
    ok = {r["patient_id"]: r for r in records if not r.get("failed")}
    return {
        "format_version": 1,
        "hecktor_nnunet_version": hecktor_nnunet.__version__,
        "simpleitk_version": sitk.Version_VersionString(),
        "settings": settings.to_dict(),
        "channels": list(settings.channels),
        "release": {"root": str(release.root), "layout": release.layout} if release else None,
        "cases": ok,
        "failed": {r["patient_id"]: r["problems"] for r in records if r.get("failed")},
    }


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetXXX_NAME`` (ids below 1000)."""
    if not 0 < int(dataset_id) < 1000:
        raise ValueError(f"dataset id must be in 1..999, got {dataset_id}")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _prepare_output(dataset_dir: Path, release_root: Path, digest: str, overwrite: bool) -> None:
    rd, dd = release_root.resolve(), dataset_dir.resolve()
    if dd == rd or dd in rd.parents or rd in dd.parents:
        raise ValueError(f"refusing to write {dataset_dir}: the dataset folder must lie outside the "
                         f"release {release_root} (and must not contain it)")
    if not dataset_dir.exists():
        return
    manifest = dataset_dir / MANIFEST
    records = dataset_dir / RECORDS_DIR
    same = False
    if manifest.is_file():
        same = ConversionSettings.from_dict(json.loads(manifest.read_text())["settings"]).digest() == digest
    elif records.is_dir():
        any_rec = next(records.glob("*.json"), None)
        same = any_rec is None or json.loads(any_rec.read_text()).get("settings_digest") == digest
    if overwrite:
        log.warning("--overwrite: removing existing dataset %s", dataset_dir)
        shutil.rmtree(dataset_dir)
    elif not same:
        raise FileExistsError(
            f"{dataset_dir} already exists and was not made by this conversion with these settings; "
            "pass overwrite=True (--overwrite) to replace it, or choose another --dataset-id")


def convert_release(
    release: str | Path | Release,
    dataset_id: int,
    *,
    name: str = "HECKTOR2025",
    raw_dir: str | Path | None = None,
    settings: ConversionSettings | None = None,
    layout: str | None = None,
    suv_factors: str | Path | None = None,
    splits: str | None = None,
    n_folds: int = 5,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    quiet: bool = False,
) -> ConversionResult:
    """Convert a release into ``<raw_dir>/DatasetXXX_NAME`` (nnU-Net v2 raw format).

    Labelled cases go to ``imagesTr``/``labelsTr``, unlabelled ones to ``imagesTs``. Cases with
    errors are skipped and listed (manifest ``failed``); the caller decides whether that is fatal.
    Re-running with the same settings resumes (finished cases are skipped).

    Parameters
    ----------
    release : path or Release
        The release folder (any layout) or an already read release.
    dataset_id : int
        nnU-Net dataset id (the project uses 5xx).
    raw_dir : path, optional
        nnU-Net raw folder (default: ``$nnUNet_raw``).
    splits : {None, "centre-stratified", "leave-one-centre-out"}
        Write ``splits_final.json`` (copied by nnU-Net's planner to the preprocessed folder).
    workers : int
        Processes (one case in memory per process).
    """
    import os

    settings = settings or ConversionSettings()
    rel = release if isinstance(release, Release) else read_release(release, layout)
    if raw_dir is None:
        raw_dir = os.environ.get("nnUNet_raw")
        if not raw_dir:
            raise ValueError("no output folder: set nnUNet_raw or pass raw_dir (-o)")
    dataset_dir = Path(raw_dir) / dataset_folder_name(dataset_id, name)
    _prepare_output(dataset_dir, rel.root, settings.digest(), overwrite)
    factors = read_suv_factors(suv_factors) if suv_factors is not None else None  # read once, fail early
    release_errors = [p for p in rel.problems if p.severity == ERROR]
    bad_ids = {p.patient_id for p in release_errors}
    usable = [c for c in rel.cases if c.patient_id not in bad_ids]
    records_dir = dataset_dir / RECORDS_DIR
    tr = [c for c in usable if c.labelled]
    ts = [c for c in usable if not c.labelled]
    records = _run_jobs(tr, settings, dataset_dir / "imagesTr", dataset_dir / "labelsTr", records_dir,
                        factors, workers, quiet)
    records += _run_jobs(ts, settings, dataset_dir / "imagesTs", None, records_dir, factors, workers, quiet)
    for pid in sorted(bad_ids - {"*"}):
        records.append({"patient_id": pid, "failed": True,
                        "problems": [p.to_dict() for p in release_errors if p.patient_id == pid]})
    manifest = _manifest(settings, records, rel)
    manifest["release_problems"] = [p.to_dict() for p in rel.problems if p.patient_id not in manifest["failed"]]
    problems = [Problem(**p) for r in records for p in r.get("problems", [])] + [
        p for p in rel.problems if p.patient_id not in bad_ids]
    converted_tr = sorted(pid for pid, r in manifest["cases"].items() if r["labelled"])
    write_json(build_dataset_json(settings, len(converted_tr), name), dataset_dir / "dataset.json")
    clinical = rel.clinical[rel.clinical["PatientID"].isin(manifest["cases"].keys())] \
        if len(rel.clinical) else rel.clinical
    write_table(clinical, dataset_dir / "clinical.csv")
    if splits:
        table = pd.DataFrame({"PatientID": converted_tr})
        table["Centre"] = [manifest["cases"][p]["centre"] for p in converted_tr]
        if "Relapse" in rel.clinical.columns:
            table = table.merge(rel.clinical[["PatientID", "Relapse"]], on="PatientID", how="left")
        folds = make_splits(table, splits, n_folds=n_folds, seed=seed)
        write_json(folds, dataset_dir / "splits_final.json")
        manifest["splits"] = {"mode": splits, "n_folds": len(folds), "seed": seed}
    write_json(manifest, dataset_dir / MANIFEST)
    result = ConversionResult(dataset_dir, sorted(manifest["cases"]), sorted(manifest["failed"]), problems)
    if not quiet:
        print(summary_text(result, manifest))
    return result


def summary_text(result: ConversionResult, manifest: dict) -> str:
    """Human-readable conversion summary: counts, label survival, problems by patient."""
    cases = manifest["cases"].values()
    lines = [f"Dataset: {result.dataset_dir}",
             f"  converted {len(result.converted)} case(s) "
             f"({sum(r['labelled'] for r in cases)} training, {sum(not r['labelled'] for r in cases)} test), "
             f"failed {len(result.failed)}"]
    kept = [(pid, name, v["kept_fraction"]) for pid, r in manifest["cases"].items()
            for name, v in r["label_volumes"].items() if v["kept_fraction"] is not None]
    if kept:
        fr = np.array([k for _, _, k in kept])
        lines.append(f"  label volume kept after conversion: min {fr.min():.3f}, median {np.median(fr):.3f}")
    lines.append(format_report(result.problems))
    return "\n".join(lines)
