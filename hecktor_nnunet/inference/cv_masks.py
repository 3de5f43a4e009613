"""Cross-validated training masks: each training patient's label map from the fold that did not train on it.

nnU-Net writes every fold's validation predictions in converted space
(``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG/fold_k/validation/<ID>.nii.gz``). Each is
post-processed as ``hecktor-predict`` would (the setting saved with the model by ``hecktor-nnunet
postprocess-select``), restored onto the patient's original CT grid with the dataset's conversion
manifest, and written as ``<output>/<PatientID>.nii.gz`` (0/1/2): the masks to train the
prognosis models on, of the same kind as the test-time predictions.

A patient counts as finished through its record (``<output>/.hecktor_cv_masks/<ID>.json``, written
after its mask): the fold, the validation file's stamp, the post-processing and the manifest record
it was made from, and the mask's stamp. A re-run redoes a patient only when one of them differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from hecktor_nnunet.dataset_conversion.cases import read_json_or_none
from hecktor_nnunet.dataset_conversion.restore import load_manifest, restore_image
from hecktor_nnunet.inference.postprocessing import (POSTPROCESSING_FILE, Postprocessing, load_postprocessing,
                                                     postprocess_image, validation_predictions)
from hecktor_nnunet.inference.predict import ModelError, dataset_manifest, model_folder
from hecktor_nnunet.io.atomic_io import WriteError, file_stamp, folder_lock, remove_temp_files, write_json
from hecktor_nnunet.io.image_files import LABEL_GZIP_LEVEL, IncompleteFileError, verify_image_file, write_image
from hecktor_nnunet.io.problems import CaseError
from hecktor_nnunet.parallel import parallel_map

log = logging.getLogger(__name__)

RECORDS_DIR = ".hecktor_cv_masks"
SUMMARY_FILE = "cv_masks.json"


@dataclass(frozen=True)
class CvMasksResult:
    """What :func:`cv_masks` did.

    Attributes
    ----------
    output_dir : Path
    folds : dict
        Patient id -> the fold whose validation prediction gave its mask.
    written : list of str
        Patients whose mask was (re)written by this run.
    unchanged : list of str
        Patients whose mask was already there, made from the same inputs (not redone).
    missing : list of str
        Training patients in no given fold's validation (no mask; only with ``allow_missing``).
    postprocessing : Postprocessing or None
        The setting applied (None: none).
    """

    output_dir: Path
    folds: dict[str, str]
    written: list[str]
    unchanged: list[str]
    missing: list[str]
    postprocessing: Postprocessing | None


@dataclass(frozen=True)
class _Job:
    """One patient's mask (picklable, sent to a worker)."""

    patient_id: str
    source: Path
    record: dict
    setting: Postprocessing | None
    output: Path
    record_path: Path
    inputs: dict


def cv_masks(output_dir: str | Path, *, dataset: str | int, trainer: str, plans: str = "nnUNetPlans",
             configuration: str = "3d_fullres", folds: Sequence[int | str] = (0, 1, 2, 3, 4),
             postprocess: bool = True, allow_missing: bool = False, overwrite: bool = False,
             manifest: str | Path | None = None, workers: int = 1, results_dir: str | Path | None = None,
             raw_dir: str | Path | None = None, quiet: bool = False) -> CvMasksResult:
    """Write every training patient's mask from the validation of the fold that held it out.

    Parameters
    ----------
    output_dir : path
        Receives ``<PatientID>.nii.gz`` on each original CT grid (0 background, 1 GTVp, 2 GTVn),
        ``cv_masks.json`` (the fold of each patient, the post-processing, the missing patients) and
        the hidden per-patient records that make a re-run skip finished patients.
    dataset, trainer, plans, configuration, folds
        Which trained model (``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG``) and whose
        validation folders (``fold_k/validation``) to read.
    postprocess : bool
        Apply the post-processing saved with the model (as ``hecktor-predict`` does). False
        applies none, as ``hecktor-predict --no-postprocessing``.
    allow_missing : bool
        Write the other patients when some have no validation prediction (listed in the result)
        instead of refusing.
    overwrite : bool
        Redo every patient, finished or not.
    manifest : path, optional
        The training dataset's ``conversion_manifest.json`` (default
        ``$nnUNet_raw/DatasetXXX/conversion_manifest.json``).
    workers : int
        Processes (``-np``).

    Raises
    ------
    ModelError
        Unknown model, or ``postprocess`` with no post-processing saved with the model.
    FileNotFoundError
        A fold without validation predictions, or no manifest.
    ValueError
        A patient validated by two folds, a validation prediction without a training record in
        the manifest, fold ``all``, or (without ``allow_missing``) training patients in no fold's
        validation (the message names them and the folders searched).
    RuntimeError
        Patients whose mask could not be made (each named with its file); the others are written.
    """
    folder = model_folder(dataset, trainer, plans, configuration, results_dir)
    if any(str(f) == "all" for f in folds):
        raise ValueError("fold 'all' trained on every patient: its validation predictions are not held out")
    if Path(output_dir).resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"the output folder {output_dir} is inside the model folder {folder}; write elsewhere "
                         "(the validation predictions are inputs, never overwritten)")
    setting = _saved_postprocessing(folder, dataset, trainer, folds) if postprocess else None
    manifest_path = Path(manifest) if manifest is not None else _default_manifest(folder, raw_dir)
    cases = load_manifest(manifest_path)["cases"]
    file_ending = json.loads((folder / "dataset.json").read_text()).get("file_ending", ".nii.gz")
    found = validation_predictions(folder, folds, file_ending)
    missing = _check_patients(found, cases, folder, folds, manifest_path, allow_missing)
    out, records = Path(output_dir), Path(output_dir) / RECORDS_DIR
    jobs = [_job(pid, path, fold, cases[pid], setting, out, records) for pid, (fold, path) in sorted(found.items())]
    with folder_lock(out, "hecktor-nnunet cv-masks"):
        records.mkdir(exist_ok=True)
        for leftover in (out, records):
            remove_temp_files(leftover)
        todo = jobs if overwrite else [j for j in jobs if not _finished(j)]
        if len(todo) < len(jobs):
            log.info("resuming: %d mask(s) already made from the same inputs, %d to go",
                     len(jobs) - len(todo), len(todo))
        failed = {pid: err for pid, err in parallel_map(_make_mask, todo, workers, "cv masks", quiet) if err}
        folds_of = {pid: fold for pid, (fold, _) in sorted(found.items()) if pid not in failed}
        patients = {pid: {"fold": fold, "validation": str(found[pid][1])} for pid, fold in folds_of.items()}
        write_json({"model": str(folder), "folds": [str(f) for f in folds], "manifest": str(manifest_path),
                    "postprocessing": setting.to_dict() if setting is not None else None, "patients": patients,
                    "missing": missing, "failed": failed}, out / SUMMARY_FILE)
    if failed:
        raise RuntimeError("cv-masks failed for:\n  " + "\n  ".join(f"{p}: {e}" for p, e in sorted(failed.items())))
    done = {j.patient_id for j in todo}
    return CvMasksResult(out, folds_of, sorted(done), sorted(j.patient_id for j in jobs if j.patient_id not in done),
                         missing, setting)


def _saved_postprocessing(folder: Path, dataset: str | int, trainer: str, folds: Sequence[int | str]
                          ) -> Postprocessing:
    setting = load_postprocessing(folder)
    if setting is None:
        raise ModelError(f"no post-processing was chosen for {folder} ({POSTPROCESSING_FILE} is missing), but "
                         "hecktor-predict applies the chosen one at test time. Run `hecktor-nnunet postprocess-select "
                         f"-d {dataset} -tr {trainer} -f {' '.join(map(str, folds))}` first, or pass "
                         "--no-postprocessing (and predict with --no-postprocessing too)")
    return setting


def _default_manifest(folder: Path, raw_dir: str | Path | None) -> Path:
    path = dataset_manifest(folder, raw_dir)
    if path is None:
        raise FileNotFoundError("nnUNet_raw is not set: cannot find the training dataset's conversion_manifest.json; "
                                "set nnUNet_raw or pass --manifest")
    return path


def _check_patients(found: dict[str, tuple[str, Path]], cases: dict[str, dict], folder: Path,
                    folds: Sequence[int | str], manifest: Path, allow_missing: bool) -> list[str]:
    """The training patients of the manifest that no fold validated; raises unless ``allow_missing``."""
    unknown = sorted(pid for pid in found if not cases.get(pid, {}).get("labelled"))
    if unknown:
        raise ValueError(f"validation prediction(s) {[str(found[p][1]) for p in unknown]} have no training case in "
                         f"{manifest}; wrong model, dataset or --manifest")
    missing = sorted(pid for pid, record in cases.items() if record.get("labelled") and pid not in found)
    if missing and not allow_missing:
        searched = [str(folder / f"fold_{f}" / "validation") for f in folds]
        raise ValueError(f"{len(missing)} training patient(s) of {folder.parent.name} are in no validation "
                         f"prediction of folds {' '.join(map(str, folds))}: {', '.join(missing)} (searched "
                         f"{', '.join(searched)}). Give every fold (-f 0 1 2 3 4), finish the training of the folds "
                         "that hold them out (nnUNetv2_train ... --val), or pass --allow-missing to write the others")
    return missing


def _job(pid: str, source: Path, fold: str, record: dict, setting: Postprocessing | None, out: Path,
         records: Path) -> _Job:
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    inputs = {"fold": fold, "validation": {"path": str(source.resolve()), **file_stamp(source)},
              "postprocessing": setting.to_dict() if setting is not None else None, "manifest_record": digest}
    return _Job(pid, source, record, setting, out / f"{pid}.nii.gz", records / f"{pid}.json", inputs)


def _finished(job: _Job) -> bool:
    """Whether the patient's mask exists as recorded, made from the same inputs."""
    done = read_json_or_none(job.record_path)
    if done is None or done.get("inputs") != job.inputs:
        return False
    try:
        return file_stamp(job.output) == done.get("output")
    except OSError:
        return False


def _make_mask(job: _Job) -> tuple[str, str | None]:
    """Worker: post-process, restore and write one patient's mask, then its record.

    A failure is returned, not raised, and leaves neither mask nor record (no mask of older inputs).
    """
    try:
        verify_image_file(job.source)
        image = sitk.ReadImage(str(job.source))
        if job.setting is not None and not job.setting.is_identity:
            image = postprocess_image(image, job.setting)
        stamp = write_image(restore_image(image, job.record), job.output, gzip_level=LABEL_GZIP_LEVEL)
        write_json({"inputs": job.inputs, "output": stamp}, job.record_path)
        return job.patient_id, None
    except CaseError as e:
        reason = f"{'; '.join(p.message for p in e.problems)} [{job.source}]"
    except IncompleteFileError as e:
        reason = f"cannot read {job.source}: {e.strerror}"
    except WriteError as e:  # names the output
        reason = e.strerror
    except RuntimeError as e:  # SimpleITK could not read the file
        reason = f"cannot read {job.source}: {str(e).strip().splitlines()[-1]}"
    job.output.unlink(missing_ok=True)
    job.record_path.unlink(missing_ok=True)
    return job.patient_id, reason
