"""The SegResNet base trainer: MONAI's SegResNet inside nnU-Net's pipeline, without deep supervision.

SegResNet has a single output, so deep supervision is switched off honestly: the loss is not
wrapped, targets are not downsampled, and ``set_deep_supervision_enabled`` (which nnU-Net calls
with ``True`` after its final validation) is a no-op. Loss, augmentation and sampling switches of
:class:`HecktorTrainer` combine with it by inheritance.
"""

from __future__ import annotations

import torch
from torch import nn

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from hecktor_nnunet.training.architectures import SEGRESNET_INIT_FILTERS, build_segresnet
from hecktor_nnunet.training.base_trainer import HecktorTrainer, network_max_features


class HecktorSegResNetTrainer(HecktorTrainer):
    """:class:`HecktorTrainer` building MONAI SegResNet (2 input channels, outputs from labels or regions)."""

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
