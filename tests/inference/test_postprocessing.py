"""Post-processing: hand-made label maps, grid search choosing the right setting, saved with the model,
scored exactly as ``hecktor-evaluate seg`` scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.inference.postprocessing import (POSTPROCESSING_FILE, Postprocessing, apply_postprocessing,
                                                    candidates, load_postprocessing, select_for_model,
                                                    select_postprocessing)
from hecktor_nnunet.metrics.segmentation import headline_metrics, patient_metrics

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


def _identity_row(cases, **options) -> dict:
    _, table = select_postprocessing(cases, **options)
    return table[0]  # identity first


def test_identity_scores_hand_values():
    s = _identity_row([(_truth(), _pred_with_specks(), SPACING)])
    assert s["gtvp_dice"] == pytest.approx(2 * 216 / (216 + 217))
    assert s["gtvn_f1_agg"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 0))   # TP 1, FP 2
    assert s["gtvn_dsc_agg"] == pytest.approx(2 * 27 / (27 + 29))


def test_gtvn_volumes_aggregate_in_ml():
    node = np.zeros((4, 4, 4), np.uint8)
    node[:2, :2, :2] = 2
    # 8 voxels matched at 1 mm (0.008 mL), 8 voxels missed at 2 mm (0.064 mL)
    s = _identity_row([(node, node, (1.0, 1.0, 1.0)), (node, np.zeros_like(node), (2.0, 2.0, 2.0))])
    assert s["gtvn_dsc_agg"] == pytest.approx(2 * 0.008 / (0.016 + 0.064))


def test_a_patient_without_gtvp_in_truth_and_prediction_counts_as_hecktor_evaluate_says():
    empty = np.zeros((20, 20, 20), np.uint8)
    cases = [(_truth(), _truth(), SPACING), (empty, empty, SPACING)]
    assert _identity_row(cases)["gtvp_dice"] == 0.5                             # the organisers' 0, counted
    assert _identity_row(cases, both_empty_dice="exclude")["gtvp_dice"] == 1.0   # left out
    only_empty = _identity_row([(empty, empty, SPACING)], both_empty_dice="exclude")
    assert np.isnan(only_empty["gtvp_dice"]) and only_empty["mean"] == 1.0       # DSCagg and F1agg alone
    with pytest.raises(ValueError, match="both_empty_dice"):
        select_postprocessing(cases, both_empty_dice="skip")
    with pytest.raises(ValueError, match="connectivity"):
        select_postprocessing(cases, connectivity=8)


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


@pytest.mark.parametrize("both_empty", ["zero", "exclude"])
def test_streamed_search_equals_evaluating_every_candidate(both_empty):
    rng = np.random.default_rng(3)
    cases = [_random_case(rng) for _ in range(6)]
    cases.append((np.where(cases[0][0] == 1, 0, cases[0][0]), np.where(cases[0][1] == 1, 0, cases[0][1]),
                  cases[0][2]))  # a patient without GTVp in truth and prediction
    thresholds = (0.01, 0.05, 0.2)
    best, table = select_postprocessing((case for case in cases), thresholds, both_empty_dice=both_empty)
    for row, cand in zip(table, candidates(thresholds)):   # the stream was read once
        rows = [patient_metrics(t, apply_postprocessing(p, sp, cand), sp) for t, p, sp in cases]
        expected = headline_metrics({k: [r[k] for r in rows] for k in rows[0]}, both_empty)
        got = {"gtvp_dice_mean": row["gtvp_dice"], "gtvn_dsc_agg": row["gtvn_dsc_agg"],
               "gtvn_f1_agg": row["gtvn_f1_agg"]}
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), cand
    assert best == candidates(thresholds)[int(np.argmax([r["mean"] for r in table]))]
    assert len({r["mean"] for r in table}) > 1  # the candidates really differ on these cases


def test_identity_candidate_scores_what_hecktor_evaluate_reports_on_the_same_folder(tmp_path):
    from hecktor_nnunet.cli import evaluate as evaluate_cli

    rng = np.random.default_rng(7)
    model, truth = tmp_path / "model", tmp_path / "gt"
    val = model / "fold_0" / "validation"
    val.mkdir(parents=True)
    truth.mkdir()
    empty = np.zeros((24, 24, 24), np.uint8)
    cases = {f"CHUM-{k:03d}": _random_case(rng)[:2] for k in range(1, 6)}
    cases["CHUP-001"] = (empty, empty)                        # nothing at all, in truth or prediction
    t, p = _random_case(rng)[:2]
    cases["CHUP-002"] = (np.where(t == 1, 0, t), np.where(p == 1, 0, p))   # nodes only: GTVp both empty
    for pid, (t, p) in cases.items():
        _write(t, truth / f"{pid}.nii.gz")
        _write(p, val / f"{pid}.nii.gz")
    for both_empty in ("zero", "exclude"):
        out = tmp_path / f"eval_{both_empty}"
        assert evaluate_cli.main(["seg", "--truth", str(truth), "--pred", str(val), "-o", str(out), "--n-boot", "0",
                                  "--both-empty-dice", both_empty, "--quiet"]) == 0
        reported = json.loads((out / "summary.json").read_text())
        assert reported["gtvp_dice_n_both_empty"] == 2 and reported["n_patients"] == 7
        identity = select_for_model(model, [0], truth, both_empty_dice=both_empty)["candidates"][0]
        assert identity["keep_largest_gtvp"] is False and identity["min_gtvn_ml"] == 0.0
        assert identity["gtvp_dice"] == pytest.approx(reported["gtvp_dice_mean"], rel=1e-12)
        assert identity["gtvn_dsc_agg"] == pytest.approx(reported["gtvn_dsc_agg"], rel=1e-12)
        assert identity["gtvn_f1_agg"] == pytest.approx(reported["gtvn_f1_agg"], rel=1e-12)
    saved = json.loads((model / POSTPROCESSING_FILE).read_text())["score"]
    assert (saved["both_empty_dice"], saved["connectivity"], saved["matching"]) == ("exclude", 26, "greedy")
