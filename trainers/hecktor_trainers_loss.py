"""HECKTOR trainers, loss axis (parts in hecktor_nnunet.training.losses)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorFocal(HecktorTrainer):
    axis = "loss"
    what = "Dice + CE + focal loss (gamma {focal_gamma:g})"
    why = "small, hard lesions dominate the errors; the 2025 winner used a focal term"
    loss_name = "dice_ce_focal"


class nnUNetTrainerHecktorTversky(HecktorTrainer):
    axis = "loss"
    what = "Tversky (FP {tversky_alpha:g}, FN {tversky_beta:g}) + CE instead of Dice + CE"
    why = "missed lymph nodes cost GTVn F1agg more than slightly large contours"
    loss_name = "tversky"


class nnUNetTrainerHecktorFocalTversky(HecktorTrainer):
    axis = "loss"
    what = "focal-Tversky (exponent {focal_tversky_exponent:g}) + CE"
    why = "recall-weighted and focused on lesions the network still gets wrong"
    loss_name = "focal_tversky"
