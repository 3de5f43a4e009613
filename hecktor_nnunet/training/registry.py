"""Every advertised HECKTOR trainer with one line on what it changes and why.

Used by ``hecktor-nnunet trainers``, the README trainer table and the parametrised training test
(which also checks that the classes in ``trainers/`` and this list agree).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

# the installed ``hecktor_nnunet.trainers`` package (the repository's ``trainers/`` in an editable install)
TRAINERS_DIR = Path(importlib.util.find_spec("hecktor_nnunet.trainers").origin).resolve().parent
RECOMMENDED = "nnUNetTrainerHecktorFocalPETAug"
TINY_TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"
DEMO_TRAINER = "nnUNetTrainerHecktorDemoCPU"


@dataclass(frozen=True)
class TrainerInfo:
    """One trainer: its ``-tr`` name, axis, and what it changes and why (for which weakness)."""

    name: str
    axis: str
    what: str
    why: str


TRAINERS: tuple[TrainerInfo, ...] = (
    TrainerInfo("nnUNetTrainerHecktorFocal", "loss", "Dice + CE + focal loss (gamma 2)",
                "small, hard lesions dominate the errors; the 2025 winner used a focal term"),
    TrainerInfo("nnUNetTrainerHecktorTversky", "loss", "Tversky (FP 0.3, FN 0.7) + CE instead of Dice + CE",
                "missed lymph nodes cost GTVn F1agg more than slightly large contours"),
    TrainerInfo("nnUNetTrainerHecktorFocalTversky", "loss", "focal-Tversky (exponent 0.75) + CE",
                "recall-weighted and focused on lesions the network still gets wrong"),
    TrainerInfo("nnUNetTrainerHecktorPETMisreg", "augmentation",
                "random rigid shift (<= 4 mm) and rotation (<= 3 deg) of PET only, half of the patches",
                "patients move between the CT and PET acquisitions; labels follow CT"),
    TrainerInfo("nnUNetTrainerHecktorPETIntensity", "augmentation",
                "PET-only global scaling (0.8-1.25) and resolution blur (sigma 0.5-3 mm)",
                "SUV calibration and reconstruction differ between the centres' scanners"),
    TrainerInfo("nnUNetTrainerHecktorPETAug", "augmentation", "both PET augmentations",
                "both sources of PET variation at once"),
    TrainerInfo("nnUNetTrainerHecktorMirrorLR", "augmentation",
                "mirroring along left-right only (training and test-time)",
                "head-and-neck anatomy is left-right symmetric, not up-down or front-back"),
    TrainerInfo("nnUNetTrainerHecktorNodeSampling", "sampling", "a third of patches centred on GTVn voxels",
                "small nodes are rarely a patch centre with nnU-Net's any-foreground oversampling"),
    TrainerInfo("nnUNetTrainerHecktorFocalPETAug", "combined", "focal loss + both PET augmentations",
                "recommended default: targets small lesions and scanner/motion variation"),
    TrainerInfo("nnUNetTrainerHecktorFocalTverskyPETAugNodes", "combined",
                "focal-Tversky + PET augmentations + lymph-node sampling",
                "recall-oriented alternative when GTVn F1agg matters most"),
    TrainerInfo("nnUNetTrainerHecktorFocalPETAug_250epochs", "length", "recommended trainer, 250 epochs",
                "a quarter of the compute of nnU-Net's 1000 epochs, for a first model"),
    TrainerInfo("nnUNetTrainerHecktorFocalPETAug_500epochs", "length", "recommended trainer, 500 epochs",
                "half the compute of nnU-Net's 1000 epochs"),
    TrainerInfo("nnUNetTrainerHecktorDemoCPU", "demo",
                "the plans' U-Net on 32^3 patches (half centred on lesions), focal loss with nodes weighted 10x, "
                "24 epochs x 25 iterations, no test-time mirroring",
                "a model that really segments, trained on 2 CPU cores in minutes (`make demo`)"),
    TrainerInfo("nnUNetTrainerHecktorTinyCPUDebug", "debug",
                "2 epochs x 2 iterations, network <= 8 features wide; NOT a real model",
                "tests and the demo on a CPU in seconds"),
    TrainerInfo("nnUNetTrainerHecktorSegResNet", "architecture", "MONAI SegResNet instead of nnU-Net's U-Net",
                "the network of the 2022 winner and of the 2025 dataset paper's benchmark"),
    TrainerInfo("nnUNetTrainerHecktorSegResNetFocalPETAug", "architecture",
                "SegResNet with focal loss and PET augmentations",
                "compare architectures under the recommended training recipe"),
)


def trainer_names() -> list[str]:
    """The ``-tr`` names of all advertised trainers, in table order."""
    return [t.name for t in TRAINERS]


def format_table(markdown: bool = False) -> str:
    """The trainer list as plain text (one line each) or as a markdown table."""
    if markdown:
        rows = ["| Trainer (`-tr`) | Axis | What it changes | Why |", "|---|---|---|---|"]
        rows += [f"| `{t.name}`{' (default)' if t.name == RECOMMENDED else ''} | {t.axis} | {t.what} | {t.why} |"
                 for t in TRAINERS]
        return "\n".join(rows)
    width = max(len(t.name) for t in TRAINERS)
    return "\n".join(f"{t.name:<{width}}  [{t.axis}] {t.what}; why: {t.why}" for t in TRAINERS)
