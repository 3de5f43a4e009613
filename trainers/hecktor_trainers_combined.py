"""HECKTOR trainers, combinations of single-axis variants (only their description in the body)."""

from hecktor_nnunet.trainers.hecktor_trainers_augmentation import nnUNetTrainerHecktorPETAug
from hecktor_nnunet.trainers.hecktor_trainers_loss import nnUNetTrainerHecktorFocal, nnUNetTrainerHecktorFocalTversky
from hecktor_nnunet.trainers.hecktor_trainers_sampling import nnUNetTrainerHecktorNodeSampling


class nnUNetTrainerHecktorFocalPETAug(nnUNetTrainerHecktorFocal, nnUNetTrainerHecktorPETAug):
    axis = "combined"
    what = "focal loss + both PET augmentations"
    why = "recommended default: targets small lesions and scanner/motion variation"


class nnUNetTrainerHecktorFocalTverskyPETAugNodes(nnUNetTrainerHecktorFocalTversky, nnUNetTrainerHecktorPETAug,
                                                  nnUNetTrainerHecktorNodeSampling):
    axis = "combined"
    what = "focal-Tversky + PET augmentations + lymph-node sampling"
    why = "recall-oriented alternative when GTVn F1agg matters most"
