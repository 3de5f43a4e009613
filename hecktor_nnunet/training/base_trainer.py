"""The base of every HECKTOR trainer: one class, each behaviour switched by a class attribute.

Variants in ``trainers/`` set one or two attributes (``loss_name = "dice_ce_focal"``); combinations
inherit from several variants with a ``pass`` body (Python's MRO merges the attributes). The hooks
here are the only places HECKTOR code enters nnU-Net's training:

- ``_build_loss``: the named loss from :mod:`hecktor_nnunet.training.losses`, wrapped for deep
  supervision once, with nnU-Net's weights;
- ``get_training_transforms``: nnU-Net's own pipeline (``super()``) with the PET-only transforms
  (the misregistration folded into its spatial transform, the rest inserted after it);
- ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``: left-right-only mirroring;
- ``get_dataloaders``: the lymph-node-aware training loader;
- tiny mode (the ``nnUNetTrainerHecktorTinyCPUDebug`` trainer, or any trainer with the environment
  variable ``HECKTOR_NNUNET_DEBUG=1``): 2 epochs x 2 iterations, 1 validation iteration, a
  network at most 8 features wide with one convolution (or residual block) per stage, and one
  torch thread on CPU. The narrowed
  architecture is written into this training's copy of the plans (saved as the model folder's
  ``plans.json``), so prediction rebuilds the same network without the variable.

Channel convention of converted datasets (``hecktor-convert``): channel 0 is CT, channel 1 is PET;
dataset.json's ``hecktor.channels`` records it and is read when present.
"""

from __future__ import annotations

import copy
import os

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from hecktor_nnunet.training.losses import build_loss, wrap_deep_supervision
from hecktor_nnunet.training.sampling import LymphNodeDataLoader, gtvn_class_key, training_loader_class
from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                 add_pet_transforms)

PET_CHANNEL = 1
DEBUG_ENV = "HECKTOR_NNUNET_DEBUG"
TINY_KEY = "hecktor_tiny"  # marker in a plans configuration narrowed by tiny mode
TINY_MAX_FEATURES = 8
TINY_EPOCHS, TINY_ITERATIONS, TINY_VAL_ITERATIONS = 2, 2, 1


def debug_env_enabled() -> bool:
    """True when ``HECKTOR_NNUNET_DEBUG`` is set to 1/true/yes."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def shrink_configuration(plans: dict, configuration: str, max_features: int = TINY_MAX_FEATURES) -> None:
    """Narrow one configuration of ``plans`` in place for tiny mode (idempotent).

    Keeps the number of stages, strides and kernel sizes (so deep-supervision scales and patch
    size are unchanged); caps every stage's features at ``max_features`` and uses one convolution
    or residual block per stage. Records ``{"max_features": ...}`` under ``hecktor_tiny``.
    """
    resolved = PlansManager(plans).get_configuration(configuration).configuration
    cfg = copy.deepcopy(resolved)
    cfg.pop("inherits_from", None)
    kwargs = cfg["architecture"]["arch_kwargs"]
    if "features_per_stage" in kwargs:
        kwargs["features_per_stage"] = [min(int(f), max_features) for f in kwargs["features_per_stage"]]
    for key in ("n_conv_per_stage", "n_blocks_per_stage", "n_conv_per_stage_decoder"):
        if key in kwargs:
            kwargs[key] = [1] * len(kwargs[key])
    cfg[TINY_KEY] = {"max_features": int(max_features)}
    plans["configurations"][configuration] = cfg


class HecktorTrainer(nnUNetTrainer):
    """nnU-Net's trainer with HECKTOR switches (class attributes, all off by default).

    Attributes
    ----------
    loss_name : str
        ``dice_ce`` (nnU-Net's), ``dice_ce_focal``, ``tversky`` or ``focal_tversky``.
    pet_misregistration : bool
        Random rigid motion of PET only, up to ``max_shift_mm`` and ``max_rotation_deg`` per axis, in a
        share ``p_pet_misregistration`` of patches (not every patient moves; also keeps the data
        augmentation within 0.9x of stock throughput, see ``benchmarks/augmentation.py``).
    pet_intensity : bool
        PET-only global scaling in ``suv_scale_range`` and blur with sigma in ``pet_blur_sigma_mm``.
    mirror_left_right_only : bool
        Mirror only along the patient's left-right axis (training and test-time mirroring).
    lymph_node_share : float
        Share of training patches centred on GTVn voxels (0 keeps nnU-Net's sampling).
    epochs : int or None
        Number of epochs (None keeps nnU-Net's 1000).
    tiny : bool
        Tiny mode (see the module docstring); also switched on by ``HECKTOR_NNUNET_DEBUG=1``.
    """

    loss_name: str = "dice_ce"
    pet_misregistration: bool = False
    max_shift_mm: float = 4.0
    max_rotation_deg: float = 3.0
    p_pet_misregistration: float = 0.5
    pet_intensity: bool = False
    suv_scale_range: tuple[float, float] = (0.8, 1.25)
    pet_blur_sigma_mm: tuple[float, float] = (0.5, 3.0)
    mirror_left_right_only: bool = False
    lymph_node_share: float = 0.0
    epochs: int | None = None
    tiny: bool = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.epochs is not None:
            self.num_epochs = int(self.epochs)
        if self.tiny or debug_env_enabled():
            shrink_configuration(self.plans_manager.plans, configuration)
            # PlansManager.get_configuration is cached: wrap the narrowed dict directly
            self.configuration_manager = ConfigurationManager(self.plans_manager.plans["configurations"][configuration])
            self.num_epochs = TINY_EPOCHS
            self.num_iterations_per_epoch = TINY_ITERATIONS
            self.num_val_iterations_per_epoch = TINY_VAL_ITERATIONS
            if self.device.type == "cpu":
                # nnUNetv2_train -device cpu asks torch for every core; tiny CPU runs (tests, the demo,
                # often several at once) are several times faster single-threaded
                torch.set_num_threads(1)
            self.print_to_log_file(f"Tiny mode: {TINY_EPOCHS} epochs x {TINY_ITERATIONS} iterations, "
                                   f"features <= {TINY_MAX_FEATURES}. For tests and demos only.")
        if self.pet_misregistration or self.pet_intensity:
            self.pet_channel()  # fail at start-up, not in a data-augmentation worker

    def pet_channel(self) -> int:
        """Index of the PET channel: from dataset.json ``hecktor.channels`` if present, else 1.

        Raises
        ------
        ValueError
            If the dataset has no PET channel (fewer than two channels, or none called PET).
        """
        names = self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))
        recorded = self.dataset_json.get("hecktor", {}).get("channels")
        if recorded is not None:
            if "PET" not in recorded:
                raise ValueError(f"{self.__class__.__name__} augments PET, but dataset.json hecktor.channels "
                                 f"is {recorded} (no 'PET')")
            return recorded.index("PET")
        if len(names) <= PET_CHANNEL:
            raise ValueError(
                f"{self.__class__.__name__} augments PET as channel {PET_CHANNEL}, but dataset.json declares "
                f"{len(names)} channel(s) {dict(names)}; convert the release with hecktor-convert (CT, PET)")
        return PET_CHANNEL

    # -- loss ---------------------------------------------------------------------------------
    def _build_loss(self):
        if self.loss_name == "dice_ce":
            return super()._build_loss()
        loss = build_loss(self.loss_name, self.label_manager, batch_dice=self.configuration_manager.batch_dice,
                          ddp=self.is_ddp)
        if not self.enable_deep_supervision:
            return loss
        return wrap_deep_supervision(loss, len(self._get_deep_supervision_scales()),
                                     ddp_without_compile=self.is_ddp and not self._do_i_compile())

    # -- augmentation -------------------------------------------------------------------------
    def pet_transforms(self) -> list:
        """The PET-only transforms this trainer adds (empty when both switches are off)."""
        if not (self.pet_misregistration or self.pet_intensity):
            return []
        spacing, pet = self.configuration_manager.spacing, self.pet_channel()
        extra = []
        if self.pet_misregistration:
            extra.append(PETMisregistrationTransform(pet, spacing, self.max_shift_mm, self.max_rotation_deg,
                                                     p=self.p_pet_misregistration))
        if self.pet_intensity:
            extra.append(PETIntensityTransform(pet, spacing, self.suv_scale_range, self.pet_blur_sigma_mm))
        return extra

    def get_training_transforms(self, *args, **kwargs):
        pipeline = super().get_training_transforms(*args, **kwargs)
        extra = self.pet_transforms()
        return add_pet_transforms(pipeline, extra) if extra else pipeline

    def left_right_axis(self) -> int:
        """Array axis of patient left-right in nnU-Net's (transposed) arrays.

        Converted images keep the CT's axial orientation: SimpleITK's x (array axis 2 before
        nnU-Net's ``transpose_forward``) is left-right.
        """
        return list(self.plans_manager.transpose_forward).index(2)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if self.mirror_left_right_only:
            dim = len(self.configuration_manager.patch_size)
            lr = self.left_right_axis() - (3 - dim)
            mirror_axes = (lr,) if lr >= 0 else None
            self.inference_allowed_mirroring_axes = mirror_axes
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    # -- sampling -----------------------------------------------------------------------------
    def get_dataloaders(self):
        if self.lymph_node_share <= 0:
            return super().get_dataloaders()
        key = gtvn_class_key(self.label_manager, self.dataset_json)

        def factory(*args, **kwargs):
            return LymphNodeDataLoader(*args, node_key=key, node_share=self.lymph_node_share, **kwargs)

        with training_loader_class(factory):
            return super().get_dataloaders()


def tiny_max_features(configuration_manager: ConfigurationManager) -> int | None:
    """``max_features`` of a configuration narrowed by tiny mode, else None."""
    return configuration_manager.configuration.get(TINY_KEY, {}).get("max_features")
