"""HECKTOR trainers, architecture axis (parts in hecktor_nnunet.training.segresnet_trainer)."""

from hecktor_nnunet.training.segresnet_trainer import HecktorSegResNetTrainer
from hecktor_nnunet.trainers.hecktor_trainers_combined import nnUNetTrainerHecktorFocalPETAug


class nnUNetTrainerHecktorSegResNet(HecktorSegResNetTrainer):
    """MONAI SegResNet in nnU-Net's pipeline (no deep supervision)."""


class nnUNetTrainerHecktorSegResNetFocalPETAug(nnUNetTrainerHecktorSegResNet, nnUNetTrainerHecktorFocalPETAug):
    """SegResNet with the recommended loss and PET augmentations."""
