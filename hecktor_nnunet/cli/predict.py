"""``hecktor-predict``: a release or image folder -> label maps on each patient's original CT grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from hecktor_nnunet.cli.common import fail, os_error_text, setup_logging
from hecktor_nnunet.inference.components import SUMMARY_FILE, format_small_components, read_prediction_summary
from hecktor_nnunet.inference.predict import ModelError, predict
from hecktor_nnunet.training.registry import RECOMMENDED


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hecktor-predict", description=__doc__)
    ap.add_argument("-i", "--input", required=True,
                    help="release folder, folder of <ID>__CT/<ID>__PT images, or Grand Challenge /input folder")
    ap.add_argument("-o", "--output", required=True, help="output folder")
    ap.add_argument("-d", "--dataset", required=True, help="nnU-Net dataset id or name (e.g. 500)")
    ap.add_argument("-tr", "--trainer", default=RECOMMENDED, help=f"trainer name (default {RECOMMENDED})")
    ap.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (e.g. nnUNetResEncUNetMPlans)")
    ap.add_argument("-c", "--configuration", default="3d_fullres")
    ap.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"],
                    help="folds to ensemble (default 0-4; 'all' for a model trained on all cases)")
    ap.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--format", choices=["nii.gz", "mha"], default="nii.gz")
    ap.add_argument("--layout", choices=["2025", "2022", "flat", "grand-challenge"], default=None,
                    help="input layout (default: detected)")
    ap.add_argument("--gc-output", action="store_true",
                    help="write <output>/images/tumor-lymph-node-segmentation/output.mha (one case)")
    ap.add_argument("--no-postprocessing", action="store_true", help="ignore the model's saved post-processing")
    ap.add_argument("--step-size", type=float, default=0.5, help="sliding-window step (fraction of the patch)")
    ap.add_argument("--disable-tta", action="store_true", help="no test-time mirroring (faster)")
    ap.add_argument("-np", "--workers", type=int, default=1, help="processes for conversion and export")
    ap.add_argument("--keep-work", default=None, help="keep converted images and raw predictions here")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    setup_logging(a.quiet)
    try:
        written = predict(a.input, a.output, dataset=a.dataset, trainer=a.trainer, plans=a.plans,
                          configuration=a.configuration, folds=a.folds, device=a.device, checkpoint=a.checkpoint,
                          fmt=a.format, layout=a.layout, postprocess=not a.no_postprocessing,
                          gc_output=a.gc_output, step_size=a.step_size, mirroring=not a.disable_tta,
                          workers=a.workers, keep_work=a.keep_work, quiet=a.quiet)
    except (ModelError, ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        return fail(str(e))
    except OSError as e:  # a full disk, a work folder another run holds: the message names the file
        return fail(os_error_text(e))
    if not a.quiet:
        _report(written, a.output, a.gc_output)
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
