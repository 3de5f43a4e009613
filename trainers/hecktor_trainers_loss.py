"""HECKTOR trainers, loss axis (parts in hecktor_nnunet.training.losses)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorFocal(HecktorTrainer):
    """Dice + CE + focal (gamma 2): more gradient from small, hard lesions."""

    loss_name = "dice_ce_focal"


class nnUNetTrainerHecktorTversky(HecktorTrainer):
    """Tversky (alpha 0.3 FP, beta 0.7 FN) + CE: favours recall, fewer missed nodes."""

    loss_name = "tversky"


class nnUNetTrainerHecktorFocalTversky(HecktorTrainer):
    """Focal-Tversky (exponent 0.75) + CE: recall-weighted and focused on poorly segmented lesions."""

    loss_name = "focal_tversky"
