"""dataset.json for the converted dataset (labels or regions, channel names, HECKTOR metadata)."""

from __future__ import annotations

import hecktor_nnunet
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

LABELS = {"background": 0, "GTVp": 1, "GTVn": 2}
# Region-based training: GTV (union), GTVn and GTVp, written in this order at prediction time.
# A voxel of the union that neither GTVn nor GTVp claims becomes GTVp (label 1).
REGIONS = {"background": 0, "GTV": [1, 2], "GTVn": [2], "GTVp": [1]}
REGIONS_CLASS_ORDER = [1, 2, 1]


def build_dataset_json(settings: ConversionSettings, num_training: int, name: str) -> dict:
    """The ``dataset.json`` nnU-Net reads; the ``hecktor`` key records what each channel holds."""
    d = {
        "name": name,
        "description": "HECKTOR PET/CT head-and-neck GTVp/GTVn segmentation, converted by hecktor-nnunet",
        # channel names select nnU-Net's normalisation: "CT" for CT; PET is "zscore" or "noNorm"
        # (its *content* is PET in SUV, see hecktor.channels)
        "channel_names": settings.channel_names(),
        "labels": dict(REGIONS if settings.regions else LABELS),
        "numTraining": int(num_training),
        "file_ending": ".nii.gz",
        "hecktor": {"channels": list(settings.channels), "pet_units": "SUV", "ct_units": "HU",
                    "converter_version": hecktor_nnunet.__version__},
    }
    if settings.regions:
        d["regions_class_order"] = list(REGIONS_CLASS_ORDER)
    return d
