"""HECKTOR trainers, training-length axis of the recommended trainer, and the tiny CPU trainer."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer
from hecktor_nnunet.trainers.hecktor_trainers_combined import nnUNetTrainerHecktorFocalPETAug


class nnUNetTrainerHecktorFocalPETAug_250epochs(nnUNetTrainerHecktorFocalPETAug):
    """Recommended trainer, 250 epochs."""

    epochs = 250


class nnUNetTrainerHecktorFocalPETAug_500epochs(nnUNetTrainerHecktorFocalPETAug):
    """Recommended trainer, 500 epochs."""

    epochs = 500


class nnUNetTrainerHecktorTinyCPUDebug(HecktorTrainer):
    """NOT a real model: 2 epochs x 2 iterations, <= 8 features; for tests and the demo."""

    tiny = True
