"""The inverse of conversion: label maps in converted space -> each patient's original CT grid."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import SimpleITK as sitk

from hecktor_nnunet.io.image_files import LABEL_GZIP_LEVEL, IncompleteFileError, verify_image_file, write_image
from hecktor_nnunet.io.checks import label_values_outside
from hecktor_nnunet.io.geometry import Grid, IndexBox, resample, uncrop
from hecktor_nnunet.parallel import parallel_map
from hecktor_nnunet.io.problems import CaseError, Problem
from hecktor_nnunet.io.label_maps import find_label_maps

log = logging.getLogger(__name__)

FORMATS = {"nii.gz": ".nii.gz", "mha": ".mha"}


def load_manifest(manifest: str | Path | dict) -> dict:
    """A manifest dict from a path (``conversion_manifest.json``) or a dict."""
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"conversion manifest not found: {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"conversion manifest {path} is not valid JSON ({e}); re-run hecktor-convert") from e


def restore_image(pred: sitk.Image, record: dict) -> sitk.Image:
    """Put one converted-space label map back on its original CT grid (uint8, labels 0/1/2).

    Exact (uncrop) when the case was converted on its CT grid; nearest-neighbour resampling
    otherwise (voxels outside the converted field of view are background).
    """
    pid = record["patient_id"]
    out_grid = Grid.from_dict(record["output_grid"])
    ct_grid = Grid.from_dict(record["original_ct_grid"])
    if not Grid.of(pred).same_as(out_grid, atol=1e-2):
        raise CaseError([Problem(pid, "", "grid_mismatch",
                                 f"prediction grid {Grid.of(pred).size} @ {Grid.of(pred).spacing} is not the "
                                 f"converted grid {out_grid.size} @ {out_grid.spacing} recorded in the manifest")])
    extra = label_values_outside(sitk.GetArrayViewFromImage(pred))  # before any cast: 1.5 is not 1
    if extra:
        raise CaseError([Problem(pid, "", "label_values", f"prediction has labels {extra} outside {{0, 1, 2}}")])
    pred = sitk.Cast(pred, sitk.sitkUInt8)
    if record.get("exact_crop", False):
        out_grid.apply(pred)
        return uncrop(pred, IndexBox.from_dict(record["crop_box"]), ct_grid, 0)
    return resample(pred, ct_grid, "nearest", 0, sitk.sitkUInt8)


def _restore_one(args: tuple[Path, dict, Path]) -> tuple[str, str | None]:
    path, record, out_path = args
    try:
        verify_image_file(path)
        write_image(restore_image(sitk.ReadImage(str(path)), record), out_path, gzip_level=LABEL_GZIP_LEVEL)
        return record["patient_id"], None
    except CaseError as e:
        return record["patient_id"], "; ".join(f"{p.message} [{path}]" for p in e.problems)
    except IncompleteFileError as e:
        return record["patient_id"], f"cannot read {path}: {e.strerror}"
    except OSError as e:  # WriteError names the output
        return record["patient_id"], str(e.strerror or e)
    except RuntimeError as e:
        return record["patient_id"], f"cannot read {path}: {str(e).strip().splitlines()[-1]}"


def restore_predictions(pred_dir: str | Path, manifest: str | Path | dict, out_dir: str | Path, *,
                        fmt: str = "nii.gz", workers: int = 1, quiet: bool = False) -> list[Path]:
    """Restore every prediction in ``pred_dir`` onto its patient's original CT grid.

    Files ``<PatientID>.nii.gz`` (nnU-Net's output naming) are matched to manifest records by
    normalised id; outputs are ``<out_dir>/<PatientID>.<fmt>``. Predictions without a manifest
    record and failures are errors naming the patient and file.

    Raises
    ------
    ProblemsError
        No label map in ``pred_dir``, or two files naming one patient (``CHUM_001``, ``chum-001``).
    KeyError
        A prediction without a manifest record.
    RuntimeError
        Restoring failed for some patients (each named with its file).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    m = load_manifest(manifest)
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_dir}")
    if out_dir.resolve() == pred_dir.resolve():
        raise ValueError("the output folder must differ from the prediction folder (inputs are never overwritten)")
    preds = find_label_maps(pred_dir, "prediction")  # ids normalised; two files naming one patient refused
    unknown = sorted(set(preds) - set(m["cases"]))
    if unknown:
        raise KeyError(f"prediction(s) for patient(s) {unknown} have no record in the manifest "
                       f"(files {[str(preds[u]) for u in unknown]})")
    jobs = [(path, m["cases"][pid], out_dir / f"{pid}{FORMATS[fmt]}") for pid, path in preds.items()]
    failures = [f"{pid}: {err}" for pid, err in parallel_map(_restore_one, jobs, workers, "restoring", quiet)
                if err]
    if failures:
        raise RuntimeError("restore failed for:\n  " + "\n  ".join(failures))
    return [j[2] for j in jobs]
