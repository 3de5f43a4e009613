"""HECKTOR trainers, training-length axis: the recommended trainer shortened, the CPU demo model, the tiny trainer."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer, NetworkSize, Schedule
from hecktor_nnunet.trainers.hecktor_trainers_combined import nnUNetTrainerHecktorFocalPETAug


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


class nnUNetTrainerHecktorDemoCPU(HecktorTrainer):
    """A real model for 2 CPU cores in minutes (``make demo``); its settings are the attributes below.

    Made for the demo's grid (4.2 x 4.2 x 6 mm, images of ~48^3 voxels): nnU-Net's own network
    (full width: half-width networks never found the nodes within 1000 iterations), pipeline and
    augmentation, focal loss with the lymph-node voxels weighted up (without it, the node class
    stayed off for 600 iterations in 2 of 3 CPU runs), patches smaller than the image (a third of
    the whole image's compute) with a share of them centred on a lesion, a short schedule, few
    validation iterations, no test-time mirroring (docs/demo.md, "The demo model").
    """

    axis = "demo"
    what = ("the plans' U-Net on {network_size.patch_text} patches ({training_schedule.foreground_oversampling:.0%} "
            "centred on lesions), focal loss with nodes weighted {focal_class_weights[2]:g}x, "
            "{training_schedule.epochs} epochs x {training_schedule.iterations_per_epoch} iterations, "
            "no test-time mirroring")
    why = "a model that really segments, trained on 2 CPU cores in minutes (`make demo`)"
    loss_name = "dice_ce_focal"
    focal_class_weights = (1.0, 1.0, 50.0)  # background, GTVp, GTVn
    test_time_mirroring = False  # 8x the inference compute on a CPU
    network_size = NetworkSize(patch_size=(32, 32, 32))
    training_schedule = Schedule(epochs=24, iterations_per_epoch=25, val_iterations_per_epoch=2,
                                 foreground_oversampling=0.5)


class nnUNetTrainerHecktorTinyCPUDebug(HecktorTrainer):
    axis = "debug"
    what = ("{tiny_schedule.epochs} epochs x {tiny_schedule.iterations_per_epoch} iterations, network "
            "<= {tiny_network.max_features} features wide; NOT a real model")
    why = "tests and the demo on a CPU in seconds"
    tiny = True
