"""Task 1 segmentation metrics on numpy label maps: Dice, volumes, HD95, lesion detection, ranking.

Conventions (also in docs/reference/metrics.md):

- Arrays are ``(z, y, x)`` as returned by ``sitk.GetArrayFromImage``; ``spacing`` is given in
  the same axis order, in mm (``image.GetSpacing()[::-1]``).
- Labels: 0 background, 1 GTVp, 2 GTVn.
- Per-patient Dice when truth and prediction are both empty: NaN (undefined). :func:`mean_dice`
  then counts it as 0 (``both_empty="zero"``, the organisers' convention: SimpleITK's overlap
  filter in the 2025 ``DiceAggScore`` and the 2021 evaluator) or leaves it out
  (``both_empty="exclude"``). One side empty: Dice 0.
- HD95: MONAI's ``compute_hausdorff_distance(..., percentile=95, spacing=...)``, symmetric (the
  larger of the two directed 95th percentiles of distances between the masks' edge voxels, in
  mm). NaN when either side is empty; the reason is given by :func:`hd95_status` (``"ok"``,
  ``"both_empty"``, ``"truth_empty"``, ``"pred_empty"``).
- Lesions (GTVn) are connected components (connectivity 6, 18 or 26). A predicted lesion
  detects a true lesion when their IoU > 0.3; matching is one-to-one, either greedy by
  descending IoU (ties broken by the smaller true then predicted component index) or optimal
  (the most detections a one-to-one matching allows). Unmatched true lesions are FN,
  unmatched predicted lesions FP.
- Aggregated Dice and F1 score 1.0 when their denominator is 0 (no GTVn anywhere).

The ranked metrics of a set of patients are :func:`headline_metrics` of their :func:`patient_metrics`;
``hecktor-evaluate seg`` reports them and post-processing selection
(:mod:`hecktor_nnunet.inference.postprocessing`) maximises them, through these same functions.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

GTVP, GTVN = 1, 2
CLASSES = {"gtvp": GTVP, "gtvn": GTVN}
CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}
IOU_THRESHOLD = 0.3
# how the GTVp mean treats a patient with no GTVp in truth and prediction; the first is the default
BOTH_EMPTY_DICE = ("zero", "exclude")
# one-to-one lesion matching for F1agg; the first is the default
MATCHING = ("greedy", "optimal")


def _spacing(spacing: Sequence[float]) -> np.ndarray:
    s = np.asarray(spacing, dtype=float).ravel()
    if s.size != 3 or not np.all(s > 0):
        raise ValueError(f"spacing must be 3 positive values (mm, z y x), got {spacing}")
    return s


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mL, from its spacing in mm (3 positive values, any axis order)."""
    return float(np.prod(_spacing(spacing))) / 1000.0


def _pair(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth).astype(bool), np.asarray(pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction shapes differ: {t.shape} vs {p.shape}")
    return t, p


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two binary masks; NaN when both are empty, 0 when exactly one is."""
    t, p = _pair(truth, pred)
    denom = np.count_nonzero(t) + np.count_nonzero(p)
    if denom == 0:
        return float("nan")
    return 2.0 * np.count_nonzero(t & p) / denom


def mean_dice(values: Sequence[float], both_empty: str = "zero") -> float:
    """Mean of per-patient Dice values, NaN marking a patient with both masks empty.

    Parameters
    ----------
    values : sequence of float, shape (n_patients,)
        Per-patient Dice (:func:`dice`), NaN where truth and prediction are both empty.
    both_empty : {"zero", "exclude"}
        ``"zero"`` counts those patients as Dice 0 (the organisers' convention), ``"exclude"``
        leaves them out of the mean.

    Returns
    -------
    float
        The mean; NaN when no patient is left to average.
    """
    if both_empty not in BOTH_EMPTY_DICE:
        raise ValueError(f"both_empty must be one of {BOTH_EMPTY_DICE}, got {both_empty!r}")
    v = np.asarray(values, dtype=float)
    v = np.nan_to_num(v, nan=0.0) if both_empty == "zero" else v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _crop_to(masks: Sequence[np.ndarray], pad: int = 1) -> tuple[np.ndarray, ...]:
    """Crop masks to the padded bounding box of their union (padding is zero-filled)."""
    union = np.logical_or.reduce(masks)
    idx = np.nonzero(union.any(axis=(1, 2)))[0], np.nonzero(union.any(axis=(0, 2)))[0], np.nonzero(union.any(axis=(0, 1)))[0]
    sl = tuple(slice(i[0], i[-1] + 1) for i in idx)
    return tuple(np.pad(m[sl], pad) for m in masks)


def hd95_status(truth: np.ndarray, pred: np.ndarray) -> str:
    """Why :func:`hd95` is or is not defined: ``ok``, ``both_empty``, ``truth_empty``, ``pred_empty``."""
    t_any, p_any = bool(np.any(truth)), bool(np.any(pred))
    if t_any and p_any:
        return "ok"
    if not t_any and not p_any:
        return "both_empty"
    return "truth_empty" if not t_any else "pred_empty"


def hd95(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm; NaN when either mask is empty (see :func:`hd95_status`).

    MONAI's ``compute_hausdorff_distance`` with ``percentile=95``, symmetric, on the voxel
    spacing: ``max(P95(d(truth -> pred)), P95(d(pred -> truth)))`` over the masks' edge voxels
    (mask voxels with a 6-neighbour outside it). The masks are first cropped to the bounding box
    of their union, so the cost follows the lesion size rather than the image size.
    """
    t, p = _pair(truth, pred)
    if hd95_status(t, p) != "ok":
        return float("nan")
    from monai.metrics import compute_hausdorff_distance  # imported here: MONAI takes seconds to import

    t, p = _crop_to([t, p])
    with warnings.catch_warnings():  # MONAI 1.5-1.6 warns about an argument its own code passes
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        d = compute_hausdorff_distance(p[None, None], t[None, None], include_background=True, percentile=95,
                                       spacing=_spacing(spacing).tolist())
    return float(d.item())


@dataclass(frozen=True)
class LesionMatch:
    """Lesion detection counts for one patient (or summed over patients)."""

    tp: int
    fp: int
    fn: int
    n_true: int
    n_pred: int

    def to_dict(self) -> dict:
        return asdict(self)


def components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Connected components of a binary mask (``scipy.ndimage.label``); connectivity 6, 18 or 26."""
    if connectivity not in CONNECTIVITY_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    structure = ndimage.generate_binary_structure(3, CONNECTIVITY_RANK[connectivity])
    lab, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    return lab, int(n)


def match_lesions(truth: np.ndarray, pred: np.ndarray, connectivity: int = 26,
                  iou_threshold: float = IOU_THRESHOLD, matching: str = "greedy") -> LesionMatch:
    """One-to-one lesion matching by IoU (a pair can match only when IoU is strictly above threshold).

    Parameters
    ----------
    truth, pred : ndarray of bool, shape (z, y, x)
        Binary masks of one class (GTVn).
    connectivity : {6, 18, 26}
        Neighbourhood defining a lesion.
    iou_threshold : float
        A pair can match only when IoU > threshold.
    matching : {"greedy", "optimal"}
        ``"greedy"`` takes pairs by descending IoU (ties: smaller true, then predicted component
        index), skipping lesions already matched; ``"optimal"`` takes a maximum one-to-one
        matching (the most detections possible; ``scipy.sparse.csgraph.maximum_bipartite_matching``).

    Returns
    -------
    LesionMatch
    """
    if matching not in MATCHING:
        raise ValueError(f"matching must be one of {MATCHING}, got {matching!r}")
    t, p = _pair(truth, pred)
    if not t.any() and not p.any():
        return LesionMatch(0, 0, 0, 0, 0)
    t, p = _crop_to([t, p])
    lt, nt = components(t, connectivity)
    lp, nps = components(p, connectivity)
    if nt == 0 or nps == 0:
        return LesionMatch(0, nps, nt, nt, nps)
    size_t = np.bincount(lt.ravel(), minlength=nt + 1)
    size_p = np.bincount(lp.ravel(), minlength=nps + 1)
    both = (lt > 0) & (lp > 0)
    inter = np.bincount(lt[both].astype(np.int64) * (nps + 1) + lp[both], minlength=(nt + 1) * (nps + 1))
    inter = inter.reshape(nt + 1, nps + 1)[1:, 1:]
    union = size_t[1:, None] + size_p[None, 1:] - inter
    iou = inter / union
    if matching == "optimal":
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_bipartite_matching

        tp = int(np.count_nonzero(maximum_bipartite_matching(csr_matrix(iou > iou_threshold), perm_type="column") >= 0))
        return LesionMatch(tp, nps - tp, nt - tp, nt, nps)
    ti, pi = np.nonzero(iou > iou_threshold)
    order = np.lexsort((pi, ti, -iou[ti, pi]))
    used_t, used_p = set(), set()
    tp = 0
    for k in order:
        a, b = int(ti[k]), int(pi[k])
        if a in used_t or b in used_p:
            continue
        used_t.add(a)
        used_p.add(b)
        tp += 1
    return LesionMatch(tp, nps - tp, nt - tp, nt, nps)


def patient_metrics(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float], connectivity: int = 26,
                    iou_threshold: float = IOU_THRESHOLD, matching: str = "greedy") -> dict:
    """All per-patient metrics of one label-map pair.

    Parameters
    ----------
    truth, pred : ndarray of int, shape (z, y, x)
        Label maps with values in {0, 1, 2}.
    spacing : sequence of 3 float
        Voxel spacing in mm, (z, y, x).
    connectivity : {6, 18, 26}
        Lesion connectivity for GTVn detection.
    iou_threshold : float
        IoU above which a predicted lesion detects a true lesion.
    matching : {"greedy", "optimal"}
        One-to-one lesion matching (:func:`match_lesions`).

    Returns
    -------
    dict
        For each class ``c`` in (gtvp, gtvn): ``c_dice``, ``c_hd95`` (mm), ``c_hd95_status``,
        ``c_true_ml``, ``c_pred_ml``, ``c_inter_ml``; and for GTVn ``gtvn_tp``, ``gtvn_fp``,
        ``gtvn_fn``, ``gtvn_n_true``, ``gtvn_n_pred`` (lesion counts).
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction shapes differ: {truth.shape} vs {pred.shape}")
    voxel_ml = voxel_volume_ml(spacing)
    out: dict = {}
    for name, value in CLASSES.items():
        t, p = truth == value, pred == value
        if t.any() or p.any():
            t, p = _crop_to([t, p], pad=0)
        nt, npred, ni = np.count_nonzero(t), np.count_nonzero(p), np.count_nonzero(t & p)
        out[f"{name}_dice"] = dice(t, p)
        out[f"{name}_hd95_status"] = hd95_status(t, p)
        out[f"{name}_hd95"] = hd95(t, p, spacing)
        out[f"{name}_true_ml"] = float(nt * voxel_ml)
        out[f"{name}_pred_ml"] = float(npred * voxel_ml)
        out[f"{name}_inter_ml"] = float(ni * voxel_ml)
        if value == GTVN:
            m = match_lesions(t, p, connectivity, iou_threshold, matching)
            out.update({f"gtvn_{k}": v for k, v in m.to_dict().items()})
    return out


def aggregated_dice(inter: Sequence[float], true_vol: Sequence[float], pred_vol: Sequence[float]) -> float:
    """DSCagg = 2 * sum(inter) / sum(true + pred) over patients; 1.0 when the denominator is 0.

    Volumes in any consistent unit (mL here).
    """
    i, t, p = (np.asarray(a, dtype=float) for a in (inter, true_vol, pred_vol))
    denom = t.sum() + p.sum()
    return 1.0 if denom == 0 else float(2.0 * i.sum() / denom)


def aggregated_f1(tp: Sequence[int], fp: Sequence[int], fn: Sequence[int]) -> float:
    """F1agg = 2 TP / (2 TP + FP + FN) with counts summed over patients; 1.0 when no lesion anywhere."""
    tp_, fp_, fn_ = (float(np.sum(a)) for a in (tp, fp, fn))
    denom = 2 * tp_ + fp_ + fn_
    return 1.0 if denom == 0 else 2 * tp_ / denom


def headline_metrics(per_patient: Mapping[str, Sequence[float]], both_empty: str = "zero") -> dict[str, float]:
    """The three ranked Task 1 metrics of a set of patients.

    Parameters
    ----------
    per_patient : mapping of str to sequence, or pandas.DataFrame
        :func:`patient_metrics`' values per patient: ``gtvp_dice``, ``gtvn_inter_ml``, ``gtvn_true_ml``,
        ``gtvn_pred_ml``, ``gtvn_tp``, ``gtvn_fp``, ``gtvn_fn`` (one entry per patient each).
    both_empty : {"zero", "exclude"}
        How the GTVp mean counts a patient with no GTVp in truth and prediction (:func:`mean_dice`).

    Returns
    -------
    dict
        ``gtvp_dice_mean`` (:func:`mean_dice`), ``gtvn_dsc_agg`` (:func:`aggregated_dice`),
        ``gtvn_f1_agg`` (:func:`aggregated_f1`).
    """
    return {"gtvp_dice_mean": mean_dice(per_patient["gtvp_dice"], both_empty),
            "gtvn_dsc_agg": aggregated_dice(per_patient["gtvn_inter_ml"], per_patient["gtvn_true_ml"],
                                            per_patient["gtvn_pred_ml"]),
            "gtvn_f1_agg": aggregated_f1(per_patient["gtvn_tp"], per_patient["gtvn_fp"], per_patient["gtvn_fn"])}


def borda_ranking(table, gtvp: str = "gtvp_dice_mean", dsc_agg: str = "gtvn_dsc_agg",
                  f1_agg: str = "gtvn_f1_agg"):
    """The challenge's Borda ranking of several runs (rank 1 = best).

    ``rank_gtvp`` ranks the runs by mean GTVp Dice; ``rank_gtvn`` ranks the sum of the DSCagg
    and F1agg ranks; ``final_rank`` ranks the sum of ``rank_gtvp`` and ``rank_gtvn``. Higher
    metric = better; ties share the best rank (``method="min"``).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run (index = run name) with the three metric columns.

    Returns
    -------
    pandas.DataFrame
        The metrics plus ``rank_gtvp``, ``rank_dsc_agg``, ``rank_f1_agg``, ``rank_gtvn``,
        ``borda_sum``, ``final_rank``; sorted by ``final_rank``.
    """
    for c in (gtvp, dsc_agg, f1_agg):
        if c not in table.columns:
            raise ValueError(f"borda_ranking: column {c!r} missing (have {list(table.columns)})")
    out = table[[gtvp, dsc_agg, f1_agg]].copy()
    out["rank_gtvp"] = out[gtvp].rank(ascending=False, method="min")
    out["rank_dsc_agg"] = out[dsc_agg].rank(ascending=False, method="min")
    out["rank_f1_agg"] = out[f1_agg].rank(ascending=False, method="min")
    out["rank_gtvn"] = (out["rank_dsc_agg"] + out["rank_f1_agg"]).rank(ascending=True, method="min")
    out["borda_sum"] = out["rank_gtvp"] + out["rank_gtvn"]
    out["final_rank"] = out["borda_sum"].rank(ascending=True, method="min")
    rank_cols = ["rank_gtvp", "rank_dsc_agg", "rank_f1_agg", "rank_gtvn", "borda_sum", "final_rank"]
    out[rank_cols] = out[rank_cols].astype(int)
    return out.sort_values(["final_rank", "borda_sum"])
