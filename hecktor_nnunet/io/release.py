"""The one reader of a HECKTOR release: every layout becomes a list of :class:`Case`.

Supported layouts (auto-detected, or forced with ``layout=``):

``2025``
    ``Task 1/<ID>/<ID>__CT.nii.gz, <ID>__PT.nii.gz, <ID>.nii.gz`` (+ ``Task 2``, ``Task 3`` folders,
    ``HECKTOR_2025_Training_Task_{1,2,3}.csv``). Patients are merged across task folders.
``2022``
    ``imagesTr/<ID>__CT.nii.gz``, ``labelsTr/<ID>.nii.gz``, ``imagesTs/...`` and the 2022 CSVs.
``flat``
    Any folder holding ``<ID>__CT`` / ``<ID>__PT`` files (directly or one folder per patient),
    labels ``<ID>.nii.gz`` beside them if any; also a plain folder of ``<ID>.nii.gz`` label maps
    (truth for evaluation), whose cases then carry "missing_modality" problems.
``grand-challenge``
    A container input folder: ``images/ct/*.mha``, ``images/pet/*.mha`` (and ``ehr.json``).

A new layout is one more ``_read_<layout>`` function registered in :data:`READERS`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from hecktor_nnunet.io.clinical import read_clinical_tables
from hecktor_nnunet.io.ids import centre_of, is_image_file, split_image_name
from hecktor_nnunet.io.problems import ERROR, Problem

log = logging.getLogger(__name__)

MODALITY_KEYS = {"CT": "ct", "PT": "pet", "PET": "pet"}


@dataclass
class Case:
    """One patient of a release, as found on disk.

    Attributes
    ----------
    patient_id : str
        Normalised id ``<CENTRE>-<NNN>`` (``CHUM_001`` is read as ``CHUM-001``).
    centre : str
        Centre code, the id's prefix.
    ct, pet, label : Path or None
        The CT (HU), PET (SUV) and label map (0 background, 1 GTVp, 2 GTVn) files.
    extras : dict
        Further images by key (``"RTDOSE"``, ``"CTPlanning"``).
    tasks : tuple of str
        The task folders the patient appears in (2025 layout), else ``()``.
    """

    patient_id: str
    centre: str
    ct: Path | None = None
    pet: Path | None = None
    label: Path | None = None
    extras: dict[str, Path] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        return self.label is not None


@dataclass
class Release:
    """A release on disk: its cases, its clinical table (one schema) and what was wrong with them.

    ``problems`` concern the image files and cases; ``clinical_problems`` the clinical tables (an
    error there, such as an unreadable outcome or conflicting rows, makes the table unusable, not
    the images: the commands that use the table refuse it, the others go on).
    ``clinical.attrs["reading"]`` says how each table was read (dialect, spellings of coded columns).
    """

    root: Path
    layout: str
    cases: list[Case]
    clinical: pd.DataFrame
    problems: list[Problem]
    clinical_problems: list[Problem] = field(default_factory=list)

    def case(self, patient_id: str) -> Case:
        for c in self.cases:
            if c.patient_id == patient_id:
                return c
        raise KeyError(f"patient {patient_id} is not in the release at {self.root}")


def _task_dirs(root: Path) -> dict[str, Path]:
    out = {}
    for d in sorted(root.iterdir()):
        m = re.fullmatch(r"task[ _-]?(\d)", d.name, flags=re.IGNORECASE)
        if d.is_dir() and m:
            out[f"Task {m.group(1)}"] = d
    return out


def detect_layout(root: Path) -> str:
    """Guess the layout of a release folder (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"release folder not found: {root}")
    if _task_dirs(root):
        return "2025"
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return "2022"
    for base in (root, root / "input"):
        if (base / "images" / "ct").is_dir() or (base / "images" / "pet").is_dir():
            return "grand-challenge"
    if any(True for p in root.rglob("*__CT*") if is_image_file(p)) or any(is_image_file(p) for p in root.iterdir()):
        return "flat"  # <ID>__CT/__PT files, or a plain folder of <ID>.nii.gz label maps
    raise ValueError(
        f"{root} does not look like a HECKTOR release: expected 'Task 1/' folders (2025), "
        "'imagesTr/' (2022), '<ID>__CT.nii.gz' files, or 'images/ct/' (Grand Challenge input)")


class _Collector:
    """Gathers image files into cases and records duplicates."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.problems: list[Problem] = []

    def add(self, path: Path, task: str | None = None, label_only: bool = False) -> None:
        pid, key = split_image_name(path)
        if not pid:
            return
        case = self.cases.setdefault(pid, Case(pid, centre_of(pid)))
        if task and task not in case.tasks:
            case.tasks = case.tasks + (task,)
        if key is None:
            attr = "label"
        elif key.upper() in MODALITY_KEYS:
            attr = MODALITY_KEYS[key.upper()]
        elif label_only:
            return
        else:
            prev = case.extras.get(key)
            if prev is not None and prev.name != path.name:
                self._duplicate(pid, key, prev, path)
            case.extras.setdefault(key, path)
            return
        prev = getattr(case, attr)
        if prev is None:
            setattr(case, attr, path)
        elif prev.name != path.name or (task is None and prev != path):
            # same patient/modality twice in one place (e.g. CHUM_001 and CHUM-001): ambiguous
            self._duplicate(pid, attr, prev, path)

    def _duplicate(self, pid: str, what: str, a: Path, b: Path) -> None:
        self.problems.append(Problem(pid, str(b), "duplicate_id",
                                     f"two files for {what}: {a} and {b}; the id is ambiguous", ERROR))


def _read_2025(root: Path) -> tuple[list[Case], list[Problem], list[Path]]:
    col = _Collector()
    csvs: list[Path] = []
    for task, tdir in _task_dirs(root).items():
        for p in sorted(tdir.rglob("*")):
            if is_image_file(p):
                col.add(p, task)
            elif p.suffix.lower() == ".csv":
                csvs.append(p)
    csvs += sorted(root.glob("*.csv"))
    return list(col.cases.values()), col.problems, csvs


def _read_2022(root: Path) -> tuple[list[Case], list[Problem], list[Path]]:
    col = _Collector()
    for sub in ("imagesTr", "imagesTs"):
        for p in sorted((root / sub).glob("*")) if (root / sub).is_dir() else []:
            if is_image_file(p):
                col.add(p)
    for sub in ("labelsTr", "labelsTs"):
        for p in sorted((root / sub).glob("*")) if (root / sub).is_dir() else []:
            if is_image_file(p):
                col.add(p, label_only=True)
    return list(col.cases.values()), col.problems, sorted(root.rglob("*.csv"))


def _read_flat(root: Path) -> tuple[list[Case], list[Problem], list[Path]]:
    col = _Collector()
    for p in sorted(root.rglob("*")):
        if is_image_file(p):
            col.add(p)
    return list(col.cases.values()), col.problems, sorted(root.glob("*.csv"))


def _read_grand_challenge(root: Path) -> tuple[list[Case], list[Problem], list[Path]]:
    base = root / "input" if (root / "input" / "images").is_dir() else root
    cts = sorted(p for p in (base / "images" / "ct").glob("*") if is_image_file(p))
    pets = sorted(p for p in (base / "images" / "pet").glob("*") if is_image_file(p))
    problems: list[Problem] = []
    stem = lambda p: split_image_name(p)[0]  # noqa: E731
    if {stem(p) for p in cts} == {stem(p) for p in pets}:
        pairs = list(zip(cts, pets))
    elif len(cts) == len(pets):
        pairs = list(zip(cts, pets))  # container inputs carry unrelated uuids: pair by order
    else:
        pairs = list(zip(cts, pets))
        problems.append(Problem("*", str(base / "images"), "unpaired_inputs",
                                f"{len(cts)} CT and {len(pets)} PET files: cannot pair them all", ERROR))
    cases = [Case(stem(ct), centre_of(stem(ct)), ct, pet) for ct, pet in pairs]
    return cases, problems, []


READERS: dict[str, Callable[[Path], tuple[list[Case], list[Problem], list[Path]]]] = {
    "2025": _read_2025,
    "2022": _read_2022,
    "flat": _read_flat,
    "grand-challenge": _read_grand_challenge,
}


def read_release(root: str | Path, layout: str | None = None) -> Release:
    """Read a release folder into cases, one clinical table and problems.

    Only file names are read here (no image is opened); image checks are in
    :mod:`hecktor_nnunet.io.checks`.

    Parameters
    ----------
    root : path
        The release folder.
    layout : {"2025", "2022", "flat", "grand-challenge"}, optional
        Force a layout instead of detecting it.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in READERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {sorted(READERS)}")
    cases, problems, csvs = READERS[layout](root)
    cases.sort(key=lambda c: c.patient_id)
    for c in cases:
        if c.ct is None:
            problems.append(Problem(c.patient_id, str(c.pet or c.label or ""), "missing_modality",
                                    "no CT image found", ERROR))
        if c.pet is None:
            problems.append(Problem(c.patient_id, str(c.ct or c.label or ""), "missing_modality",
                                    "no PET image found", ERROR))
    clinical, clin_problems = read_clinical_tables(csvs)
    if layout == "grand-challenge":
        ehr = (root / "input" / "ehr.json") if (root / "input").is_dir() else root / "ehr.json"
        if ehr.is_file() and len(cases) == 1:
            row = json.loads(ehr.read_text())
            row["PatientID"] = cases[0].patient_id
            clinical, more = read_clinical_tables([], extra_rows=[row])
            clin_problems += more
    log.info("read %d case(s) from %s (layout %s)", len(cases), root, layout)
    return Release(root, layout, cases, clinical, problems, clin_problems)

