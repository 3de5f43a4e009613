"""``hecktor-nnunet``: nnU-Net environment, the HECKTOR trainer list, post-processing, cross-validated masks.

    eval "$(hecktor-nnunet env)"          # export nnUNet_extTrainer=<trainers folder>; checks nnUNet_* paths
    hecktor-nnunet trainers [--names]     # every trainer, what it changes and why
    hecktor-nnunet postprocess-select -d 500 -tr nnUNetTrainerHecktorFocalPETAug -f 0 1 2 3 4
    hecktor-nnunet cv-masks -d 500 -tr nnUNetTrainerHecktorFocalPETAug -f 0 1 2 3 4 -o masks/
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from hecktor_nnunet.cli.common import (DefaultsHelpFormatter, add_quiet, fail, os_error_text, retired_option,
                                       setup_logging)
from hecktor_nnunet.metrics.segmentation import BOTH_EMPTY_DICE, MATCHING
from hecktor_nnunet.training.registry import RECOMMENDED, TRAINERS_DIR, format_table, trainer_names

NNUNET_PATHS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def env_lines() -> tuple[list[str], list[str]]:
    """Shell lines to ``eval`` and warnings about the nnU-Net path variables."""
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    paths = current if str(TRAINERS_DIR) in current else current + [str(TRAINERS_DIR)]
    lines = [f"export nnUNet_extTrainer={shlex.quote(os.pathsep.join(paths))}"]
    warnings = []
    for var in NNUNET_PATHS:
        value = os.environ.get(var)
        if not value:
            warnings.append(f"warning: {var} is not set (nnU-Net needs it; export {var}=/path/to/folder)")
        elif not Path(value).is_dir():
            warnings.append(f"warning: {var}={value} is not an existing folder")
    return lines, warnings


def select_postprocessing(dataset: str, trainer: str, plans: str, configuration: str, folds: list[str],
                          truth_dir: str | None, **scoring) -> dict:
    """Choose post-processing on the validation folds; store it and the conversion settings with the model.

    ``scoring`` (``both_empty_dice``, ``connectivity``, ``matching``) are ``hecktor-evaluate seg``'s
    conventions, so that the selection optimises what evaluation reports.
    """
    from hecktor_nnunet.inference.predict import model_folder, save_conversion_settings
    from hecktor_nnunet.inference.postprocessing import select_for_model

    folder = model_folder(dataset, trainer, plans, configuration)
    if truth_dir is None:
        pre = os.environ.get("nnUNet_preprocessed")
        if not pre:
            raise ValueError("nnUNet_preprocessed is not set; pass --truth (converted-space labels)")
        truth_dir = str(Path(pre) / folder.parent.name / "gt_segmentations")
    result = select_for_model(folder, folds, truth_dir, **scoring)
    try:
        save_conversion_settings(folder)
    except RuntimeError as e:  # ModelError: settings unknown here; prediction will look in nnUNet_raw
        print(f"warning: {e}", file=sys.stderr)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-nnunet`` and its subcommands."""
    ap = argparse.ArgumentParser(prog="hecktor-nnunet", description=__doc__,
                                 formatter_class=DefaultsHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print `export nnUNet_extTrainer=...` for eval; check nnUNet_* paths",
                   formatter_class=DefaultsHelpFormatter)
    tr = sub.add_parser("trainers", help="list the HECKTOR trainers", formatter_class=DefaultsHelpFormatter)
    tr.add_argument("--names", action="store_true", help="only the class names, one per line")
    tr.add_argument("--markdown", action="store_true", help="a markdown table")
    pp = sub.add_parser("postprocess-select", help="choose post-processing on validation folds",
                        formatter_class=DefaultsHelpFormatter)
    cv = sub.add_parser("cv-masks", help="each training patient's mask from the fold that held it out, "
                                         "post-processed and on its original CT grid (radiomics training masks)",
                        formatter_class=DefaultsHelpFormatter)
    for p in (pp, cv):
        # not required=True: argparse would refuse the retired --dataset spelling; main() checks it
        p.add_argument("-d", "--dataset-id", help="nnU-Net dataset id or name (required)")
        p.add_argument("-tr", "--trainer", default=RECOMMENDED, help="nnU-Net trainer")
        p.add_argument("-p", "--plans", default="nnUNetPlans", help="nnU-Net plans identifier")
        p.add_argument("-c", "--configuration", default="3d_fullres", help="nnU-Net configuration")
        p.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"], help="fold indices")
        retired_option(p, "--dataset", "--dataset-id", "dataset_id")
    pp.add_argument("--truth", default=None,
                    help="ground truth in converted space (default $nnUNet_preprocessed/DatasetXXX/gt_segmentations)")
    pp.add_argument("--both-empty-dice", default=BOTH_EMPTY_DICE[0], choices=BOTH_EMPTY_DICE,
                    help="GTVp Dice of a patient with no GTVp in truth and prediction, as hecktor-evaluate seg")
    pp.add_argument("--connectivity", type=int, default=26, choices=(6, 18, 26),
                    help="lesion connectivity for GTVn detection, as hecktor-evaluate seg")
    pp.add_argument("--matching", default=MATCHING[0], choices=MATCHING,
                    help="one-to-one lesion matching for F1agg, as hecktor-evaluate seg")
    cv.add_argument("-o", "--out", required=True, help="folder for <PatientID>.nii.gz")
    cv.add_argument("--manifest", default=None,
                    help="the training dataset's conversion_manifest.json (default $nnUNet_raw/DatasetXXX/...)")
    cv.add_argument("--no-postprocessing", action="store_true",
                    help="apply no post-processing (as hecktor-predict --no-postprocessing); without it, the "
                         "model must have one chosen by postprocess-select")
    cv.add_argument("--allow-missing", action="store_true",
                    help="write the other patients when some are in no given fold's validation (listed)")
    cv.add_argument("--overwrite", action="store_true", help="redo every patient, even those already written")
    cv.add_argument("-np", "--workers", type=int, default=1, help="worker processes")
    retired_option(cv, "--output", "--out", "out")
    for p in (pp, cv):
        add_quiet(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "env":
        lines, warnings = env_lines()
        for w in warnings:
            print(w, file=sys.stderr)
        print("\n".join(lines))
        return 0
    if a.command == "trainers":
        print("\n".join(trainer_names()) if a.names else format_table(markdown=a.markdown))
        return 0
    setup_logging(a.quiet)
    if a.dataset_id is None:
        return fail("give the dataset: -d/--dataset-id ID")
    try:
        return _cv_masks(a) if a.command == "cv-masks" else _postprocess_select(a)
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        return fail(str(e))
    except OSError as e:  # a full disk, an output folder another run holds: the message names the file
        return fail(os_error_text(e))


def _postprocess_select(a: argparse.Namespace) -> int:
    result = select_postprocessing(a.dataset_id, a.trainer, a.plans, a.configuration, a.folds, a.truth,
                                   both_empty_dice=a.both_empty_dice, connectivity=a.connectivity,
                                   matching=a.matching)
    best = next(c for c in result["candidates"]
                if c["keep_largest_gtvp"] == result["setting"]["keep_largest_gtvp"]
                and c["min_gtvn_ml"] == result["setting"]["min_gtvn_ml"])
    if not a.quiet:
        print(f"chosen on {result['n_cases']} validation case(s): {result['setting']} "
              f"(GTVp Dice {best['gtvp_dice']:.3f}, GTVn DSCagg {best['gtvn_dsc_agg']:.3f}, "
              f"F1agg {best['gtvn_f1_agg']:.3f})")
    return 0


def _cv_masks(a: argparse.Namespace) -> int:
    from hecktor_nnunet.inference.cv_masks import cv_masks

    r = cv_masks(a.out, dataset=a.dataset_id, trainer=a.trainer, plans=a.plans, configuration=a.configuration,
                 folds=a.folds, postprocess=not a.no_postprocessing, allow_missing=a.allow_missing,
                 overwrite=a.overwrite, manifest=a.manifest, workers=a.workers, quiet=a.quiet)
    if r.missing:
        print(f"warning: {len(r.missing)} training patient(s) in no validation prediction of folds "
              f"{' '.join(map(str, a.folds))} got no mask: {', '.join(r.missing)}", file=sys.stderr)
    if not a.quiet:
        print(f"wrote {len(r.written)} mask(s), {len(r.unchanged)} already done and unchanged, to {a.out} "
              f"(folds {' '.join(map(str, a.folds))}; post-processing: {r.postprocessing or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
