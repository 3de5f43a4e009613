"""Every advertised HECKTOR trainer, grouped by axis, in the order of the trainer table.

Each trainer sets the settings of the behaviours it inherits (:mod:`hecktor_nnunet.training.behaviours`)
and says in its own body on which ``axis`` it varies nnU-Net, ``what`` it changes and ``why``; a
combination is a class with several parents and only its description in the body. The classes are
defined here, once: the ``trainers/`` folder that ``nnUNet_extTrainer`` points at only binds them under
their names (``trainers/hecktor_trainers.py``), so nnU-Net's lookup and ``import`` give the same class.
"""

from hecktor_nnunet.training.base_trainer import HecktorTrainer, NetworkSize, Schedule
from hecktor_nnunet.training.behaviours import (HecktorLoss, HecktorMirroring, HecktorNodeSampling,
                                                HecktorPETAugmentation, HecktorSegResNet)
from hecktor_nnunet.training.losses import DiceCEFocal, TverskyCE
from hecktor_nnunet.training.transforms import PETIntensity, PETMisregistration


# -- loss (parts in hecktor_nnunet.training.losses) ------------------------------------------------------
class nnUNetTrainerHecktorFocal(HecktorLoss):
    axis = "loss"
    what = "Dice + CE + focal loss (gamma {loss_recipe.gamma:g})"
    why = "small, hard lesions dominate the errors (a hypothesis until a GPU comparison)"
    loss_recipe = DiceCEFocal()


class nnUNetTrainerHecktorTversky(HecktorLoss):
    axis = "loss"
    what = "Tversky (FP {loss_recipe.alpha:g}, FN {loss_recipe.beta:g}) + CE instead of Dice + CE"
    why = "missed lymph nodes cost GTVn F1agg more than slightly large contours"
    loss_recipe = TverskyCE()


class nnUNetTrainerHecktorFocalTversky(HecktorLoss):
    axis = "loss"
    what = "focal-Tversky (exponent {loss_recipe.exponent:g}) + CE"
    why = "recall-weighted and focused on lesions the network still gets wrong"
    loss_recipe = TverskyCE(exponent=0.75)


# -- augmentation (parts in hecktor_nnunet.training.transforms) ------------------------------------------
class nnUNetTrainerHecktorPETMisreg(HecktorPETAugmentation):
    axis = "augmentation"
    what = ("random rigid shift (<= {pet_misregistration.max_shift_mm:g} mm) and rotation "
            "(<= {pet_misregistration.max_rotation_deg:g} deg) of PET only, {pet_misregistration.p:.0%} of the patches")
    why = "patients move between the CT and PET acquisitions; labels follow CT"
    pet_misregistration = PETMisregistration()


class nnUNetTrainerHecktorPETIntensity(HecktorPETAugmentation):
    axis = "augmentation"
    what = ("PET-only global scaling ({pet_intensity.scale_range[0]:g}-{pet_intensity.scale_range[1]:g}) and "
            "resolution blur (sigma {pet_intensity.blur_sigma_mm[0]:g}-{pet_intensity.blur_sigma_mm[1]:g} mm)")
    why = "SUV calibration and reconstruction differ between the centres' scanners"
    pet_intensity = PETIntensity()


class nnUNetTrainerHecktorPETAug(nnUNetTrainerHecktorPETMisreg, nnUNetTrainerHecktorPETIntensity):
    axis = "augmentation"
    what = "both PET augmentations"
    why = "both sources of PET variation at once"


class nnUNetTrainerHecktorMirrorLR(HecktorMirroring):
    axis = "augmentation"
    what = "mirroring along left-right only (training and test-time)"
    why = "head-and-neck anatomy is left-right symmetric, not up-down or front-back"
    mirror_left_right_only = True


# -- sampling (parts in hecktor_nnunet.training.sampling) ------------------------------------------------
class nnUNetTrainerHecktorNodeSampling(HecktorNodeSampling):
    axis = "sampling"
    what = "{lymph_node_share:.0%} of training patches centred on GTVn voxels"
    why = "small nodes are rarely a patch centre with nnU-Net's any-foreground oversampling"
    lymph_node_share = 0.33


# -- combined: several parents, only the description in the body -----------------------------------------
class nnUNetTrainerHecktorFocalPETAug(nnUNetTrainerHecktorFocal, nnUNetTrainerHecktorPETAug):
    axis = "combined"
    what = "focal loss + both PET augmentations"
    why = "proposed (a hypothesis until a GPU comparison): targets small lesions and scanner/motion variation"


class nnUNetTrainerHecktorFocalTverskyPETAugNodes(nnUNetTrainerHecktorFocalTversky, nnUNetTrainerHecktorPETAug,
                                                  nnUNetTrainerHecktorNodeSampling):
    axis = "combined"
    what = "focal-Tversky + PET augmentations + lymph-node sampling"
    why = "recall-oriented alternative when GTVn F1agg matters most"


# -- length: the recommended trainer shortened, the CPU demo model, the tiny trainer ----------------------
class nnUNetTrainerHecktorFocalPETAug_250epochs(nnUNetTrainerHecktorFocalPETAug):
    axis = "length"
    what = "recommended trainer, {training_schedule.epochs} epochs"
    why = "a quarter of the compute of nnU-Net's 1000 epochs, for a first model"
    training_schedule = Schedule(epochs=250)


class nnUNetTrainerHecktorFocalPETAug_500epochs(nnUNetTrainerHecktorFocalPETAug):
    axis = "length"
    what = "recommended trainer, {training_schedule.epochs} epochs"
    why = "half the compute of nnU-Net's 1000 epochs"
    training_schedule = Schedule(epochs=500)


class nnUNetTrainerHecktorDemoCPU(HecktorLoss, HecktorMirroring):
    """A real model for 2 CPU cores in minutes (``make demo``); its settings are the attributes below.

    Made for the demo's grid (4.2 x 4.2 x 6 mm, images of ~48^3 voxels): nnU-Net's own network
    (full width: half-width networks never found the nodes within 1000 iterations), pipeline and
    augmentation, focal loss with the lymph-node voxels weighted up (without it, the node class
    stayed off for 600 iterations in 2 of 3 CPU runs), patches smaller than the image (a third of
    the whole image's compute) with a share of them centred on a lesion, a short schedule, few
    validation iterations, no test-time mirroring (docs/explanation/demo_model.md).
    """

    axis = "demo"
    what = ("the plans' U-Net on {network_size.patch_text} patches ({training_schedule.foreground_oversampling:.0%} "
            "centred on lesions), focal loss with nodes weighted {loss_recipe.class_weights[2]:g}x, "
            "{training_schedule.epochs} epochs x {training_schedule.iterations_per_epoch} iterations, "
            "no test-time mirroring")
    why = "a model that really segments, trained on 2 CPU cores in minutes (`make demo`)"
    loss_recipe = DiceCEFocal(class_weights=(1.0, 1.0, 50.0))  # background, GTVp, GTVn
    test_time_mirroring = False  # 8x the inference compute on a CPU
    network_size = NetworkSize(patch_size=(32, 32, 32))
    training_schedule = Schedule(epochs=24, iterations_per_epoch=25, val_iterations_per_epoch=2,
                                 foreground_oversampling=0.5)


class nnUNetTrainerHecktorTinyCPUDebug(HecktorTrainer):
    axis = "debug"
    what = ("{tiny_schedule.epochs} epochs x {tiny_schedule.iterations_per_epoch} iterations, network "
            "<= {tiny_network.max_features} features wide, batches of {tiny_network.batch_size}; NOT a real model")
    why = "tests and the demo on a CPU in seconds"
    tiny = True


# -- architecture (parts in hecktor_nnunet.training.architectures) ---------------------------------------
class nnUNetTrainerHecktorSegResNet(HecktorSegResNet):
    axis = "architecture"
    what = "MONAI SegResNet instead of nnU-Net's U-Net"
    why = "the network of the HECKTOR 2022 winners (Myronenko et al., LNCS 13626, 2023)"


class nnUNetTrainerHecktorSegResNetFocalPETAug(nnUNetTrainerHecktorSegResNet, nnUNetTrainerHecktorFocalPETAug):
    axis = "architecture"
    what = "SegResNet with focal loss and PET augmentations"
    why = "compare architectures under the recommended training recipe"
