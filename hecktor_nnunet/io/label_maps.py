"""Folders of label maps (predictions, true masks) and reading one label map with its checks.

A label-map folder holds ``<ID>.nii.gz`` / ``.nii`` / ``.mha`` / ``.nrrd`` files directly (0
background, 1 GTVp, 2 GTVn); ``CHUM_001`` and ``CHUM-001`` name one patient, so two files that
normalise to one id are an error rather than a silent choice. ``hecktor-evaluate``,
``hecktor-radiomics``, the report and the demo find their label maps here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.checks import VALID_LABELS, label_values_outside
from hecktor_nnunet.io.ids import is_image_file, split_image_name
from hecktor_nnunet.io.problems import CaseError, Problem, ProblemsError
from hecktor_nnunet.io.release import read_release


def find_label_maps(folder: str | Path, what: str = "prediction") -> dict[str, Path]:
    """``{PatientID: path}`` of the label maps directly in ``folder``.

    Parameters
    ----------
    folder : path
        The folder; hidden files and images of a modality (``<ID>__CT.nii.gz``) are skipped.
    what : str
        What the maps are (``"prediction"``, ``"mask"``), for the messages and problem codes.

    Raises
    ------
    ProblemsError
        The folder does not exist (``not_found``), holds none (``no_<what>s``), or two files
        name one patient (``duplicate_<what>``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ProblemsError([Problem("*", str(folder), "not_found", f"{what} folder does not exist")])
    found: dict[str, Path] = {}
    problems = []
    for p in sorted(folder.iterdir()):
        if not is_image_file(p):
            continue
        pid, key = split_image_name(p)
        if not pid or key is not None:
            continue
        if pid in found:
            problems.append(Problem(pid, str(p), f"duplicate_{what}",
                                    f"two {what}s for one patient: {found[pid].name} and {p.name}"))
        found.setdefault(pid, p)
    if problems:
        raise ProblemsError(problems)
    if not found:
        raise ProblemsError([Problem("*", str(folder), f"no_{what}s", f"no <ID>.nii.gz/.mha {what}s found")])
    return found


def find_truth_labels(truth: str | Path) -> dict[str, Path]:
    """True label maps: those of a release folder (any layout) or of a folder of ``<ID>.nii.gz``/``.mha``.

    Raises
    ------
    ProblemsError
        The folder does not exist, holds no label map, or two label files name one patient.
    """
    truth = Path(truth)
    if not truth.is_dir():
        raise ProblemsError([Problem("*", str(truth), "not_found", "truth folder does not exist")])
    rel = read_release(truth)
    # only duplicated label maps matter here (a label file has no "__KEY" in its name)
    dups = [p for p in rel.problems if p.code == "duplicate_id" and split_image_name(Path(p.file))[1] is None]
    if dups:
        raise ProblemsError(dups)
    labels = {c.patient_id: c.label for c in rel.cases if c.label is not None}
    if not labels:
        raise ProblemsError([Problem("*", str(truth), "no_labels", "no label maps (<ID>.nii.gz) found")])
    return labels


def label_array(image: sitk.Image, path: Path, patient_id: str) -> np.ndarray:
    """The voxels of a label map as ``uint8`` (z, y, x), after checking every value is 0, 1 or 2.

    Raises
    ------
    CaseError
        ``bad_label_values``, naming the values (non-integer ones included) and how many voxels hold them.
    """
    arr = sitk.GetArrayViewFromImage(image)
    bad = label_values_outside(arr)
    if bad:
        n = int(np.count_nonzero(~np.isin(arr, VALID_LABELS)))
        raise CaseError([Problem(patient_id, str(path), "bad_label_values",
                                 f"labels outside {{0, 1, 2}}: {bad[:5]} ({n} voxels)")])
    return arr.astype(np.uint8)


def read_label_map(path: Path, patient_id: str, what: str = "label map") -> tuple[sitk.Image, np.ndarray]:
    """Read a 3-D label map: the image and its checked ``uint8`` array (see :func:`label_array`).

    Raises
    ------
    CaseError
        ``bad_image`` when the file is not a 3-D scalar image; ``bad_label_values``.
    """
    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError([Problem(patient_id, str(path), "bad_image", f"{what} must be a 3D scalar image")])
    return image, label_array(image, path, patient_id)
