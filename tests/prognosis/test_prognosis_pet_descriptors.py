"""PET descriptors on hand-checkable arrays."""

import numpy as np
import pytest

from hecktor_nnunet.prognosis.pet_descriptors import (PEAK_RADIUS_MM, lesion_descriptors,
                                                      region_pet_descriptors, suv_peak)


def _ball(shape, centre, radius_vox):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox ** 2


def test_uniform_sphere_values():
    pet = np.ones((30, 30, 30), dtype=np.float32)
    region = _ball(pet.shape, (15, 15, 15), 8)
    pet[region] = 5.0
    d = region_pet_descriptors(pet, region, (1.0, 1.0, 1.0))
    n = int(region.sum())
    assert d["SUVmax"] == 5.0 and d["SUVmean"] == pytest.approx(5.0)
    assert d["SUVpeak"] == pytest.approx(5.0)          # the 6.2 mm sphere fits inside the 8 mm ball
    assert d["MTV_ml"] == pytest.approx(n / 1000)
    assert d["TLG"] == pytest.approx(5.0 * n / 1000)


def test_suv_peak_is_mean_of_one_ml_sphere():
    pet = np.zeros((40, 40, 40), dtype=np.float32)
    pet[20, 20, 20] = 100.0                           # a single hot voxel
    region = np.zeros(pet.shape, dtype=bool)
    region[18:23, 18:23, 18:23] = True
    n_sphere = int(_ball(pet.shape, (20, 20, 20), PEAK_RADIUS_MM).sum())
    assert 900 < n_sphere < 1100                      # ~1 mL of 1 mm voxels
    assert suv_peak(pet, region, (1.0, 1.0, 1.0)) == pytest.approx(100.0 / n_sphere)


def test_empty_region_is_nan():
    d = region_pet_descriptors(np.ones((5, 5, 5)), np.zeros((5, 5, 5), bool), (1.0, 1.0, 1.0))
    assert all(np.isnan(v) for v in d.values())


def test_nodes_count_volume_and_distance():
    label = np.zeros((40, 40, 40), dtype=np.uint8)
    label[10:14, 10:14, 10:14] = 1                     # primary, centroid (11.5, 11.5, 11.5)
    label[30:32, 10:14, 10:14] = 2                     # node A: 32 voxels, centroid z 30.5
    label[10:13, 30:33, 10:13] = 2                     # node B: 27 voxels
    d = lesion_descriptors(label, (2.0, 1.0, 1.0))     # z spacing 2 mm
    assert d["MASK_GTVn_count"] == 2
    assert d["MASK_GTVn_total_ml"] == pytest.approx(59 * 2 / 1000)
    assert d["MASK_GTVn_largest_ml"] == pytest.approx(32 * 2 / 1000)
    assert d["MASK_GTV_primary_to_farthest_node_mm"] == pytest.approx((30.5 - 11.5) * 2.0)


def test_no_nodes():
    label = np.zeros((10, 10, 10), dtype=np.uint8)
    label[2:5, 2:5, 2:5] = 1
    d = lesion_descriptors(label, (1.0, 1.0, 1.0))
    assert d["MASK_GTVn_count"] == 0 and d["MASK_GTVn_total_ml"] == 0
    assert np.isnan(d["MASK_GTV_primary_to_farthest_node_mm"])
