"""What a report is built from (:class:`ReportInputs`) and the error of an unusable input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ReportError(ValueError):
    """An input of the report is unusable (the message names the file)."""


@dataclass
class ReportInputs:
    """Where a run's outputs are; every field is optional.

    Attributes
    ----------
    dataset : path
        nnU-Net raw dataset folder holding ``conversion_manifest.json``.
    seg_eval, rfs_eval, hpv_eval : path
        ``hecktor-evaluate seg|rfs|hpv`` output folders (one run each).
    prognosis_dir : path
        Folder with ``rfs/`` and ``hpv/``; each holds a model folder (``prognosis.json``) directly or
        in ``model/``, and a cross-validation report ``cv_report.json`` in the model folder or in ``cv/``.
    features : path
        Features table from ``hecktor-radiomics`` (its metadata is read).
    release, pred : path
        The release (CT, PET, truth labels) and the predicted label maps on the CT grids, for overlays.
    training_progress : path
        nnU-Net's ``progress.png`` (learning curve) of the trained fold.
    prognosis_comparison : dict
        Held-out RFS / HPV figures per source of the features (``{"held_out_patients", "rows": [...]}``,
        rows with ``source``, ``rfs_c_index``, ``hpv_balanced_accuracy``, ``hpv_auc``...).
    pass_marks : list of dict
        ``{"metric", "value", "rule", "mark", "met"}`` targets the run is judged by.
    commands : list of dict
        ``{"step", "command", "seconds"}`` records of the commands that produced the run.
    notes : list of str
        Shown at the top (e.g. that a demo model is not a real model).
    n_overlays : int
        Patients shown as PET/CT overlays (best, median and worst GTVp Dice first).
    workdir : path
        The run's work folder: paths under it are shown relative to it (default: the report's folder).
    clinical : path
        Clinical table of the cohort table (default: ``clinical.csv`` of ``dataset``, written by hecktor-convert).
    cohort_groups : dict of str to list of str
        One cohort-table column per group (name -> patient ids), after the column of all patients.
    n_boot, seed : int
        Bootstrap resamples and seed of the intervals the report computes (Uno's C, AUC(t)).
    """

    dataset: Path | None = None
    seg_eval: Path | None = None
    rfs_eval: Path | None = None
    hpv_eval: Path | None = None
    prognosis_dir: Path | None = None
    features: Path | None = None
    release: Path | None = None
    pred: Path | None = None
    training_progress: Path | None = None
    prognosis_comparison: dict | None = None
    pass_marks: list[dict] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = "HECKTOR run report"
    n_overlays: int = 3
    workdir: Path | None = None
    clinical: Path | None = None
    cohort_groups: dict[str, list[str]] | None = None
    n_boot: int = 1000
    seed: int = 0
