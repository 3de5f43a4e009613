"""hecktor-predict: a release or image folder -> label maps on each patient's original CT grid.

One model (-tr, -p, -c, -f, as nnUNetv2_predict) or an ensemble (-m once per member model): the
members' softmax probabilities are averaged before the argmax, as nnUNetv2_ensemble does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from hecktor_nnunet.cli.common import (DefaultsHelpFormatter, add_quiet, fail, os_error_text, retired_option,
                                       setup_logging)
from hecktor_nnunet.inference.components import SUMMARY_FILE, format_small_components, read_prediction_summary
from hecktor_nnunet.inference.ensemble import SPEC_FORMAT, parse_model_spec
from hecktor_nnunet.inference.predict import ENSEMBLE_CHUNK, ModelError, predict
from hecktor_nnunet.training.registry import RECOMMENDED

EPILOG = """examples:
  hecktor-predict -i IN -o OUT -d 500 -tr nnUNetTrainerHecktorFocalPETAug -f 0 1 2 3 4
  hecktor-predict -i IN -o OUT -d 500 -m nnUNetTrainerHecktorFocalPETAug:nnUNetPlans:3d_fullres:0,1,2,3,4 \\
      -m nnUNetTrainerHecktorSegResNet:nnUNetPlans:3d_fullres:all --postprocessing FILE
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``hecktor-predict`` argument parser (nnU-Net's option names where nnU-Net has one)."""
    ap = argparse.ArgumentParser(prog="hecktor-predict", description=__doc__, epilog=EPILOG,
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("-i", "--input", required=True,
                    help="release folder, folder of <ID>__CT/<ID>__PT images, or Grand Challenge /input folder")
    # -o and -d not required=True: argparse would refuse their retired spellings; parse_args checks them
    ap.add_argument("-o", "--out", help="output folder (required)")
    ap.add_argument("-d", "--dataset-id", help="nnU-Net dataset id or name, e.g. 500 (required)")
    model = ap.add_argument_group("model (one, or an ensemble: -m once per member)")
    model.add_argument("-tr", "--trainer", default=None,
                       help=f"trainer of the one model (default: {RECOMMENDED}); not with -m")
    model.add_argument("-p", "--plans", default="nnUNetPlans",
                       help="plans identifier (e.g. nnUNetResEncUNetMPlans); with -m, for models that leave it out")
    model.add_argument("-c", "--configuration", default="3d_fullres",
                       help="configuration; with -m, for models that leave it out")
    model.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"],
                       help="folds to ensemble ('all' for a model trained on all cases; default: 0 1 2 3 4); "
                            "with -m, for models that leave them out")
    model.add_argument("-m", "--member", action="append", default=None, metavar=SPEC_FORMAT,
                       help="one trained model of an ensemble, e.g. nnUNetTrainerHecktorFocalPETAug:nnUNetPlans:"
                            "3d_fullres:0,1,2,3,4; repeat for each (all of dataset -d, with the same labels and "
                            "conversion settings); fields left out take -p, -c, -f")
    model.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth", help="checkpoint file of every fold")
    pp = ap.add_argument_group("post-processing").add_mutually_exclusive_group()
    pp.add_argument("--postprocessing", default=None, metavar="FILE",
                    help="apply this setting (a model's hecktor_postprocessing.json, or {\"keep_largest_gtvp\": ..., "
                         "\"min_gtvn_ml\": ...}) instead of the one saved with the model; an ensemble uses the one "
                         "every model saved, and needs this or --no-postprocessing when they differ")
    pp.add_argument("--no-postprocessing", action="store_true", help="apply no post-processing")
    run = ap.add_argument_group("prediction")
    run.add_argument("-device", dest="device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="auto: cuda when a GPU is available")
    run.add_argument("-step_size", dest="step_size", type=float, default=0.5,
                     help="sliding-window step (fraction of the patch)")
    run.add_argument("--disable_tta", dest="disable_tta", action="store_true",
                     help="no test-time mirroring (faster)")
    run.add_argument("-np", "--workers", type=int, default=1,
                     help="processes for conversion, nnU-Net's preprocessing and export, averaging and restoring")
    run.add_argument("--ensemble-chunk", type=int, default=ENSEMBLE_CHUNK,
                     help="patients predicted by every model of an ensemble before their probabilities are "
                          "averaged and deleted (bounds the temporary disk space)")
    out = ap.add_argument_group("input and output")
    out.add_argument("--format", choices=["nii.gz", "mha"], default="nii.gz", help="label map file format")
    out.add_argument("--layout", choices=["2025", "2022", "flat", "grand-challenge"], default=None,
                     help="input layout (default: detected)")
    out.add_argument("--gc-output", action="store_true",
                     help="write <output>/images/tumor-lymph-node-segmentation/output.mha (one case)")
    out.add_argument("--keep-work", default=None, help="keep converted images and raw predictions here")
    add_quiet(ap)
    # the spellings before nnU-Net's and the shared vocabulary's, hidden, for one release
    retired_option(ap, "--output", "-o/--out", "out")
    retired_option(ap, "--dataset", "-d/--dataset-id", "dataset_id")
    retired_option(ap, "--device", "-device", "device", choices=["auto", "cpu", "cuda"])
    retired_option(ap, "--step-size", "-step_size", "step_size", type=float)
    retired_option(ap, "--disable-tta", "--disable_tta", "disable_tta", flag=True)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed options; ``a.models`` holds the ensemble's members (None for one model), ``a.trainer`` is set."""
    ap = build_parser()
    a = ap.parse_args(argv)
    missing = [opt for opt, value in (("-o/--out", a.out), ("-d/--dataset-id", a.dataset_id)) if value is None]
    if missing:
        ap.error(f"the following arguments are required: {', '.join(missing)}")
    a.models = None
    if a.member is not None:
        if a.trainer is not None:
            ap.error("-tr names the one model; with -m, give every member's trainer in its -m")
        try:
            a.models = [parse_model_spec(s, plans=a.plans, configuration=a.configuration, folds=a.folds)
                        for s in a.member]
        except ValueError as e:
            ap.error(str(e))
    elif a.trainer is None:
        a.trainer = RECOMMENDED
    if a.workers < 1 or a.ensemble_chunk < 1:
        ap.error("-np and --ensemble-chunk must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    setup_logging(a.quiet)
    model = (dict(models=a.models) if a.models is not None else
             dict(trainer=a.trainer, plans=a.plans, configuration=a.configuration, folds=a.folds))
    try:
        written = predict(a.input, a.out, dataset=a.dataset_id, **model, device=a.device, checkpoint=a.checkpoint,
                          fmt=a.format, layout=a.layout, postprocess=not a.no_postprocessing,
                          postprocessing_file=a.postprocessing, gc_output=a.gc_output, step_size=a.step_size,
                          mirroring=not a.disable_tta, workers=a.workers, ensemble_chunk=a.ensemble_chunk,
                          keep_work=a.keep_work, quiet=a.quiet)
    except (ModelError, ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        return fail(str(e))
    except OSError as e:  # a full disk, a work folder another run holds: the message names the file
        return fail(os_error_text(e))
    if not a.quiet:
        _report(written, a.out, a.gc_output)
    return 0


def _report(written: list[Path], output: str, gc_output: bool) -> None:
    """What was written and, from ``prediction_summary.json``, the small connected components."""
    summary = None if gc_output else read_prediction_summary(output)
    where = "" if summary is None else f" (connected components per patient: {Path(output) / SUMMARY_FILE})"
    print(f"wrote {len(written)} label map(s) to {output}{where}")
    if summary is not None:
        print("\n".join(format_small_components(summary["patients"], summary["min_volume_ml"])))


if __name__ == "__main__":
    raise SystemExit(main())
