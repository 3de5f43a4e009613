"""HECKTOR trainers, augmentation axis (parts in hecktor_nnunet.training.transforms)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorPETMisreg(HecktorTrainer):
    """Random rigid PET-vs-CT motion (<= 4 mm, <= 3 deg per axis), PET only."""

    pet_misregistration = True


class nnUNetTrainerHecktorPETIntensity(HecktorTrainer):
    """PET-only global scaling (0.8-1.25) and resolution blur (sigma 0.5-3 mm)."""

    pet_intensity = True


class nnUNetTrainerHecktorPETAug(nnUNetTrainerHecktorPETMisreg, nnUNetTrainerHecktorPETIntensity):
    """Both PET augmentations."""


class nnUNetTrainerHecktorMirrorLR(HecktorTrainer):
    """Mirror only left-right (training and test-time), the anatomically plausible flip."""

    mirror_left_right_only = True
