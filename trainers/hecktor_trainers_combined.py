"""HECKTOR trainers, combinations of single-axis variants (bodies stay empty)."""

from hecktor_nnunet.trainers.hecktor_trainers_augmentation import nnUNetTrainerHecktorPETAug
from hecktor_nnunet.trainers.hecktor_trainers_loss import nnUNetTrainerHecktorFocal, nnUNetTrainerHecktorFocalTversky
from hecktor_nnunet.trainers.hecktor_trainers_sampling import nnUNetTrainerHecktorNodeSampling


class nnUNetTrainerHecktorFocalPETAug(nnUNetTrainerHecktorFocal, nnUNetTrainerHecktorPETAug):
    """Recommended default: Dice + CE + focal with both PET augmentations."""


class nnUNetTrainerHecktorFocalTverskyPETAugNodes(nnUNetTrainerHecktorFocalTversky, nnUNetTrainerHecktorPETAug,
                                                  nnUNetTrainerHecktorNodeSampling):
    """Recall-oriented: focal-Tversky + PET augmentations + lymph-node sampling."""
