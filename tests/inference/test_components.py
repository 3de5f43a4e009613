"""Connected components of restored masks and the radiomics tiny size: hand-checkable label maps."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.inference.components import (component_report, format_small_components, label_components,
                                                  mask_components, small_components)
from hecktor_nnunet.inference.postprocessing import Postprocessing, apply_postprocessing
from hecktor_nnunet.prognosis.radiomics_settings import MIN_VOLUME_ML

SPACING_XYZ = (5.0, 5.0, 6.0)  # one voxel = 0.15 mL
VOXEL_ML = 0.15


def _label() -> np.ndarray:
    """GTVp: a 2x2x2 block and a voxel touching its corner (one 26-connected component, 9 voxels).
    GTVn: two voxels touching by a corner (one component, 0.3 mL) and a lone voxel (0.15 mL)."""
    label = np.zeros((10, 8, 10), np.uint8)
    label[0:2, 0:2, 0:2] = 1
    label[2, 2, 2] = 1
    label[5, 5, 5] = label[6, 6, 6] = 2
    label[9, 0, 9] = 2
    return label


def test_components_per_label_with_postprocessing_connectivity():
    got = label_components(_label(), VOXEL_ML)
    assert got["GTVp"] == {"components": 1, "below_min_volume": 0, "volumes_ml": [1.35]}
    assert got["GTVn"] == {"components": 2, "below_min_volume": 1, "volumes_ml": [0.3, 0.15]}
    assert 0.15 < MIN_VOLUME_ML <= 0.3  # the radiomics constant this example is built around


def test_postprocessing_at_the_tiny_size_leaves_no_small_gtvn_component():
    """Same connectivity as post-processing: what min_gtvn_ml removes is what is counted as small."""
    cleaned = apply_postprocessing(_label(), SPACING_XYZ, Postprocessing(min_gtvn_ml=MIN_VOLUME_ML))
    got = label_components(cleaned, VOXEL_ML)
    assert got["GTVn"] == {"components": 1, "below_min_volume": 0, "volumes_ml": [0.3]}


def test_empty_label_map_and_custom_threshold():
    empty = label_components(np.zeros((3, 3, 3), np.uint8), 1.0)
    assert empty == {name: {"components": 0, "below_min_volume": 0, "volumes_ml": []} for name in ("GTVp", "GTVn")}
    assert label_components(_label(), VOXEL_ML, min_volume_ml=2.0)["GTVp"]["below_min_volume"] == 1


def test_report_from_files_and_printed_lines(tmp_path):
    masks = {}
    for pid, label in (("CHUM-002", _label()), ("CHUM-001", np.where(_label() == 2, 0, _label()))):
        img = sitk.GetImageFromArray(label)
        img.SetSpacing(SPACING_XYZ)
        masks[pid] = tmp_path / f"{pid}.nii.gz"
        sitk.WriteImage(img, str(masks[pid]))
    assert mask_components(("CHUM-002", masks["CHUM-002"]))[1]["GTVn"]["volumes_ml"] == [0.3, 0.15]
    report = component_report(masks, quiet=True)
    assert list(report) == ["CHUM-001", "CHUM-002"]
    assert report["CHUM-001"]["file"] == "CHUM-001.nii.gz" and report["CHUM-001"]["GTVn"]["components"] == 0
    assert small_components(report) == {"GTVp": (0, 0), "GTVn": (1, 1)}
    assert format_small_components(report) == [
        f"1 patient(s) have GTVn components below {MIN_VOLUME_ML:g} mL (1 component(s))"]
    assert format_small_components({"CHUM-001": report["CHUM-001"]}) == [
        f"no GTVp or GTVn component below {MIN_VOLUME_ML:g} mL"]
