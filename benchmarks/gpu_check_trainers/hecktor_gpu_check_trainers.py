"""Fixed-length copies of the trainers that ``benchmarks/gpu_check.py`` compares for learning.

Each class changes only the training length, read from ``HECKTOR_GPU_CHECK_LENGTH``
(``EPOCHSxITERATIONSxVALIDATION_ITERATIONS``, e.g. ``10x100x5``), so stock nnU-Net and the HECKTOR
trainers learn for the same number of iterations. This folder is added to ``nnUNet_extTrainer`` by
the check only; it is not part of the product.
"""

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hecktor_nnunet.trainers.hecktor_trainers_combined import (nnUNetTrainerHecktorFocalPETAug,
                                                               nnUNetTrainerHecktorFocalTverskyPETAugNodes)

LENGTH_ENV = "HECKTOR_GPU_CHECK_LENGTH"


class _FixedLength:
    # nnU-Net records the constructor's arguments by name (inspect.signature), so no *args here
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        epochs, iterations, val_iterations = (int(v) for v in os.environ[LENGTH_ENV].split("x"))
        self.num_epochs, self.num_iterations_per_epoch = epochs, iterations
        self.num_val_iterations_per_epoch = val_iterations


class nnUNetTrainer_GpuCheck(_FixedLength, nnUNetTrainer):
    pass


class nnUNetTrainerHecktorFocalPETAug_GpuCheck(_FixedLength, nnUNetTrainerHecktorFocalPETAug):
    pass


class nnUNetTrainerHecktorFocalTverskyPETAugNodes_GpuCheck(_FixedLength, nnUNetTrainerHecktorFocalTverskyPETAugNodes):
    pass
