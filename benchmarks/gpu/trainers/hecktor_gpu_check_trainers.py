"""Fixed-length copies of the trainers the GPU check's learning part compares (``benchmarks/gpu/learning.py``).

Stock ``nnUNetTrainer`` and every combined HECKTOR trainer (the recipes the project recommends), each
as ``<name>_GpuCheck``: the same trainer, trained for the length in ``HECKTOR_GPU_CHECK_LENGTH``
(``EPOCHSxITERATIONSxVALIDATION_ITERATIONS``, e.g. ``10x100x5``), so all learn for the same number of
iterations. This folder joins ``nnUNet_extTrainer`` in the check only; it is not part of the product.
The names are made from the compared classes, so no trainer name is written here.
"""

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hecktor_nnunet.training.registry import trainer_classes

LENGTH_ENV = "HECKTOR_GPU_CHECK_LENGTH"
SUFFIX = "_GpuCheck"
#: stock nnU-Net first, then every combined HECKTOR trainer
COMPARED = (nnUNetTrainer, *(c for c in trainer_classes() if c.axis == "combined"))


def length_from_env() -> tuple[int, int, int]:
    """(epochs, iterations per epoch, validation iterations per epoch) from ``HECKTOR_GPU_CHECK_LENGTH``.

    Raises
    ------
    ValueError
        When the variable is unset or not three positive integers joined by ``x``.
    """
    text = os.environ.get(LENGTH_ENV, "")
    parts = text.split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{LENGTH_ENV} must be EPOCHSxITERATIONSxVALIDATION_ITERATIONS (e.g. 10x100x5), got {text!r}")
    epochs, iterations, val_iterations = (int(p) for p in parts)
    return epochs, iterations, val_iterations


def fixed_length(trainer: type[nnUNetTrainer]) -> type[nnUNetTrainer]:
    """``trainer`` trained for :func:`length_from_env`, named ``<its name>_GpuCheck``."""

    class FixedLength(trainer):
        # nnU-Net records the constructor's arguments by name (inspect.signature), so no *args here
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = length_from_env()

    FixedLength.__name__ = FixedLength.__qualname__ = trainer.__name__ + SUFFIX
    return FixedLength


globals().update({cls.__name__: cls for cls in map(fixed_length, COMPARED)})
