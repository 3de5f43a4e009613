"""``hecktor-demo``: the whole pipeline on a synthetic release, resumable, ending in report.html.

Steps: generate -> convert -> plan -> train -> predict -> holdout -> evaluate_seg -> radiomics ->
prognosis -> evaluate_prognosis -> report. A re-run skips finished steps. The defaults train a real
(small) nnU-Net model on 2 CPU cores and print the held-out figures against the demo's pass marks.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, fail, retired_option, setup_logging
from hecktor_nnunet.demo.runner import run_demo
from hecktor_nnunet.demo.settings import SMALLEST, DemoSettings
from hecktor_nnunet.demo.steps import STEP_NAMES


def build_parser() -> argparse.ArgumentParser:
    d = DemoSettings()
    """The parser of ``hecktor-demo`` (defaults in the help text: an unset option keeps the settings')."""
    ap = argparse.ArgumentParser(prog="hecktor-demo", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--workdir", required=True, help="working folder (created; re-running resumes)")
    ap.add_argument("--smallest", action="store_true",
                    help=f"the smallest demo ({SMALLEST.cases} + {SMALLEST.unlabelled} patients, {SMALLEST.folds} folds, "
                         f"{SMALLEST.trainer}: plumbing only, what the tests run)")
    ap.add_argument("--cases", type=int, help=f"synthetic labelled patients (default {d.cases})")
    ap.add_argument("--unlabelled", type=int,
                    help=f"synthetic patients without labels, for the prognosis models (default {d.unlabelled})")
    ap.add_argument("--n-folds", type=int, help=f"centre-stratified folds; fold 0 is trained (default {d.folds})")
    ap.add_argument("--prognosis-holdout", type=float,
                    help="share of the image-only patients held out to score the prognosis models "
                         f"(default {d.prognosis_holdout})")
    ap.add_argument("-tr", "--trainer", help=f"nnU-Net trainer (default {d.trainer})")
    ap.add_argument("--seed", type=int, help=f"seed of the data, splits and models (default {d.seed})")
    ap.add_argument("-np", "--workers", type=int, help=f"processes per tool (default {d.workers})")
    ap.add_argument("--from-step", choices=STEP_NAMES, help="re-run this step and every later one")
    ap.add_argument("--quiet", action="store_true", help="only errors (tool output goes to <workdir>/logs)")
    retired_option(ap, "--folds", "--n-folds", "n_folds", type=int)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    settings = SMALLEST if a.smallest else DemoSettings()
    options = {"cases": a.cases, "unlabelled": a.unlabelled, "folds": a.n_folds,
               "prognosis_holdout": a.prognosis_holdout, "trainer": a.trainer, "seed": a.seed, "workers": a.workers}
    given = {k: v for k, v in options.items() if v is not None}
    settings = replace(settings, **given)
    try:
        run_demo(a.workdir, settings, quiet=a.quiet, from_step=a.from_step)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        return fail(str(e), 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
