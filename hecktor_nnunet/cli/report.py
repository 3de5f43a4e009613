"""``hecktor-report``: report.html (self-contained) and report.json from a run's folders.

    hecktor-report --workdir demo_work                      # a hecktor-demo folder
    hecktor-report --dataset-dir $nnUNet_raw/Dataset500_HECKTOR2025 --seg-eval eval/seg --rfs-eval eval/rfs \\
        --hpv-eval eval/hpv --prognosis-dir models/ --features features.parquet \\
        --release /data/hecktor2025_training --pred preds/ --commands commands.sh -o report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, retired_option, setup_logging


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-report``."""
    ap = argparse.ArgumentParser(prog="hecktor-report", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--workdir", help="a hecktor-demo folder (every input found there)")
    ap.add_argument("--dataset-dir", help="nnU-Net raw dataset folder (conversion_manifest.json)")
    ap.add_argument("--seg-eval", help="hecktor-evaluate seg output folder (one run)")
    ap.add_argument("--rfs-eval", help="hecktor-evaluate rfs output folder")
    ap.add_argument("--hpv-eval", help="hecktor-evaluate hpv output folder")
    ap.add_argument("--prognosis-dir", help="folder with rfs/ and hpv/ model folders (and cv/ reports)")
    ap.add_argument("--features", help="features table from hecktor-radiomics")
    ap.add_argument("--release", help="release folder (CT, PET, truth) for the PET/CT overlays")
    ap.add_argument("--pred", help="predicted label maps on the CT grids (overlay contours)")
    ap.add_argument("--clinical", help="clinical table of the cohort table (default: clinical.csv of --dataset-dir)")
    ap.add_argument("--commands", help="text file of the commands that produced the run (one per line)")
    ap.add_argument("--title", default="HECKTOR run report", help="the report's title")
    ap.add_argument("--overlays", type=int, default=3, help="patients shown as PET/CT overlays")
    ap.add_argument("--n-boot", type=int, default=1000,
                    help="bootstrap resamples of the intervals the report computes (Uno's C, AUC(t))")
    ap.add_argument("--seed", type=int, default=0, help="seed of those resamples")
    ap.add_argument("-o", "--out", help="report.html path (default <workdir>/report.html or ./report.html); "
                                        "report.json is written beside it")
    add_quiet(ap)
    retired_option(ap, "--dataset", "--dataset-dir", "dataset_dir")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    from hecktor_nnunet.reporting.inputs import ReportError, ReportInputs
    from hecktor_nnunet.reporting.render import build_report, tables_folder

    explicit = {"dataset": a.dataset_dir, **{k: getattr(a, k) for k in ("seg_eval", "rfs_eval", "hpv_eval",
                                                                        "prognosis_dir", "features", "release",
                                                                        "pred")}}
    try:
        if a.workdir:
            if any(explicit.values()):
                return fail("give either --workdir or explicit folders, not both")
            from hecktor_nnunet.reporting.demo_folder import demo_report_inputs

            inputs = demo_report_inputs(a.workdir)
            out = Path(a.out) if a.out else Path(a.workdir) / "report.html"
        else:
            inputs = ReportInputs(**{k: Path(v) if v else None for k, v in explicit.items()}, title=a.title,
                                  clinical=Path(a.clinical) if a.clinical else None, n_boot=a.n_boot, seed=a.seed)
            if a.commands:
                lines = Path(a.commands).read_text().splitlines()
                inputs.commands = [{"step": "", "command": c, "seconds": None} for c in lines
                                   if c.strip() and not c.lstrip().startswith("#")]
            out = Path(a.out or "report.html")
        inputs.n_overlays = a.overlays
        build_report(inputs, out)
    except (ReportError, FileNotFoundError, ValueError) as e:
        return fail(str(e))
    if not a.quiet:
        print(f"wrote {out}, {out.with_suffix('.json')} and the tables as CSV in {tables_folder(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
