"""What a demo generates and where everything of a demo folder is (no step runs here).

The constants name the nnU-Net dataset, configuration and fold the demo trains; :class:`DemoPaths`
computes every path of a working folder once (the steps write there, ``hecktor-report --workdir``
reads there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hecktor_nnunet.training.registry import DEMO_TRAINER, TINY_TRAINER

DATASET_ID = 501
DATASET_NAME = "HECKTORDEMO"
CONFIGURATION = "3d_fullres"
FOLD = 0
MARKERS = ".demo"
#: Where the prognosis features come from, in the order of the comparison table.
MASK_SOURCES = ("predicted", "deep", "true", "clinical", "oracle")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo generates and how it runs.

    Attributes
    ----------
    cases : int
        Labelled synthetic patients (tiny size: CT 48x48x48 voxels at 4.2x4.2x6 mm).
    unlabelled : int
        Further patients with images and outcomes but no segmentation label (like the release's
        Task 2/3-only patients): segmented by the network and used by the prognosis models.
    folds : int
        Centre-stratified folds written by the conversion; fold 0 is trained, its validation
        patients are the held-out test set of the segmentation (and part of the prognosis's).
    prognosis_holdout : float
        Share of the image-only patients held out (with the segmentation's held-out patients) to
        score the prognosis models; the rest trains them.
    prognosis_folds : int
        Outer folds of the model comparison (``hecktor-prognosis compare``) on the training patients.
    seed : int
        Seed of the synthetic release, the splits and the prognosis models.
    workers : int
        Processes given to each tool (``-np``) and to nnU-Net (``nnUNet_def_n_proc``, ``nnUNet_n_proc_DA``).
    n_boot : int
        Bootstrap resamples of the 95% intervals.
    trainer : str
        nnU-Net trainer (``-tr``).
    """

    cases: int = 48
    unlabelled: int = 200
    folds: int = 4
    prognosis_holdout: float = 0.4
    prognosis_folds: int = 5
    seed: int = 0
    workers: int = 2
    n_boot: int = 1000
    trainer: str = DEMO_TRAINER


#: The smallest demo that still exercises every step (used by the test suite): the tiny trainer,
#: which shows the plumbing only, and just enough patients (about 50) for the prognosis models to
#: learn from (``prognosis.selection.MIN_PATIENTS``, ``MIN_EVENTS``, ``MIN_PER_CLASS``).
SMALLEST = DemoSettings(cases=16, unlabelled=56, folds=2, prognosis_holdout=0.3, prognosis_folds=3, n_boot=100,
                        trainer=TINY_TRAINER)


@dataclass(frozen=True)
class DemoPaths:
    """Every path of a demo working folder, computed once."""

    root: Path

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def oracle(self) -> Path:
        return self.root / "release_oracle.csv"

    @property
    def oracle_labels(self) -> Path:
        """True label maps of every patient (image-only ones included), outside the release."""
        return self.root / "release_oracle_labels"

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    @property
    def dataset_folder(self) -> str:
        return f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"

    @property
    def dataset(self) -> Path:
        return self.raw / self.dataset_folder

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def heldout(self) -> Path:
        return self.root / "heldout"

    @property
    def train_clinical(self) -> Path:
        return self.root / "train_clinical.csv"

    @property
    def features(self) -> Path:
        """Radiomics of the predicted masks."""
        return self.root / "radiomics" / "features.parquet"

    @property
    def features_true(self) -> Path:
        """Radiomics of the true masks."""
        return self.root / "radiomics_true" / "features.parquet"

    @property
    def prognosis(self) -> Path:
        """Models from the predicted masks (``rfs/``, ``hpv/``); the other sources in ``prognosis_<source>/``."""
        return self.root / "prognosis"

    def prognosis_of(self, source: str) -> Path:
        return self.prognosis if source == "predicted" else self.root / f"prognosis_{source}"

    def eval(self, task: str) -> Path:
        return self.root / "eval" / task

    def eval_of(self, task: str, source: str) -> Path:
        """``hecktor-evaluate`` folder of one task and mask source (``eval/rfs`` is the predicted masks')."""
        return self.eval(task if source == "predicted" else f"{task}_{source}")

    @property
    def comparison(self) -> Path:
        """Held-out RFS / HPV figures of every source of prognosis features (:func:`prognosis_comparison`)."""
        return self.root / "eval" / "prognosis_comparison.json"

    def progress(self, trainer: str) -> Path:
        """nnU-Net's learning curve (``progress.png``) of the trained fold."""
        return self.results / self.dataset_folder / f"{trainer}__nnUNetPlans__{CONFIGURATION}" / f"fold_{FOLD}" \
            / "progress.png"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def markers(self) -> Path:
        return self.root / MARKERS

    @property
    def report(self) -> Path:
        return self.root / "report.html"
