"""Hold out a test set from a labelled release: the images, the truth and the clinical tables, apart.

The official HECKTOR test set ships without labels or outcomes, so a group that wants to score its
whole pipeline (segmentation, radiomics, prognosis) on patients no model has seen holds some of the
training release out. :func:`split_release` writes, without copying an image (symbolic links to the
release's files)::

    OUT/train/<ID>/<ID>__CT.nii.gz, <ID>__PT.nii.gz, <ID>.nii.gz   every other patient (a flat release)
    OUT/train/clinical.csv                                          their clinical rows, outcomes included
    OUT/test/<ID>/<ID>__CT.nii.gz, <ID>__PT.nii.gz                  the held-out patients' images only
    OUT/test_labels/<ID>.nii.gz                                     their label maps (truth of Task 1)
    OUT/test_clinical.csv                                           their clinical inputs: no outcome, no HPV
    OUT/test_clinical_with_outcomes.csv                             their whole rows (truth of Tasks 2, 3)
    OUT/split.json                                                  who is where, and how it was drawn

Only patients with a label are held out (their segmentation can be scored); patients without one stay
in the training part. The draw is the conversion's centre-stratified deal
(:func:`~hecktor_nnunet.dataset_conversion.splits.make_splits`): every centre and relapse group is
spread evenly. ``test_clinical.csv`` leaves out ``Relapse``, ``RFS`` and ``HPV Status``, as the
challenge's container input does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from hecktor_nnunet.dataset_conversion.splits import make_splits
from hecktor_nnunet.io.atomic_io import atomic_folder, write_json, write_table
from hecktor_nnunet.io.problems import ERROR, ProblemsError
from hecktor_nnunet.io.release import Release, read_release

log = logging.getLogger(__name__)

#: clinical columns a model is not given at test time (the targets and HPV status, absent from ehr.json)
NOT_AN_INPUT = ("Relapse", "RFS", "HPV Status")


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target.resolve(), link)


def _link_case(case, folder: Path, with_label: bool) -> None:
    for path in (case.ct, case.pet, *case.extras.values(), case.label if with_label else None):
        if path is not None:
            name = f"{case.patient_id}{path.name[len(path.name.split('__')[0]):]}" if "__" in path.name \
                else f"{case.patient_id}{''.join(path.suffixes)}"
            _link(path, folder / case.patient_id / name)


def held_out_patients(release: Release, share: float, seed: int) -> list[str]:
    """The labelled patients held out: ``share`` of them, centre- and relapse-stratified."""
    if not 0 < share < 1:
        raise ValueError(f"the held-out share must be between 0 and 1, got {share}")
    labelled = [c.patient_id for c in release.cases if c.label is not None]
    if not labelled:
        raise ValueError(f"{release.root}: no patient has a label map: nothing to hold out and score")
    table = release.clinical[release.clinical["PatientID"].isin(labelled)] if not release.clinical.empty \
        else pd.DataFrame({"PatientID": labelled})
    table = pd.DataFrame({"PatientID": labelled}).merge(table, on="PatientID", how="left")
    table["Centre"] = [c.split("-")[0] for c in table["PatientID"]]
    n_folds = max(2, round(1 / share))
    return make_splits(table, "centre-stratified", n_folds=n_folds, seed=seed)[0]["val"]


def split_release(release_root: str | Path, out: str | Path, *, share: float = 0.2, seed: int = 0,
                  overwrite: bool = False) -> dict:
    """Split a release into a training part and a held-out test part with its truth (see the module).

    Parameters
    ----------
    release_root : path
        A release in any layout :func:`~hecktor_nnunet.io.release.read_release` reads.
    out : path
        The folder to create (written whole; an existing non-empty one is refused unless ``overwrite``).
    share : float
        Share of the labelled patients held out.
    seed : int
        Seed of the draw.

    Returns
    -------
    dict
        The content of ``split.json``: ``train``, ``test`` (PatientIDs), ``share``, ``seed``, ``release``.

    Raises
    ------
    ProblemsError
        The release has errors (unreadable clinical table, duplicate ids, a missing modality).
    """
    release = read_release(release_root)
    errors = [p for p in release.problems + release.clinical_problems if p.severity == ERROR]
    if errors:
        raise ProblemsError(errors)
    test = set(held_out_patients(release, share, seed))
    clinical = release.clinical
    with atomic_folder(out, overwrite=overwrite) as folder:
        for case in release.cases:
            held = case.patient_id in test
            _link_case(case, folder / ("test" if held else "train"), with_label=not held)
            if held:
                _link(case.label, folder / "test_labels" / f"{case.patient_id}.nii.gz")
        if not clinical.empty:
            in_test = clinical["PatientID"].isin(test)
            write_table(clinical[~in_test], folder / "train" / "clinical.csv")
            write_table(clinical[in_test], folder / "test_clinical_with_outcomes.csv")
            inputs = clinical[in_test].drop(columns=[c for c in NOT_AN_INPUT if c in clinical.columns])
            write_table(inputs, folder / "test_clinical.csv")
        record = {"release": str(Path(release_root).resolve()), "share": share, "seed": seed,
                  "train": sorted(c.patient_id for c in release.cases if c.patient_id not in test),
                  "test": sorted(test)}
        write_json(record, folder / "split.json")
    log.info("%d patient(s) for training, %d held out -> %s", len(record["train"]), len(test), out)
    return record
