"""``hecktor-restore``: predictions in converted space -> label maps on each original CT grid."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, setup_logging
from hecktor_nnunet.dataset_conversion.restore import FORMATS, restore_predictions


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-restore``."""
    ap = argparse.ArgumentParser(prog="hecktor-restore", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("pred_dir", help="folder of <PatientID>.nii.gz predictions (nnU-Net output)")
    ap.add_argument("--manifest", required=True, help="the dataset's conversion_manifest.json")
    ap.add_argument("-o", "--out", required=True, help="output folder")
    ap.add_argument("--format", choices=sorted(FORMATS), default="nii.gz", help="file format of the label maps")
    ap.add_argument("-np", "--workers", type=int, default=1, help="worker processes")
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    try:
        written = restore_predictions(a.pred_dir, a.manifest, a.out, fmt=a.format, workers=a.workers,
                                      quiet=a.quiet)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        return fail(str(e))
    if not a.quiet:
        print(f"restored {len(written)} label map(s) to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
