"""``hecktor-evaluate``: challenge metrics for segmentation (seg), RFS (rfs) and HPV status (hpv)."""

from __future__ import annotations

import argparse
import logging
import sys

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet
from hecktor_nnunet.evaluation.common import EvaluationError
from hecktor_nnunet.evaluation.outcomes import evaluate_hpv, evaluate_rfs, format_outcome
from hecktor_nnunet.evaluation.segmentation import evaluate_segmentation, format_segmentation
from hecktor_nnunet.metrics.segmentation import BOTH_EMPTY_DICE, MATCHING


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-evaluate`` and its three tasks."""
    ap = argparse.ArgumentParser(prog="hecktor-evaluate", description=__doc__, formatter_class=DefaultsHelpFormatter)
    sub = ap.add_subparsers(dest="task", required=True)

    seg = sub.add_parser("seg", help="Task 1: Dice, DSCagg, F1agg, HD95 per patient and centre",
                         formatter_class=DefaultsHelpFormatter)
    seg.add_argument("--truth", required=True, help="release folder or folder of <ID>.nii.gz label maps")
    seg.add_argument("--pred", required=True, action="append",
                     help="folder of <ID>.nii.gz/.mha predictions; repeat to compare and rank runs")
    seg.add_argument("-o", "--out", required=True, help="output folder")
    seg.add_argument("-np", "--workers", type=int, default=1, help="worker processes")
    seg.add_argument("--resample-nearest", action="store_true",
                     help="resample predictions on another grid onto the truth grid (nearest neighbour)")
    seg.add_argument("--missing-as-empty", action="store_true",
                     help="score a missing prediction as empty (warning) instead of failing")
    seg.add_argument("--connectivity", type=int, default=26, choices=(6, 18, 26),
                     help="lesion connectivity for GTVn detection (default 26)")
    seg.add_argument("--matching", default=MATCHING[0], choices=MATCHING,
                     help="one-to-one lesion matching for F1agg: greedy by descending IoU (default) or "
                          "optimal (a maximum matching: the most detections possible)")
    seg.add_argument("--both-empty-dice", default=BOTH_EMPTY_DICE[0], choices=BOTH_EMPTY_DICE,
                     help="GTVp mean Dice of a patient with no GTVp in truth and prediction: zero (default, the "
                          "organisers' convention) or exclude (left out of the mean)")
    seg.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    seg.add_argument("--dask-scheduler", default=None, help="run on a Dask cluster (tcp://host:8786)")

    for name, helptext in (("rfs", "Task 2: C-index, Uno's C, AUC(t), KM plot"),
                           ("hpv", "Task 3: balanced accuracy, sensitivity, specificity, AUC, ROC")):
        p = sub.add_parser(name, help=helptext, formatter_class=DefaultsHelpFormatter)
        p.add_argument("--truth", required=True, help="clinical CSV with the outcome columns")
        p.add_argument("--pred", required=True,
                       help="CSV PatientID,Prediction[,Probability], JSON {id: value} or folder of <ID>.json")
        p.add_argument("-o", "--out", required=True, help="output folder")
        p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
        p.add_argument("--drop-nan", action="store_true", help="drop NaN predictions instead of failing")
        p.add_argument("--complete-cases", action="store_true",
                       help="score only the patients with truth and a prediction; those with truth and no (or a "
                            "NaN) prediction are left out and counted instead of failing")
        if name == "rfs":
            p.add_argument("--pred-is-time", action="store_true",
                           help="predictions are times (higher = later relapse), not risks")
    for p in sub.choices.values():
        add_quiet(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.task == "seg":
            result = evaluate_segmentation(
                truth=args.truth, preds=args.pred, out_dir=args.out, workers=args.workers,
                resample_nearest=args.resample_nearest, missing_as_empty=args.missing_as_empty,
                connectivity=args.connectivity, matching=args.matching, both_empty_dice=args.both_empty_dice,
                n_boot=args.n_boot, quiet=args.quiet, dask_scheduler=args.dask_scheduler)
            text = format_segmentation(result)
        elif args.task == "rfs":
            result = evaluate_rfs(truth_csv=args.truth, pred=args.pred, out_dir=args.out,
                                  pred_is_time=args.pred_is_time, n_boot=args.n_boot, drop_nan=args.drop_nan,
                                  complete_cases=args.complete_cases)
            text = format_outcome("rfs", result)
        else:
            result = evaluate_hpv(truth_csv=args.truth, pred=args.pred, out_dir=args.out, n_boot=args.n_boot,
                                  drop_nan=args.drop_nan, complete_cases=args.complete_cases)
            text = format_outcome("hpv", result)
    except (EvaluationError, ValueError, FileNotFoundError) as e:
        print(f"hecktor-evaluate {args.task}: error:\n{e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
