"""HECKTOR trainers, augmentation axis (parts in hecktor_nnunet.training.transforms)."""

from hecktor_nnunet.training.base_trainer import HecktorTrainer


class nnUNetTrainerHecktorPETMisreg(HecktorTrainer):
    axis = "augmentation"
    what = ("random rigid shift (<= {max_shift_mm:g} mm) and rotation (<= {max_rotation_deg:g} deg) of PET only, "
            "{p_pet_misregistration:.0%} of the patches")
    why = "patients move between the CT and PET acquisitions; labels follow CT"
    pet_misregistration = True


class nnUNetTrainerHecktorPETIntensity(HecktorTrainer):
    axis = "augmentation"
    what = ("PET-only global scaling ({suv_scale_range[0]:g}-{suv_scale_range[1]:g}) and resolution blur "
            "(sigma {pet_blur_sigma_mm[0]:g}-{pet_blur_sigma_mm[1]:g} mm)")
    why = "SUV calibration and reconstruction differ between the centres' scanners"
    pet_intensity = True


class nnUNetTrainerHecktorPETAug(nnUNetTrainerHecktorPETMisreg, nnUNetTrainerHecktorPETIntensity):
    axis = "augmentation"
    what = "both PET augmentations"
    why = "both sources of PET variation at once"


class nnUNetTrainerHecktorMirrorLR(HecktorTrainer):
    axis = "augmentation"
    what = "mirroring along left-right only (training and test-time)"
    why = "head-and-neck anatomy is left-right symmetric, not up-down or front-back"
    mirror_left_right_only = True
