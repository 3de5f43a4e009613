"""``hecktor-radiomics``: PET/CT radiomics and PET descriptors of GTVp, GTVn, GTV (and a shell) per patient."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, setup_logging
from hecktor_nnunet.io.problems import ERROR, Problem, format_report
from hecktor_nnunet.prognosis.radiomics_settings import MIN_VOLUME_ML


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-radiomics``."""
    ap = argparse.ArgumentParser(prog="hecktor-radiomics", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--release", required=True, help="release folder (any layout hecktor-convert reads)")
    ap.add_argument("--masks", required=True, help="folder of label maps <ID>.nii.gz on the CT grid")
    ap.add_argument("-o", "--out", required=True, help="features table (.parquet or .csv)")
    ap.add_argument("-np", "--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--params-pet", help="PyRadiomics params YAML for PET (default: shipped params/pet.yaml)")
    ap.add_argument("--params-ct", help="PyRadiomics params YAML for CT (default: shipped params/ct.yaml)")
    ap.add_argument("--regions", nargs="+", default=["GTVp", "GTVn", "GTV"], choices=["GTVp", "GTVn", "GTV"],
                    help="regions to describe (GTV: GTVp and GTVn together) (default: all three)")
    ap.add_argument("--shell-mm", type=float, help="add a peritumoral shell region of this width (mm)")
    ap.add_argument("--min-volume-ml", type=float, default=MIN_VOLUME_ML,
                    help="regions below this volume (mL) are flagged tiny")
    ap.add_argument("--resample-nearest", action="store_true",
                    help="resample masks on another grid onto the CT grid (nearest neighbour) instead of refusing them")
    ap.add_argument("--skip-missing", action="store_true",
                    help="a patient of the release without a mask is a warning (no row) instead of an error")
    ap.add_argument("--cache", help="per-patient cache folder (an interrupted run resumes from it)")
    ap.add_argument("--dask-scheduler", help="run on a Dask cluster at this address (tcp://host:8786)")
    add_quiet(ap, verbose=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet, a.verbose)
    from hecktor_nnunet.prognosis.radiomics import extract_features

    try:
        df = extract_features(release_root=a.release, masks_dir=a.masks, out=a.out, workers=a.workers,
                              params_pet=a.params_pet, params_ct=a.params_ct, regions=tuple(a.regions),
                              shell_mm=a.shell_mm, cache_dir=a.cache, dask_scheduler=a.dask_scheduler,
                              quiet=a.quiet, min_volume_ml=a.min_volume_ml,
                              resample_nearest=a.resample_nearest, skip_missing=a.skip_missing)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    meta = df.attrs["radiomics"]
    problems = [Problem(**p) for p in meta["problems"]]
    if problems:
        print(format_report(problems))
    if not a.quiet:
        print(f"wrote {len(df)} patient(s) x {df.shape[1] - 1} columns to {a.out} "
              f"(params hash {meta['params_hash']})")
    missing = meta["patients_without_row"]
    if missing:
        print(f"no row for {len(missing)} patient(s) (see the problems above): {', '.join(missing)}")
    return 1 if any(p.severity == ERROR for p in problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
