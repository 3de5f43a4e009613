"""HECKTOR trainers, architecture axis (parts in hecktor_nnunet.training.segresnet_trainer)."""

from hecktor_nnunet.training.segresnet_trainer import HecktorSegResNetTrainer
from hecktor_nnunet.trainers.hecktor_trainers_combined import nnUNetTrainerHecktorFocalPETAug


class nnUNetTrainerHecktorSegResNet(HecktorSegResNetTrainer):
    axis = "architecture"
    what = "MONAI SegResNet instead of nnU-Net's U-Net"
    why = "the network of the 2022 winner and of the 2025 dataset paper's benchmark"


class nnUNetTrainerHecktorSegResNetFocalPETAug(nnUNetTrainerHecktorSegResNet, nnUNetTrainerHecktorFocalPETAug):
    axis = "architecture"
    what = "SegResNet with focal loss and PET augmentations"
    why = "compare architectures under the recommended training recipe"
