"""Lymph-node-aware patch sampling: a share of training patches centred on GTVn voxels.

nnU-Net's loader forces foreground in a fixed share of each batch and then picks any foreground
class at random, so small nodes (a few hundred voxels next to a large primary) are rarely the
centre of a patch. :class:`LymphNodeDataLoader` centres an extra, independent share of patches
on a random GTVn voxel (nnU-Net's precomputed ``class_locations``, no extra I/O);
:func:`get_dataloaders_with` is the trainer's ``get_dataloaders`` with that loader for training.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
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


def get_dataloaders_with(trainer, training_loader: Callable[..., nnUNetDataLoader]) -> tuple:
    """nnU-Net's ``get_dataloaders`` with the *training* loader built by ``training_loader``.

    nnunetv2 2.8 has no hook for the loader class, so, as nnU-Net's own variants do, the method is
    written out here (nnunetv2 2.8.1's ``nnUNetTrainer.get_dataloaders``, the version pyproject pins)
    with one change: ``training_loader`` builds the training loader. The validation loader (pseudo
    Dice, checkpoint choice) and both augmenters are nnU-Net's; nothing of nnU-Net's is rebound.
    ``tests/training`` compares the loaders and augmenters with the stock method's.

    Parameters
    ----------
    trainer : nnUNetTrainer
        The trainer whose settings, transforms and datasets are used.
    training_loader : callable
        Called with ``nnUNetDataLoader``'s arguments; returns the training loader.

    Returns
    -------
    tuple
        The training and validation augmenters, each already started (as nnU-Net returns them).
    """
    if trainer.dataset_class is None:
        trainer.dataset_class = infer_dataset_class(trainer.preprocessed_dataset_folder)
    patch_size = trainer.configuration_manager.patch_size
    deep_supervision_scales = trainer._get_deep_supervision_scales()
    rotation, dummy_2d, initial_patch_size, mirror_axes = \
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    labels = trainer.label_manager
    label_kwargs = {"is_cascaded": trainer.is_cascaded, "foreground_labels": labels.foreground_labels,
                    "regions": labels.foreground_regions if labels.has_regions else None,
                    "ignore_label": labels.ignore_label}
    tr_transforms = trainer.get_training_transforms(
        patch_size, rotation, deep_supervision_scales, mirror_axes, dummy_2d,
        use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm, **label_kwargs)
    val_transforms = trainer.get_validation_transforms(deep_supervision_scales, **label_kwargs)
    dataset_tr, dataset_val = trainer.get_tr_and_val_datasets()
    common = {"oversample_foreground_percent": trainer.oversample_foreground_percent, "sampling_probabilities": None,
              "pad_sides": None, "probabilistic_oversampling": trainer.probabilistic_oversampling}
    dl_tr = training_loader(dataset_tr, trainer.batch_size, initial_patch_size, patch_size, labels,
                            transforms=tr_transforms, **common)
    dl_val = nnUNetDataLoader(dataset_val, trainer.batch_size, patch_size, patch_size, labels,
                              transforms=val_transforms, **common)
    n_proc = get_allowed_n_proc_DA()
    if n_proc == 0:
        mt_gen_train, mt_gen_val = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
    else:
        pin = trainer.device.type == "cuda"
        mt_gen_train = NonDetMultiThreadedAugmenter(data_loader=dl_tr, transform=None, num_processes=n_proc,
                                                    num_cached=max(6, n_proc // 2), seeds=None, pin_memory=pin,
                                                    wait_time=0.002)
        mt_gen_val = NonDetMultiThreadedAugmenter(data_loader=dl_val, transform=None,
                                                  num_processes=max(1, n_proc // 2), num_cached=max(3, n_proc // 4),
                                                  seeds=None, pin_memory=pin, wait_time=0.002)
    _ = next(mt_gen_train)
    _ = next(mt_gen_val)
    return mt_gen_train, mt_gen_val
