"""Post-processing: hand-made label maps, grid search choosing the right setting, saved with the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.inference.postprocessing import (POSTPROCESSING_FILE, Postprocessing, apply_postprocessing,
                                                    candidates, load_postprocessing, score, select_for_model,
                                                    select_postprocessing)

SPACING = (2.0, 2.0, 2.0)  # 8 mm^3 = 0.008 mL per voxel


def _truth() -> np.ndarray:
    t = np.zeros((20, 20, 20), np.uint8)
    t[2:8, 2:8, 2:8] = 1          # GTVp, 216 voxels
    t[12:15, 12:15, 12:15] = 2    # one node, 27 voxels = 0.216 mL
    return t


def _pred_with_specks() -> np.ndarray:
    p = _truth().copy()
    p[17, 2, 2] = 1               # a second, 1-voxel GTVp component
    p[17, 17, 17] = 2             # a 1-voxel GTVn speck (0.008 mL): a false-positive lesion
    p[2, 17, 17] = 2
    return p


def test_apply_keeps_largest_gtvp_and_drops_small_nodes():
    p = _pred_with_specks()
    out = apply_postprocessing(p, SPACING, Postprocessing(True, 0.1))
    np.testing.assert_array_equal(out, _truth())
    assert np.array_equal(apply_postprocessing(p, SPACING, Postprocessing()), p)
    # threshold above the true node removes it too
    assert not (apply_postprocessing(p, SPACING, Postprocessing(False, 0.3)) == 2).any()


def test_score_hand_values():
    s = score([(_truth(), _pred_with_specks(), SPACING)])
    assert s["gtvp_dice"] == pytest.approx(2 * 216 / (216 + 217))
    assert s["gtvn_f1_agg"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 0))   # TP 1, FP 2
    assert s["gtvn_dsc_agg"] == pytest.approx(2 * 27 / (27 + 29))


def test_score_aggregates_gtvn_volumes_in_ml():
    node = np.zeros((4, 4, 4), np.uint8)
    node[:2, :2, :2] = 2
    # 8 voxels matched at 1 mm (0.008 mL), 8 voxels missed at 2 mm (0.064 mL)
    s = score([(node, node, (1.0, 1.0, 1.0)), (node, np.zeros_like(node), (2.0, 2.0, 2.0))])
    assert s["gtvn_dsc_agg"] == pytest.approx(2 * 0.008 / (0.016 + 0.064))


def test_grid_search_picks_cleanup_and_prefers_identity_on_ties():
    best, table = select_postprocessing([(_truth(), _pred_with_specks(), SPACING)])
    assert best.keep_largest_gtvp and 0.008 < best.min_gtvn_ml <= 0.216
    assert len(table) == len(candidates())
    clean, _ = select_postprocessing([(_truth(), _truth(), SPACING)])
    assert clean == Postprocessing()  # nothing to gain: the simplest setting
    with pytest.raises(ValueError):
        select_postprocessing([])


def _write(arr, path):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING)
    sitk.WriteImage(img, str(path))


def test_select_for_model_reads_validation_folds_and_saves_json(tmp_path):
    model, truth = tmp_path / "model", tmp_path / "gt"
    truth.mkdir()
    for fold, pid in ((0, "A-001"), (1, "B-001")):
        (model / f"fold_{fold}" / "validation").mkdir(parents=True)
        _write(_pred_with_specks(), model / f"fold_{fold}" / "validation" / f"{pid}.nii.gz")
        _write(_truth(), truth / f"{pid}.nii.gz")
    result = select_for_model(model, [0, 1], truth)
    assert result["n_cases"] == 2
    saved = json.loads((model / POSTPROCESSING_FILE).read_text())
    assert saved["setting"] == result["setting"]
    assert load_postprocessing(model) == Postprocessing.from_dict(result["setting"])
    assert load_postprocessing(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="fold_2"):
        select_for_model(model, [2], truth)


def _random_case(rng, shape=(24, 24, 24)):
    from scipy import ndimage

    truth = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for arr in (truth, pred):
        for value, n in ((1, 2), (2, 5)):
            seeds = np.zeros(shape, bool)
            seeds[tuple(rng.integers(2, s - 2, n) for s in shape)] = True
            blobs = ndimage.binary_dilation(seeds, iterations=int(rng.integers(0, 3)))
            arr[blobs & (arr == 0)] = value
    return truth, pred, tuple(rng.uniform(0.8, 3.0, 3))


def test_streamed_search_equals_scoring_every_candidate():
    rng = np.random.default_rng(3)
    cases = [_random_case(rng) for _ in range(6)]
    thresholds = (0.01, 0.05, 0.2)
    best, table = select_postprocessing((case for case in cases), thresholds)  # a stream, read once
    for row, cand in zip(table, candidates(thresholds)):
        expected = score((t, apply_postprocessing(p, sp, cand), sp) for t, p, sp in cases)
        assert {k: row[k] for k in expected} == expected, cand  # exactly equal, not approximately
    assert best == candidates(thresholds)[int(np.argmax([r["mean"] for r in table]))]
