"""Networks other than nnU-Net's own that HECKTOR trainers build from the plans.

MONAI's SegResNet (Myronenko 2018; the network of the HECKTOR 2022 winners, Myronenko et al.,
LNCS 13626, 2023) is sized from the plans: its depth follows the plans' number of stages (at most
five, as in MONAI Auto3DSeg), limited by how often the patch size can be halved.
"""

from __future__ import annotations

import logging

from torch import nn

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

log = logging.getLogger(__name__)

SEGRESNET_BLOCKS_DOWN = (1, 2, 2, 4, 4)
SEGRESNET_INIT_FILTERS = 32


def segresnet_levels(patch_size, n_stages: int, max_levels: int = len(SEGRESNET_BLOCKS_DOWN)) -> int:
    """Number of SegResNet resolution levels for a patch: ``L`` such that every axis divides by ``2**(L-1)``.

    Raises
    ------
    ValueError
        If the patch cannot be halved at least twice on every axis (fewer than 3 levels).
    """
    levels = min(max_levels, max(1, int(n_stages)))
    while levels > 1 and any(int(p) % (2 ** (levels - 1)) for p in patch_size):
        levels -= 1
    if levels < 3:
        raise ValueError(
            f"SegResNet downsamples every axis by 2 per level and needs a patch size divisible by 4 on every "
            f"axis (at least 3 levels); the plans' patch size {list(patch_size)} is not. Edit 'patch_size' in "
            "the plans (multiples of 16 are safe) or plan with a different target spacing.")
    return levels


def build_segresnet(configuration_manager: ConfigurationManager, num_input_channels: int,
                    num_output_channels: int, init_filters: int = SEGRESNET_INIT_FILTERS) -> nn.Module:
    """MONAI SegResNet for this configuration (3-D or 2-D), ``num_output_channels`` logits, no activation."""
    from monai.networks.nets import SegResNet  # heavy import, only when the network is built

    patch = configuration_manager.patch_size
    n_stages = len(configuration_manager.pool_op_kernel_sizes)
    levels = segresnet_levels(patch, n_stages)
    log.info("SegResNet: %d levels, %d initial filters, patch %s", levels, init_filters, list(patch))
    return SegResNet(spatial_dims=len(patch), init_filters=int(init_filters), in_channels=num_input_channels,
                     out_channels=num_output_channels, blocks_down=SEGRESNET_BLOCKS_DOWN[:levels],
                     blocks_up=(1,) * (levels - 1))
