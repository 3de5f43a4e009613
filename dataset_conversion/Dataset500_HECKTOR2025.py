"""Convert the HECKTOR 2025 training release into nnU-Net's Dataset500_HECKTOR2025.

In the style of nnU-Net's own ``dataset_conversion`` scripts, with this project's recommended
defaults: PET/CT on each patient's CT grid (exact, invertible), cropped to the CT∩PET field of
view, PET z-scored per case by nnU-Net, five centre-stratified folds in ``splits_final.json``
(the same folds as ``hecktor-convert --splits centre-stratified``: one default seed).

Usage::

    python -m hecktor_nnunet.dataset_conversion.Dataset500_HECKTOR2025 /data/hecktor2025_training -np 8

then ``nnUNetv2_plan_and_preprocess -d 500 -c 3d_fullres --verify_dataset_integrity``.
"""

from __future__ import annotations

import argparse

from hecktor_nnunet.dataset_conversion.convert import convert_release, summary_text
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.dataset_conversion.splits import DEFAULT_SEED

DATASET_ID = 500
DATASET_NAME = "HECKTOR2025"
RECOMMENDED = ConversionSettings(spacing=None, crop="overlap", interpolator="linear", pet_norm="zscore")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("release", help="the hecktor2025_training folder")
    ap.add_argument("-o", "--raw-dir", help="nnU-Net raw folder (default: $nnUNet_raw)")
    ap.add_argument("-np", "--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the folds (default {DEFAULT_SEED})")
    a = ap.parse_args(argv)
    result = convert_release(a.release, DATASET_ID, name=DATASET_NAME, raw_dir=a.raw_dir, settings=RECOMMENDED,
                             splits="centre-stratified", n_folds=5, seed=a.seed, workers=a.workers)
    print(summary_text(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
