"""HECKTOR trainers, training-length axis: the recommended trainer shortened, the CPU demo model, the tiny trainer."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer, NetworkSize, Schedule
from hecktor_nnunet.trainers.hecktor_trainers_combined import nnUNetTrainerHecktorFocalPETAug


class nnUNetTrainerHecktorFocalPETAug_250epochs(nnUNetTrainerHecktorFocalPETAug):
    """Recommended trainer, 250 epochs."""

    training_schedule = Schedule(epochs=250)


class nnUNetTrainerHecktorFocalPETAug_500epochs(nnUNetTrainerHecktorFocalPETAug):
    """Recommended trainer, 500 epochs."""

    training_schedule = Schedule(epochs=500)


class nnUNetTrainerHecktorDemoCPU(HecktorTrainer):
    """A real model for 2 CPU cores in minutes: the plans' U-Net on 32^3 patches, 600 iterations.

    Made for the demo's grid (4.2 x 4.2 x 6 mm, images of ~48^3 voxels): nnU-Net's own network
    (full width: half-width networks never found the nodes within 1000 iterations), pipeline and
    augmentation, focal loss with lymph-node voxels weighted 10x (without it, the node class stayed
    off for 600 iterations in 2 of 3 CPU runs), 32^3 patches (a third of the whole image's compute)
    with half of them centred on a lesion, a 600-iteration schedule, few validation iterations, no
    test-time mirroring (README, "The demo model").
    """

    loss_name = "dice_ce_focal"
    focal_class_weights = (1.0, 1.0, 10.0)  # background, GTVp, GTVn
    test_time_mirroring = False  # 8x the inference compute on a CPU
    network_size = NetworkSize(patch_size=(32, 32, 32))
    training_schedule = Schedule(epochs=24, iterations_per_epoch=25, val_iterations_per_epoch=2,
                                 foreground_oversampling=0.5)


class nnUNetTrainerHecktorTinyCPUDebug(HecktorTrainer):
    """NOT a real model: 2 epochs x 2 iterations, <= 8 features; for tests and the demo."""

    tiny = True
