"""``hecktor-convert``: a HECKTOR release (2025 or 2022 layout) -> an nnU-Net v2 raw dataset."""

from __future__ import annotations

import argparse
import sys

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, os_error_text, retired_option, setup_logging
from hecktor_nnunet.dataset_conversion.convert import convert_release, summary_text
from hecktor_nnunet.dataset_conversion.settings import CROP_MODES, PET_NORMS, ConversionSettings
from hecktor_nnunet.dataset_conversion.splits import SPLIT_MODES
from hecktor_nnunet.io.problems import format_report
from hecktor_nnunet.io.release import READERS


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-convert``."""
    ap = argparse.ArgumentParser(prog="hecktor-convert", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("release", help="release folder (e.g. hecktor2025_training)")
    ap.add_argument("--dataset-id", "-d", type=int, required=True, help="nnU-Net dataset id (5xx)")
    ap.add_argument("--name", default="HECKTOR2025", help="dataset name (DatasetXXX_NAME)")
    ap.add_argument("-o", "--raw-dir", help="nnU-Net raw folder (default: $nnUNet_raw)")
    ap.add_argument("--layout", choices=sorted(READERS), help="force a layout instead of detecting it")
    ap.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"),
                    help="common spacing in mm (default: keep each CT grid, exact)")
    ap.add_argument("--crop", choices=CROP_MODES, default="overlap",
                    help="overlap: the field of view CT and PET share; headneck: a box placed from the PET; none")
    ap.add_argument("--crop-size", type=float, nargs=3, default=(200.0, 200.0, 310.0), metavar=("X", "Y", "Z"),
                    help="headneck box in mm (default 200 200 310)")
    ap.add_argument("--interpolator", choices=["linear", "bspline"], default="linear",
                    help="interpolation of PET (and of CT when --spacing is given)")
    ap.add_argument("--pet-norm", choices=sorted(PET_NORMS), default="zscore",
                    help="zscore: nnU-Net z-scores PET per case; none: SUV kept")
    ap.add_argument("--region-based", action="store_true",
                    help="nnU-Net region-based training: labels GTVp, GTVn and GTV (their union)")
    ap.add_argument("--extra-channel", action="append", default=[], metavar="KEY",
                    help="add a channel from the release's extra files (e.g. RTDOSE)")
    ap.add_argument("--suv-factors", help="CSV PatientID,Weight,InjectedDose_MBq,Delay_min to convert Bq/mL PET")
    ap.add_argument("--splits", choices=SPLIT_MODES, help="write splits_final.json with folds of this kind")
    ap.add_argument("--n-folds", type=int, default=5, help="folds of --splits centre-stratified")
    ap.add_argument("--seed", type=int, default=0, help="seed of the folds")
    ap.add_argument("--skip-bad", action="store_true", help="exit 0 even when some cases failed")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    ap.add_argument("-np", "--workers", type=int, default=1, help="worker processes")
    add_quiet(ap)
    retired_option(ap, "--folds", "--n-folds", "n_folds", type=int)
    retired_option(ap, "--regions", "--region-based", "region_based", flag=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    try:
        settings = ConversionSettings(spacing=tuple(a.spacing) if a.spacing else None, crop=a.crop,
                                      crop_size_mm=tuple(a.crop_size), interpolator=a.interpolator,
                                      pet_norm=a.pet_norm, regions=a.region_based,
                                      extra_channels=tuple(a.extra_channel))
        result = convert_release(a.release, a.dataset_id, name=a.name, raw_dir=a.raw_dir, settings=settings,
                                 layout=a.layout, suv_factors=a.suv_factors, splits=a.splits, n_folds=a.n_folds,
                                 seed=a.seed, workers=a.workers, overwrite=a.overwrite, quiet=a.quiet)
    except (ValueError, FileNotFoundError) as e:
        return fail(str(e))
    except OSError as e:  # a folder made otherwise or busy, a full disk: the message names the file
        return fail(os_error_text(e))
    if not a.quiet:
        print(summary_text(result))
    elif result.failed:  # errors always print, --quiet or not
        print(format_report([p for p in result.problems if not p.usable]), file=sys.stderr)
    if result.failed and not a.skip_bad:
        return fail(f"{len(result.failed)} case(s) failed: {', '.join(result.failed)} "
                    "(see the report above; --skip-bad to accept)", 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
