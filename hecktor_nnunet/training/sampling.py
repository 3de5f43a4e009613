"""Lymph-node-aware patch sampling: a share of training patches centred on GTVn voxels.

nnU-Net's loader forces foreground in a fixed share of each batch and then picks any foreground
class at random, so small nodes (a few hundred voxels next to a large primary) are rarely the
centre of a patch. :class:`LymphNodeDataLoader` centres an extra, independent share of patches
on a random GTVn voxel (nnU-Net's precomputed ``class_locations``, no extra I/O).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.utilities.label_handling.label_handling import LabelManager

GTVN_LABEL_NAME = "GTVn"


def gtvn_class_key(label_manager: LabelManager, dataset_json: dict) -> int | tuple[int, ...]:
    """The ``class_locations`` key of GTVn: its label value, or its region as a tuple.

    Raises
    ------
    ValueError
        If dataset.json has no ``GTVn`` label (not a converted HECKTOR dataset).
    """
    labels = dataset_json.get("labels", {})
    if GTVN_LABEL_NAME not in labels:
        raise ValueError(f"dataset.json has no {GTVN_LABEL_NAME!r} label (labels: {sorted(labels)}); "
                         "lymph-node sampling needs a HECKTOR dataset from hecktor-convert")
    value = labels[GTVN_LABEL_NAME]
    if label_manager.has_regions:
        return tuple(value) if isinstance(value, (list, tuple)) else (int(value),)
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


class LymphNodeDataLoader(nnUNetDataLoader):
    """nnU-Net's data loader with ``node_share`` of patches centred on a GTVn voxel.

    Parameters
    ----------
    *args, **kwargs
        As :class:`nnUNetDataLoader`.
    node_key : int or tuple
        ``class_locations`` key of GTVn (see :func:`gtvn_class_key`).
    node_share : float
        Probability (0-1) that a patch is centred on GTVn when the case has GTVn voxels; the
        remaining patches follow nnU-Net's own rule (random or any-foreground oversampling).
    """

    def __init__(self, *args, node_key: int | tuple[int, ...], node_share: float = 0.33, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= node_share <= 1.0:
            raise ValueError(f"node_share must be in [0, 1], got {node_share}")
        self.node_key = node_key
        self.node_share = float(node_share)

    def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        nodes = None if class_locations is None else class_locations.get(self.node_key)
        if nodes is not None and len(nodes) > 0 and np.random.uniform() < self.node_share:
            return super().get_bbox(data_shape, True, class_locations, overwrite_class=self.node_key,
                                    verbose=verbose)
        return super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)


@contextlib.contextmanager
def training_loader_class(factory) -> Iterator[None]:
    """Within the block, nnU-Net's ``get_dataloaders`` builds its *training* loader with ``factory``.

    nnunetv2 2.8.1 exposes no hook for the loader class; ``nnUNetTrainer.get_dataloaders``
    constructs the training loader first and the validation loader second from the module-level
    name ``nnUNetDataLoader``. This swaps that name for the first construction only and restores
    it on exit, so the validation loader (pseudo-Dice, checkpoint choice) stays nnU-Net's own.
    ``tests/training`` checks the resulting loader types, so a change in nnU-Net shows up there.
    """
    original = nnunet_trainer_module.nnUNetDataLoader
    calls = []

    def first_is_custom(*args, **kwargs):
        calls.append(1)
        return factory(*args, **kwargs) if len(calls) == 1 else original(*args, **kwargs)

    nnunet_trainer_module.nnUNetDataLoader = first_is_custom
    try:
        yield
    finally:
        nnunet_trainer_module.nnUNetDataLoader = original
