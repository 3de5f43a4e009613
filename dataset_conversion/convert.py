"""A HECKTOR release -> an nnU-Net v2 raw dataset, case by case, resumable, with a manifest.

Steps (each small and idempotent): read the release -> lock the dataset folder and clear what an
interrupted run left -> check and convert every case in worker processes (one case in memory per
worker) -> remove outputs no current case owns -> write ``dataset.json``, ``clinical.csv``,
``conversion_manifest.json`` and optional ``splits_final.json``.

A case counts as finished only through its record (``.hecktor_cases/<ID>.json``), written after
its outputs were written and checked. The record holds the stamps (path, size, modification
time) of the case's inputs and outputs; a resumed run redoes the case when any of them differs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import SimpleITK as sitk

import hecktor_nnunet
from hecktor_nnunet.io.atomic_io import (LOCK_NAME, WriteError, file_stamp, folder_lock, is_temp_name,
                                         remove_temp_files, write_json, write_table)
from hecktor_nnunet.io.image_files import write_image
from hecktor_nnunet.io.checks import label_counts, load_case, read_suv_factors
from hecktor_nnunet.dataset_conversion.cropping import choose_box
from hecktor_nnunet.dataset_conversion.dataset_json import build_dataset_json
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.dataset_conversion.splits import make_splits
from hecktor_nnunet.io.geometry import Grid, crop, grid_with_spacing, resample, voxel_volume_ml
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.io.problems import ERROR, WARNING, CaseError, Problem, format_report
from hecktor_nnunet.io.release import Case, Release, read_release

log = logging.getLogger(__name__)

MANIFEST = "conversion_manifest.json"
RECORDS_DIR = ".hecktor_cases"  # one JSON per finished case: what makes a run resumable
RUN_FILE = ".hecktor_conversion.json"  # settings and release of the conversion owning the folder, written first
SPLITS_FILE = "splits_final.json"
DEFAULTS = {"CT": -1024.0, "PET": 0.0}
SUV_FACTOR_COLUMNS = ("Weight", "InjectedDose_MBq", "Delay_min")


@dataclass
class ConversionResult:
    """What a conversion produced: the dataset folder, converted and failed case ids, problems, manifest."""

    dataset_dir: Path
    converted: list[str]
    failed: list[str]
    problems: list[Problem] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def image_name(patient_id: str, channel: int) -> str:
    """nnU-Net's image file name ``<ID>_XXXX.nii.gz``."""
    return f"{patient_id}_{channel:04d}.nii.gz"


def output_paths(patient_id: str, settings: ConversionSettings, images_dir: Path, labels_dir: Path | None
                 ) -> list[Path]:
    """Every file the conversion of one case writes (images, then the label if ``labels_dir``)."""
    paths = [images_dir / image_name(patient_id, i) for i in range(len(settings.channels))]
    return paths + ([labels_dir / f"{patient_id}.nii.gz"] if labels_dir is not None else [])


def _channel_image(loaded, key: str) -> sitk.Image:
    return {"CT": loaded.ct, "PET": loaded.pet}.get(key) or loaded.extras[key]


def convert_loaded(loaded, settings: ConversionSettings, images_dir: Path, labels_dir: Path | None) -> dict:
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
    paths = output_paths(pid, settings, images_dir, labels_dir if label_out is not None else None)
    outputs = {}
    for i, key in enumerate(settings.channels):
        img = ct_out if key == "CT" else resample(_channel_image(loaded, key), out_grid, settings.interpolator,
                                                  DEFAULTS.get(key, 0.0), sitk.sitkFloat32)
        outputs[f"{images_dir.name}/{paths[i].name}"] = write_image(img, paths[i])
    survival = {}
    if label_out is not None:
        orig = loaded.label_counts or label_counts(sitk.GetArrayViewFromImage(loaded.label))
        kept = label_counts(sitk.GetArrayViewFromImage(label_out))  # counted, not assumed: the check of the crop
        for value, name in ((1, "GTVp"), (2, "GTVn")):
            v0 = orig[value] * voxel_volume_ml(ct_grid)
            v1 = kept[value] * voxel_volume_ml(out_grid)
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
        record = convert_loaded(loaded, job.settings, job.images_dir, job.labels_dir)
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
    for path in output_paths(pid, job.settings, job.images_dir, job.labels_dir):
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
    """The case's record if it is finished: same settings, same inputs, every output as recorded."""
    record = read_json_or_none(job.record_path)
    if (record is None or record.get("settings_digest") != job.settings.digest()
            or record.get("inputs") != job.inputs or not record.get("outputs")):
        return None
    root = job.images_dir.parent
    for rel, stamp in record["outputs"].items():
        try:
            if file_stamp(root / rel) != stamp:
                return None
        except OSError:
            return None
    return record


def _run_jobs(cases: list[Case], settings, images_dir: Path, labels_dir: Path | None, records_dir: Path,
              suv_factors: pd.DataFrame | None, workers: int, quiet: bool) -> list[dict]:
    records_dir.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(c, settings, images_dir, labels_dir, records_dir, suv_factors,
                 input_stamps(c, settings, suv_factors)) for c in cases]
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


def _remove_stale(folder: Path, keep: set[str]) -> list[Path]:
    """Remove ``*.nii.gz`` in ``folder`` that no current case owns (earlier runs, failed or vanished cases)."""
    stale = [p for p in sorted(folder.glob("*.nii.gz")) if p.name not in keep and not p.name.startswith(".")] \
        if folder.is_dir() else []
    for p in stale:
        p.unlink()
    return stale


def _remove_stale_records(records_dir: Path, ids: set[str]) -> None:
    for p in records_dir.glob("*.json"):
        if not p.name.startswith(".") and p.stem not in ids:
            p.unlink()


def _owned(records: list[dict], folder: Path) -> set[str]:
    return {Path(rel).name for r in records if not r.get("failed") for rel in r["outputs"]
            if Path(rel).parent.name == folder.name}


def _clear_leftovers(folders: Iterable[Path]) -> None:
    for folder in folders:
        removed = remove_temp_files(folder)
        if removed:
            log.info("removed %d temporary file(s) an interrupted run left in %s", len(removed), folder)


def convert_images(cases: Iterable[Case], images_dir: str | Path, settings: ConversionSettings, *,
                   workers: int = 1, suv_factors: str | Path | None = None, quiet: bool = False,
                   records_dir: str | Path | None = None) -> dict:
    """Convert cases' images (no labels written) for prediction; returns a manifest dict.

    The folder is locked while converting; images and records of patients not in ``cases`` (a
    reused folder) are removed, so the folder holds exactly these cases. The manifest has the
    same shape as a dataset's ``conversion_manifest.json`` so
    :func:`~hecktor_nnunet.dataset_conversion.restore.restore_predictions` can invert it.
    """
    images_dir = Path(images_dir)
    records_dir = Path(records_dir) if records_dir else images_dir / RECORDS_DIR
    unlabelled = [replace(c, label=None) for c in cases]
    factors = read_suv_factors(suv_factors) if suv_factors is not None else None
    with folder_lock(images_dir, "hecktor conversion"):
        _clear_leftovers([images_dir, records_dir])
        records = _run_jobs(unlabelled, settings, images_dir, None, records_dir, factors, workers, quiet)
        _remove_stale(images_dir, _owned(records, images_dir))
        _remove_stale_records(records_dir, {c.patient_id for c in unlabelled})
    return _manifest(settings, records, None)


def _manifest(settings: ConversionSettings, records: list[dict], release: Release | None) -> dict:
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


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetXXX_NAME`` (ids below 1000)."""
    if not 0 < int(dataset_id) < 1000:
        raise ValueError(f"dataset id must be in 1..999, got {dataset_id}")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _owner(dataset_dir: Path) -> dict | None:
    """Who made ``dataset_dir``: ``{}`` when new or empty, the settings and release of the conversion
    that made it, or None when something else did."""
    if not dataset_dir.is_dir() or not any(p.name != LOCK_NAME and not is_temp_name(p.name)
                                           for p in dataset_dir.iterdir()):
        return {}
    run = read_json_or_none(dataset_dir / RUN_FILE)
    if run is not None:
        return run
    manifest = read_json_or_none(dataset_dir / MANIFEST)
    if manifest is not None and "settings" in manifest:
        return {"settings": manifest["settings"], "release": (manifest.get("release") or {}).get("root")}
    return None


def _refuse_foreign(dataset_dir: Path, release_root: Path, overwrite: bool) -> None:
    rd, dd = release_root.resolve(), dataset_dir.resolve()
    if dd == rd or dd in rd.parents or rd in dd.parents:
        raise ValueError(f"refusing to write {dataset_dir}: the dataset folder must lie outside the "
                         f"release {release_root} (and must not contain it)")
    if not overwrite and _owner(dataset_dir) is None:
        raise FileExistsError(f"{dataset_dir} already exists and was not made by hecktor-convert; pass "
                              "overwrite=True (--overwrite) to replace it, or choose another --dataset-id")


def _prepare_output(dataset_dir: Path, release_root: Path, settings: ConversionSettings, overwrite: bool
                    ) -> dict | None:
    """Under the folder's lock: refuse, clear (``overwrite``) or resume; returns the previous manifest."""
    owner = _owner(dataset_dir)
    release = str(release_root.resolve())
    if owner and not overwrite:
        if ConversionSettings.from_dict(owner["settings"]).digest() != settings.digest():
            raise FileExistsError(
                f"{dataset_dir} already exists and was not made by this conversion with these settings; "
                "pass overwrite=True (--overwrite) to replace it, or choose another --dataset-id")
        if owner.get("release") and Path(owner["release"]).resolve() != Path(release):
            raise FileExistsError(
                f"{dataset_dir} holds a conversion of another release ({owner['release']}); pass "
                "overwrite=True (--overwrite) to replace it, or choose another --dataset-id")
    if overwrite and owner != {}:
        log.warning("--overwrite: removing the contents of %s", dataset_dir)
        for p in dataset_dir.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    previous = read_json_or_none(dataset_dir / MANIFEST)
    _clear_leftovers([dataset_dir] + [dataset_dir / d for d in ("imagesTr", "labelsTr", "imagesTs", RECORDS_DIR)])
    write_json({"settings": settings.to_dict(), "release": release}, dataset_dir / RUN_FILE)
    return previous


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
    Re-running with the same settings on the same release resumes: a case is redone when its
    inputs changed or an output is missing or changed; outputs of cases no longer converted are
    removed. Nothing is printed (see :func:`summary_text`).

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
    overwrite : bool
        Replace a dataset folder made with other settings, from another release, or by another tool.
    quiet : bool
        No progress bar.

    Raises
    ------
    FileExistsError
        The folder holds another conversion (settings or release) or foreign files, without ``overwrite``.
    FolderBusyError
        Another run is writing the same dataset folder.
    WriteError
        A dataset-level file (``dataset.json``, manifest...) could not be written; the message says
        which cases were converted and which failed.
    """
    settings = settings or ConversionSettings()
    rel = release if isinstance(release, Release) else read_release(release, layout)
    if raw_dir is None:
        raw_dir = os.environ.get("nnUNet_raw")
        if not raw_dir:
            raise ValueError("no output folder: set nnUNet_raw or pass raw_dir (-o)")
    dataset_dir = Path(raw_dir) / dataset_folder_name(dataset_id, name)
    _refuse_foreign(dataset_dir, rel.root, overwrite)
    factors = read_suv_factors(suv_factors) if suv_factors is not None else None  # read once, fail early
    with folder_lock(dataset_dir, "hecktor-convert"):
        previous = _prepare_output(dataset_dir, rel.root, settings, overwrite)
        return _convert_into(dataset_dir, rel, settings, factors, previous, name=name, splits=splits,
                             n_folds=n_folds, seed=seed, workers=workers, quiet=quiet)


def _convert_into(dataset_dir: Path, rel: Release, settings: ConversionSettings, factors: pd.DataFrame | None,
                  previous: dict | None, *, name: str, splits: str | None, n_folds: int, seed: int, workers: int,
                  quiet: bool) -> ConversionResult:
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
    problems = [Problem(**p) for r in records for p in r.get("problems", [])] + [
        p for p in rel.problems if p.patient_id not in bad_ids]
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        for p in _remove_stale(dataset_dir / folder, _owned(records, dataset_dir / folder)):
            pid = p.name[:-len(".nii.gz")]
            pid = pid.rsplit("_", 1)[0] if folder.startswith("images") else pid
            problems.append(Problem(pid, str(p), "stale_output",
                                    "removed: an earlier run's output that no case of this run owns", WARNING))
    _remove_stale_records(records_dir, {c.patient_id for c in usable})
    manifest = _manifest(settings, records, rel)
    manifest["release_problems"] = [p.to_dict() for p in rel.problems if p.patient_id not in manifest["failed"]]
    converted_tr = sorted(pid for pid, r in manifest["cases"].items() if r["labelled"])
    try:
        write_json(build_dataset_json(settings, len(converted_tr), name), dataset_dir / "dataset.json")
        clinical = rel.clinical[rel.clinical["PatientID"].isin(manifest["cases"].keys())] \
            if len(rel.clinical) else rel.clinical
        write_table(clinical, dataset_dir / "clinical.csv")
        problems += _write_splits(dataset_dir, manifest, rel, converted_tr, splits, n_folds, seed, previous)
        write_json(manifest, dataset_dir / MANIFEST)
    except OSError as e:
        failed = sorted(manifest["failed"])
        raise WriteError(e.errno, f"{e.strerror or e}; {len(manifest['cases'])} case(s) converted, {len(failed)} "
                                  f"failed{': ' + ', '.join(failed) if failed else ''}. Free space and re-run the "
                                  "same command: finished cases are kept", e.filename) from e
    return ConversionResult(dataset_dir, sorted(manifest["cases"]), sorted(manifest["failed"]), problems, manifest)


def _write_splits(dataset_dir: Path, manifest: dict, rel: Release, converted_tr: list[str], splits: str | None,
                  n_folds: int, seed: int, previous: dict | None) -> list[Problem]:
    """Write ``splits_final.json`` (recorded in ``manifest``), or remove the one an earlier run wrote."""
    path = dataset_dir / SPLITS_FILE
    if splits:
        table = pd.DataFrame({"PatientID": converted_tr})
        table["Centre"] = [manifest["cases"][p]["centre"] for p in converted_tr]
        if "Relapse" in rel.clinical.columns:
            table = table.merge(rel.clinical[["PatientID", "Relapse"]], on="PatientID", how="left")
        folds = make_splits(table, splits, n_folds=n_folds, seed=seed)
        write_json(folds, path)
        manifest["splits"] = {"mode": splits, "n_folds": len(folds), "seed": seed}
        return []
    if not path.exists():
        return []
    if previous is not None and previous.get("splits"):
        path.unlink()
        return [Problem("*", str(path), "stale_splits", "removed the splits_final.json an earlier run wrote with "
                        f"--splits {previous['splits']['mode']}; pass --splits to write it again", WARNING)]
    manifest["splits"] = {"mode": "kept: not written by hecktor-convert"}
    return [Problem("*", str(path), "splits_kept", "splits_final.json was not written by hecktor-convert; kept as "
                    "it is (its cases are not checked)", WARNING)]


def summary_text(result: ConversionResult) -> str:
    """Human-readable conversion summary: counts, label survival, problems by patient."""
    manifest = result.manifest
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
