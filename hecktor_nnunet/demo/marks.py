"""The demo's pass marks on its held-out patients and the banner of a run below them."""

from __future__ import annotations

#: Pass marks on the held-out patients (issue 14): the demo says whether each is met.
PASS_MARKS = {"gtvp_dice_mean": 0.60, "gtvn_dsc_agg": 0.30, "rfs_c_index_predicted": 0.65,
              "rfs_c_index_gap_to_true": 0.05, "hpv_balanced_accuracy_predicted": 0.65}
NOT_A_MODEL = ("The segmentation network of this run stays below the demo's pass mark on its held-out patients "
               "(GTVp Dice < {mark:.2f}): it is NOT a real model, and its numbers show that the pipeline runs "
               "end to end, not what nnU-Net achieves on HECKTOR.")


def pass_marks(seg_summary: dict | None, comparison: dict | None) -> list[dict]:
    """Each of :data:`PASS_MARKS` with the held-out value and whether it is met (None: not measured)."""
    by = {row["source"]: row for row in (comparison or {}).get("rows", [])}
    pred, true = by.get("predicted", {}), by.get("true", {})
    gap = (abs(pred["rfs_c_index"] - true["rfs_c_index"])
           if pred.get("rfs_c_index") is not None and true.get("rfs_c_index") is not None else None)
    values = {"gtvp_dice_mean": (seg_summary or {}).get("gtvp_dice_mean"),
              "gtvn_dsc_agg": (seg_summary or {}).get("gtvn_dsc_agg"),
              "rfs_c_index_predicted": pred.get("rfs_c_index"), "rfs_c_index_gap_to_true": gap,
              "hpv_balanced_accuracy_predicted": pred.get("hpv_balanced_accuracy")}
    out = []
    for name, mark in PASS_MARKS.items():
        v = values[name]
        met = None if v is None else (v <= mark if name == "rfs_c_index_gap_to_true" else v >= mark)
        out.append({"metric": name, "value": v, "mark": mark, "rule": "<=" if name.endswith("gap_to_true") else ">=",
                    "met": met})
    return out
