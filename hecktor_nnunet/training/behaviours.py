"""The HECKTOR behaviours: one class per axis, the only owner of its nnU-Net hook.

Each class overrides one hook of nnU-Net's trainer, calls ``super()`` so nnU-Net's own work is kept,
and reads its settings from class attributes that the trainers of
:mod:`hecktor_nnunet.training.variants` set:

- :class:`HecktorLoss`: ``_build_loss``, from ``loss_recipe``;
- :class:`HecktorPETAugmentation`: ``get_training_transforms``, from ``pet_misregistration`` and
  ``pet_intensity``;
- :class:`HecktorMirroring`: ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``, from
  ``mirror_left_right_only`` and ``test_time_mirroring``;
- :class:`HecktorNodeSampling`: ``get_dataloaders``, from ``lymph_node_share``;
- :class:`HecktorSegResNet`: ``build_network_architecture`` (and deep supervision off).

The network size and schedule belong to the base class
(:class:`~hecktor_nnunet.training.base_trainer.HecktorTrainer`), which also refuses, at class
creation, a combination whose parents set one of these attributes differently.

Channel convention of converted datasets (``hecktor-convert``): channel 0 is CT, channel 1 is PET;
dataset.json's ``hecktor.channels`` records it and is read when present.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from hecktor_nnunet.training.architectures import SEGRESNET_INIT_FILTERS, build_segresnet
from hecktor_nnunet.training.base_trainer import HecktorTrainer, network_max_features
from hecktor_nnunet.training.losses import LossRecipe
from hecktor_nnunet.training.sampling import LymphNodeDataLoader, get_dataloaders_with, gtvn_class_key
from hecktor_nnunet.training.transforms import PETIntensity, PETMisregistration, add_pet_transforms

PET_CHANNEL = 1


class HecktorLoss(HecktorTrainer):
    """The loss of ``loss_recipe`` around nnU-Net's own Dice + CE, with nnU-Net's deep-supervision weights.

    Attributes
    ----------
    loss_recipe : LossRecipe
        :class:`~hecktor_nnunet.training.losses.DiceCEFocal` or :class:`~hecktor_nnunet.training.losses.TverskyCE`.
    """

    loss_recipe: ClassVar[LossRecipe]

    def _build_loss(self) -> nn.Module:
        stock = super()._build_loss()  # nnU-Net's Dice + CE, wrapped for deep supervision when enabled
        wrapped = isinstance(stock, DeepSupervisionWrapper)
        loss = self.loss_recipe.build(stock.loss if wrapped else stock, self.label_manager,
                                      batch_dice=self.configuration_manager.batch_dice)
        return DeepSupervisionWrapper(loss, stock.weight_factors) if wrapped else loss


class HecktorPETAugmentation(HecktorTrainer):
    """nnU-Net's training pipeline with PET-only transforms (the misregistration folded into its spatial transform).

    Attributes
    ----------
    pet_misregistration : PETMisregistration or None
        Random rigid motion of PET only (see ``benchmarks/augmentation.py`` for the throughput).
    pet_intensity : PETIntensity or None
        PET-only global scaling and blur.
    """

    pet_misregistration: ClassVar[PETMisregistration | None] = None
    pet_intensity: ClassVar[PETIntensity | None] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
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

    def get_training_transforms(self, *args, **kwargs):
        pipeline = super().get_training_transforms(*args, **kwargs)
        settings = [s for s in (self.pet_misregistration, self.pet_intensity) if s is not None]
        if not settings:
            return pipeline
        pet, spacing = self.pet_channel(), self.configuration_manager.spacing
        return add_pet_transforms(pipeline, [s.transform(pet, spacing) for s in settings])


class HecktorMirroring(HecktorTrainer):
    """Which axes nnU-Net mirrors, in training and at test time.

    Attributes
    ----------
    mirror_left_right_only : bool
        Mirror only along the patient's left-right axis (training and test-time mirroring).
    test_time_mirroring : bool
        False: the model is never evaluated with mirrored copies (nnU-Net's final validation and, through
        the checkpoint, ``nnUNetv2_predict``/``hecktor-predict``); 8x less inference compute in 3-D.
    """

    mirror_left_right_only: ClassVar[bool] = False
    test_time_mirroring: ClassVar[bool] = True

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
        if not self.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes


class HecktorNodeSampling(HecktorTrainer):
    """nnU-Net's loaders, with the lymph-node-aware one for training (:mod:`hecktor_nnunet.training.sampling`).

    Attributes
    ----------
    lymph_node_share : float
        Share of training patches centred on GTVn voxels.
    """

    lymph_node_share: ClassVar[float]

    def get_dataloaders(self):
        key = gtvn_class_key(self.label_manager, self.dataset_json)

        def training_loader(*args, **kwargs):
            return LymphNodeDataLoader(*args, node_key=key, node_share=self.lymph_node_share, **kwargs)

        return get_dataloaders_with(self, training_loader)


class HecktorSegResNet(HecktorTrainer):
    """MONAI's SegResNet (2 input channels, outputs from labels or regions) instead of nnU-Net's U-Net.

    SegResNet has a single output, so deep supervision is switched off honestly: the loss is not
    wrapped, targets are not downsampled, and ``set_deep_supervision_enabled`` (which nnU-Net calls
    with ``True`` after its final validation) is a no-op.
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        cap = network_max_features(configuration_manager)
        init_filters = SEGRESNET_INIT_FILTERS if cap is None else min(SEGRESNET_INIT_FILTERS, cap)
        return build_segresnet(configuration_manager, num_input_channels, num_output_channels, init_filters)

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """No-op: SegResNet has one output (nnU-Net toggles this around its final validation)."""
