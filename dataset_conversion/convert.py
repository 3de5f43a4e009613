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

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.dataset_conversion.cases import (RECORDS_DIR, build_manifest, clear_leftovers, owned_outputs,
                                                     read_json_or_none, remove_stale, remove_stale_records,
                                                     run_case_jobs)
from hecktor_nnunet.dataset_conversion.dataset_json import build_dataset_json
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.dataset_conversion.splits import make_splits
from hecktor_nnunet.io.atomic_io import LOCK_NAME, WriteError, folder_lock, is_temp_name, write_json, write_table
from hecktor_nnunet.io.checks import read_suv_factors
from hecktor_nnunet.io.clinical import ClinicalTableError
from hecktor_nnunet.io.problems import ERROR, WARNING, Problem, format_report
from hecktor_nnunet.io.release import Release, read_release

log = logging.getLogger(__name__)

MANIFEST = "conversion_manifest.json"
RUN_FILE = ".hecktor_conversion.json"  # settings and release of the conversion owning the folder, written first
SPLITS_FILE = "splits_final.json"


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
    clear_leftovers([dataset_dir] + [dataset_dir / d for d in ("imagesTr", "labelsTr", "imagesTs", RECORDS_DIR)])
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
    ClinicalTableError
        The release's clinical tables hold an unreadable outcome value or conflicting rows for a
        patient (each named with file, column and value); nothing is written.
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
    clinical_errors = [p for p in rel.clinical_problems if not p.usable]
    if clinical_errors:  # the clinical table is refused before anything is written
        raise ClinicalTableError(clinical_errors)
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
    records = run_case_jobs(tr, settings, dataset_dir / "imagesTr", dataset_dir / "labelsTr", records_dir,
                        factors, workers, quiet)
    records += run_case_jobs(ts, settings, dataset_dir / "imagesTs", None, records_dir, factors, workers, quiet)
    for pid in sorted(bad_ids - {"*"}):
        records.append({"patient_id": pid, "failed": True,
                        "problems": [p.to_dict() for p in release_errors if p.patient_id == pid]})
    coverage = _clinical_coverage(rel)
    problems = [Problem(**p) for r in records for p in r.get("problems", [])] + [
        p for p in rel.problems if p.patient_id not in bad_ids] + rel.clinical_problems + coverage
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        for p in remove_stale(dataset_dir / folder, owned_outputs(records, dataset_dir / folder)):
            pid = p.name[:-len(".nii.gz")]
            pid = pid.rsplit("_", 1)[0] if folder.startswith("images") else pid
            problems.append(Problem(pid, str(p), "stale_output",
                                    "removed: an earlier run's output that no case of this run owns", WARNING))
    remove_stale_records(records_dir, {c.patient_id for c in usable})
    manifest = build_manifest(settings, records, rel)
    manifest["release_problems"] = [p.to_dict() for p in rel.problems + rel.clinical_problems + coverage
                                    if p.patient_id not in manifest["failed"]]
    converted_tr = sorted(pid for pid, r in manifest["cases"].items() if r["labelled"])
    try:
        write_json(build_dataset_json(settings, len(converted_tr), name), dataset_dir / "dataset.json")
        clinical = rel.clinical[rel.clinical["PatientID"].isin(manifest["cases"].keys())] \
            if len(rel.clinical) else rel.clinical
        manifest["clinical"] = {
            "tables": rel.clinical.attrs.get("reading", []), "rows_written": len(clinical),
            "images_without_row": [p.patient_id for p in coverage if p.code == "no_clinical_row"],
            "rows_without_images": [p.patient_id for p in coverage if p.code == "clinical_without_images"]}
        write_table(clinical, dataset_dir / "clinical.csv")
        problems += _write_splits(dataset_dir, manifest, rel, converted_tr, splits, n_folds, seed, previous)
        write_json(manifest, dataset_dir / MANIFEST)
    except OSError as e:
        failed = sorted(manifest["failed"])
        raise WriteError(e.errno, f"{e.strerror or e}; {len(manifest['cases'])} case(s) converted, {len(failed)} "
                                  f"failed{': ' + ', '.join(failed) if failed else ''}. Free space and re-run the "
                                  "same command: finished cases are kept", e.filename) from e
    return ConversionResult(dataset_dir, sorted(manifest["cases"]), sorted(manifest["failed"]), problems, manifest)


def _clinical_coverage(rel: Release) -> list[Problem]:
    """A warning per patient on one side only: images without a clinical row, a clinical row without images.

    Ids on both sides are normalised (:func:`~hecktor_nnunet.io.ids.normalise_id`); nothing is said
    when the release has no clinical table.
    """
    if not len(rel.clinical):
        return []
    tables = ", ".join(r["file"] for r in rel.clinical.attrs.get("reading", [])) or "the clinical table"
    listed = set(rel.clinical["PatientID"])
    imaged = {c.patient_id: c for c in rel.cases if c.ct is not None or c.pet is not None}
    out = [Problem(pid, str(imaged[pid].ct or imaged[pid].pet), "no_clinical_row",
                   f"images but no row in {tables}: clinical.csv has no row for this patient", WARNING)
           for pid in sorted(set(imaged) - listed)]
    out += [Problem(pid, "", "clinical_without_images",
                    f"a row in {tables} but no CT or PET in the release: left out of clinical.csv", WARNING)
            for pid in sorted(listed - set(imaged))]
    return out


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
    clinical = manifest.get("clinical")
    if clinical and clinical["tables"]:
        n_images, n_rows = len(clinical["images_without_row"]), len(clinical["rows_without_images"])
        named = " (named below)" if n_images + n_rows else ""
        lines.append(f"  clinical.csv: {clinical['rows_written']} row(s); {n_images} patient(s) with images but no "
                     f"clinical row, {n_rows} clinical row(s) without images{named}")
    lines.append(format_report(result.problems))
    return "\n".join(lines)
