import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.io.geometry import (Grid, IndexBox, bounding_box, crop, grid_with_spacing, overlap_box,
                                     resample, uncrop)


def _img(size=(10, 12, 8), spacing=(1.0, 2.0, 3.0), origin=(5.0, -3.0, 10.0), value=None):
    arr = np.arange(np.prod(size[::-1]), dtype=np.float32).reshape(size[::-1]) if value is None else \
        np.full(size[::-1], value, np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_index_physical_round_trip_and_matches_simpleitk():
    img = _img()
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    g = Grid.of(img)
    idx = np.array([[1, 2, 3], [4.5, 0, 7]])
    phys = g.index_to_physical(idx)
    for i, p in zip(idx, phys):
        assert np.allclose(p, img.TransformContinuousIndexToPhysicalPoint(i.tolist()))
    assert np.allclose(g.physical_to_index(phys), idx)


def test_overlap_box_is_voxels_inside_other_fov():
    ct = Grid((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    # other covers physical [3.5, 20) in x, all y, [-10.5, 4.5) in z (edges = centre -/+ half spacing)
    pet = Grid((5, 20, 5), (3.0, 1.0, 3.0), (5.0, -5.0, -9.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    box = overlap_box(ct, pet)
    assert box.start == (4, 0, 0) and box.stop == (10, 10, 5)
    far = Grid((5, 5, 5), (1.0, 1.0, 1.0), (100.0, 0, 0), ct.direction)
    assert overlap_box(ct, far).empty


def test_crop_uncrop_is_exact_and_keeps_physical_position():
    img = _img()
    box = IndexBox((2, 3, 1), (5, 4, 6))
    c = crop(img, box)
    assert np.allclose(c.GetOrigin(), img.TransformIndexToPhysicalPoint((2, 3, 1)))
    assert Grid.of(c).same_as(box.subgrid(Grid.of(img)))
    back = uncrop(c, box, Grid.of(img))
    a, b = sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img)
    assert np.array_equal(a[box.slices()], b[box.slices()])
    assert a.sum() == b[box.slices()].sum()
    with pytest.raises(ValueError):
        uncrop(c, IndexBox((0, 0, 0), (1, 1, 1)), Grid.of(img))


def test_grid_with_spacing_covers_same_physical_box():
    g = Grid.of(_img())
    box = IndexBox((0, 0, 0), g.size)
    new = grid_with_spacing(g, box, (2.0, 2.0, 2.0))
    assert new.size == (5, 12, 12)
    assert np.allclose(new.corners().min(0), g.corners().min(0))
    with pytest.raises(ValueError):
        grid_with_spacing(g, box, (0, 1, 1))


def test_resample_nearest_identity_and_bounding_box():
    img = _img()
    same = resample(img, Grid.of(img), "nearest")
    assert np.array_equal(sitk.GetArrayFromImage(same), sitk.GetArrayFromImage(img))
    with pytest.raises(ValueError, match="interpolator"):
        resample(img, Grid.of(img), "cubic")
    m = np.zeros((8, 12, 10), bool)
    m[2:4, 5, 1:7] = True
    assert bounding_box(m) == IndexBox((1, 5, 2), (6, 1, 2))
    assert bounding_box(np.zeros((2, 2, 2))) is None
