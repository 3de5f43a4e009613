"""Segmentation metrics on hand-built arrays, against SimpleITK and analytic values."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from hecktor_nnunet.metrics.segmentation import (aggregated_dice, aggregated_f1, borda_ranking, dice, hd95,
                                                 hd95_status, headline_metrics, match_lesions, mean_dice,
                                                 patient_metrics, voxel_volume_ml)


def _blobs(seed, shape=(20, 30, 30)):
    rng = np.random.default_rng(seed)
    zyx = np.indices(shape)
    lab = np.zeros(shape, np.uint8)
    for value in (1, 2, 2):
        c = rng.uniform(5, np.array(shape) - 5)
        r = rng.uniform(2.5, 5)
        lab[((zyx - c[:, None, None, None]) ** 2).sum(0) < r**2] = value
    return lab


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_matches_simpleitk_label_overlap(seed):
    truth = _blobs(seed)
    pred = np.roll(_blobs(seed), 1, axis=2)
    pred[_blobs(seed + 10) == 2] = 2
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray(truth), sitk.GetImageFromArray(pred))
    m = patient_metrics(truth, pred, (3.0, 1.0, 1.0))
    for name, value in (("gtvp", 1), ("gtvn", 2)):
        assert m[f"{name}_dice"] == pytest.approx(f.GetDiceCoefficient(value), abs=1e-12)
        assert dice(truth == value, pred == value) == pytest.approx(f.GetDiceCoefficient(value), abs=1e-12)


def test_dice_and_volume_conventions():
    z = np.zeros((4, 4, 4), bool)
    one = z.copy()
    one[1, 1, 1] = True
    assert np.isnan(dice(z, z))
    assert dice(one, z) == 0.0
    m = patient_metrics(np.zeros((4, 4, 4), np.uint8), one.astype(np.uint8) * 2, (1, 1, 1))
    assert np.isnan(m["gtvp_dice"]) and m["gtvp_hd95_status"] == "both_empty"
    assert m["gtvn_dice"] == 0.0 and m["gtvn_hd95_status"] == "truth_empty" and np.isnan(m["gtvn_hd95"])
    assert (m["gtvn_tp"], m["gtvn_fp"], m["gtvn_fn"]) == (0, 1, 0)


def test_mean_dice_both_empty_conventions():
    # three patients, the third with neither truth nor prediction of the class (Dice NaN)
    values = [0.9, 0.6, float("nan")]
    assert mean_dice(values) == pytest.approx(0.5)        # default: the organisers' 0
    assert mean_dice(values, "zero") == pytest.approx(0.5)
    assert mean_dice(values, "exclude") == pytest.approx(0.75)
    assert np.isnan(mean_dice([float("nan")], "exclude")) and mean_dice([float("nan")], "zero") == 0.0
    with pytest.raises(ValueError, match="both_empty"):
        mean_dice(values, "skip")


def test_aggregated_dice_equals_direct_sum():
    # three patients on different spacings: volumes must be summed in physical units
    cases = []
    for seed, spacing in ((0, (3.0, 1.0, 1.0)), (1, (2.0, 0.5, 0.5)), (2, (1.0, 1.0, 1.0))):
        t = _blobs(seed) == 2
        p = np.roll(t, 2, axis=1)
        cases.append((t, p, spacing))
    empty = np.zeros((20, 30, 30), bool)
    cases.append((empty, empty, (1.0, 1.0, 1.0)))   # no GTVn anywhere: adds nothing
    rows = [patient_metrics(t.astype(np.uint8) * 2, p.astype(np.uint8) * 2, s) for t, p, s in cases]
    num = sum(2 * (t & p).sum() * np.prod(s) for t, p, s in cases)
    den = sum((t.sum() + p.sum()) * np.prod(s) for t, p, s in cases)
    got = aggregated_dice([r["gtvn_inter_ml"] for r in rows], [r["gtvn_true_ml"] for r in rows],
                          [r["gtvn_pred_ml"] for r in rows])
    assert got == pytest.approx(num / den, rel=1e-12)
    assert aggregated_dice([0, 0], [0, 0], [0, 0]) == 1.0


def test_headline_metrics_of_per_patient_rows_by_hand():
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 1                       # GTVp, 8 voxels
    a[4:6, 4:6, 4:6] = 2                       # one node, 8 voxels
    b = a.copy()
    b[1, 1:3, 1:3] = 0                         # GTVp: 4 of 8 found
    b[4:6, 4:6, 0:2] = 2                       # a false-positive node
    empty = np.zeros_like(a)
    rows = pd.DataFrame([patient_metrics(a, b, (2.0, 1.0, 1.0)), patient_metrics(empty, empty, (1.0, 1.0, 1.0))])
    assert voxel_volume_ml((2.0, 1.0, 1.0)) == 0.002
    h = headline_metrics(rows)
    assert h["gtvp_dice_mean"] == pytest.approx((2 * 4 / 12 + 0.0) / 2)   # the empty patient counts 0
    assert headline_metrics(rows, "exclude")["gtvp_dice_mean"] == pytest.approx(2 * 4 / 12)
    assert h["gtvn_dsc_agg"] == pytest.approx(2 * 8 / 24)                 # volumes in mL, one spacing here
    assert h["gtvn_f1_agg"] == pytest.approx(2 * 1 / (2 + 1 + 0))
    assert headline_metrics({k: list(rows[k]) for k in rows}) == h          # a dict of columns works too
    with pytest.raises(ValueError, match="spacing"):
        voxel_volume_ml((1.0, 0.0, 1.0))


@pytest.mark.parametrize("axis,k,spacing", [(0, 2, (3.0, 0.8, 0.8)), (2, 3, (3.0, 1.0, 0.5)), (1, 1, (2.0, 1.5, 1.0))])
def test_hd95_shifted_flat_cuboid(axis, k, spacing):
    # a cuboid thin along the shift axis: >5% of surface voxels lie exactly k voxels away, none further
    shape = [40, 40, 40]
    a = np.zeros(shape, bool)
    sl = [slice(8, 32)] * 3
    sl[axis] = slice(10, 18)
    a[tuple(sl)] = True
    b = np.roll(a, k, axis=axis)
    assert hd95(a, b, spacing) == pytest.approx(k * spacing[axis])
    assert hd95(a, a, spacing) == 0.0


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_hd95_is_monais_hausdorff_distance():
    # reference: MONAI's compute_hausdorff_distance called directly on the full arrays, anisotropic spacing
    from monai.metrics import compute_hausdorff_distance

    for seed, spacing in ((0, (3.0, 0.98, 0.98)), (1, (2.0, 0.5, 1.5)), (2, (4.0, 4.0, 4.0))):
        truth = _blobs(seed) == 2
        pred = _blobs(seed + 20) > 0
        ref = compute_hausdorff_distance(pred[None, None], truth[None, None], include_background=True,
                                         percentile=95, spacing=list(spacing)).item()
        assert hd95(truth, pred, spacing) == pytest.approx(ref, rel=1e-6)
        assert hd95(pred, truth, spacing) == pytest.approx(ref, rel=1e-6)   # symmetric


def test_hd95_concentric_spheres():
    zyx = np.indices((61, 61, 61)) - 30
    r = np.sqrt((zyx**2).sum(0))
    inner, outer = r <= 10, r <= 16
    # voxel surfaces of digital spheres sit within a voxel of the true radii
    assert hd95(inner, outer, (1, 1, 1)) == pytest.approx(6.0, abs=1.0)
    assert hd95(inner, outer, (0.5, 0.5, 0.5)) == pytest.approx(3.0, abs=0.5)
    assert hd95_status(inner, np.zeros_like(inner)) == "pred_empty"
    assert np.isnan(hd95(inner, np.zeros_like(inner), (1, 1, 1)))


def _box(shape, *ranges):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in ranges)] = True
    return m


S = (20, 40, 40)


def test_lesions_split():
    truth = _box(S, (5, 10), (5, 25), (5, 10))
    pred = _box(S, (5, 10), (5, 14), (5, 10)) | _box(S, (5, 10), (16, 25), (5, 10))   # IoU 0.45 each
    assert match_lesions(truth, pred).to_dict() == {"tp": 1, "fp": 1, "fn": 0, "n_true": 1, "n_pred": 2}


def test_lesions_merged():
    truth = _box(S, (5, 10), (5, 14), (5, 10)) | _box(S, (5, 10), (16, 25), (5, 10))
    pred = _box(S, (5, 10), (5, 25), (5, 10))
    assert match_lesions(truth, pred).to_dict() == {"tp": 1, "fp": 0, "fn": 1, "n_true": 2, "n_pred": 1}


def test_lesions_touching_depend_on_connectivity():
    truth = _box(S, (5, 8), (5, 8), (5, 8)) | _box(S, (8, 11), (8, 11), (8, 11))   # corner contact only
    assert match_lesions(truth, truth, connectivity=6).to_dict() == {"tp": 2, "fp": 0, "fn": 0, "n_true": 2, "n_pred": 2}
    assert match_lesions(truth, truth, connectivity=18).n_true == 2
    assert match_lesions(truth, truth, connectivity=26).to_dict() == {"tp": 1, "fp": 0, "fn": 0, "n_true": 1, "n_pred": 1}
    with pytest.raises(ValueError, match="connectivity"):
        match_lesions(truth, truth, connectivity=8)


def test_lesions_tiny_and_low_overlap():
    big = _box(S, (5, 10), (5, 15), (5, 15))
    tiny = _box(S, (15, 16), (30, 31), (30, 31))
    assert match_lesions(big | tiny, big).to_dict() == {"tp": 1, "fp": 0, "fn": 1, "n_true": 2, "n_pred": 1}
    assert match_lesions(big, big | tiny).to_dict() == {"tp": 1, "fp": 1, "fn": 0, "n_true": 1, "n_pred": 2}
    shifted = np.roll(big, 6, axis=1)   # IoU = 4/16 = 0.25, not a detection
    assert match_lesions(big, shifted).to_dict() == {"tp": 0, "fp": 1, "fn": 1, "n_true": 1, "n_pred": 1}
    assert match_lesions(big, np.roll(big, 4, axis=1)).tp == 1    # IoU = 6/14 = 0.43


def test_one_to_one_greedy_matching():
    # one prediction covering two true lesions with IoU 0.5 and 0.4 (both > 0.3): one match only
    a = _box(S, (5, 10), (5, 10), (5, 10))
    b = _box(S, (5, 10), (11, 15), (5, 10))
    pred = _box(S, (5, 10), (5, 15), (5, 10))
    m = match_lesions(a | b, pred, connectivity=26)
    assert (m.tp, m.fp, m.fn, m.n_true) == (1, 0, 1, 2)


def test_optimal_matching_detects_more_than_greedy():
    # IoU(A, P) = 5/13 is the largest pair: greedy takes it and leaves B (only P detects it, IoU 1/3) and
    # Q (only detects A, IoU 1/3) unmatched; the maximum one-to-one matching pairs A-Q and B-P instead.
    a = _box(S, (5, 10), (5, 14), (5, 10))
    b = _box(S, (5, 10), (15, 18), (5, 10))
    p = _box(S, (5, 10), (9, 18), (5, 10))
    q = _box(S, (5, 10), (5, 8), (5, 10))
    greedy = match_lesions(a | b, p | q)
    assert greedy == match_lesions(a | b, p | q, matching="greedy")
    assert greedy.to_dict() == {"tp": 1, "fp": 1, "fn": 1, "n_true": 2, "n_pred": 2}
    assert match_lesions(a | b, p | q, matching="optimal").to_dict() == {"tp": 2, "fp": 0, "fn": 0, "n_true": 2,
                                                                          "n_pred": 2}
    # a prediction covering two nodes still detects one of them only, under both rules
    both = _box(S, (5, 10), (5, 15), (5, 10))
    two = _box(S, (5, 10), (5, 10), (5, 10)) | _box(S, (5, 10), (11, 15), (5, 10))
    assert match_lesions(two, both, matching="optimal").tp == 1
    m = patient_metrics((a | b).astype(np.uint8) * 2, (p | q).astype(np.uint8) * 2, (1, 1, 1), matching="optimal")
    assert (m["gtvn_tp"], m["gtvn_fp"], m["gtvn_fn"]) == (2, 0, 0)
    with pytest.raises(ValueError, match="matching"):
        match_lesions(a, p, matching="hungarian")


def test_aggregated_f1():
    assert aggregated_f1([1, 2], [1, 0], [0, 1]) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert aggregated_f1([0], [0], [0]) == 1.0


def test_borda_ranking_three_runs():
    table = pd.DataFrame({"gtvp_dice_mean": [0.70, 0.75, 0.72],
                          "gtvn_dsc_agg": [0.80, 0.70, 0.75],
                          "gtvn_f1_agg": [0.60, 0.50, 0.65]}, index=["A", "B", "C"])
    r = borda_ranking(table)
    # GTVp ranks B1 C2 A3; DSCagg A1 C2 B3; F1 C1 A2 B3 -> GTVn sums A3 C3 B6 -> ranks A1 C1 B3
    assert r.loc[["A", "B", "C"], "rank_gtvp"].tolist() == [3, 1, 2]
    assert r.loc[["A", "B", "C"], "rank_gtvn"].tolist() == [1, 3, 1]
    # totals A4 B4 C3 -> C first, A and B share rank 2
    assert r.index[0] == "C"
    assert r.loc[["A", "B", "C"], "final_rank"].tolist() == [2, 2, 1]
