"""``hecktor-split``: hold out a test set of a labelled release, with its truth, to score a whole pipeline.

    hecktor-split /data/hecktor2025_training -o /data/split --holdout 0.2

Writes OUT/train (a release of the other patients, clinical.csv with outcomes), OUT/test (the held-out
patients' images), OUT/test_labels, OUT/test_clinical.csv (no outcome, no HPV status) and
OUT/test_clinical_with_outcomes.csv; images are linked, never copied.
"""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, os_error_text, setup_logging


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-split``."""
    ap = argparse.ArgumentParser(prog="hecktor-split", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("release", help="a labelled release folder (any layout hecktor-convert reads)")
    ap.add_argument("-o", "--out", required=True, help="folder to create (train/, test/, test_labels/, tables)")
    ap.add_argument("--holdout", type=float, default=0.2, help="share of the labelled patients held out")
    ap.add_argument("--seed", type=int, default=0, help="seed of the draw")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder whole")
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    from hecktor_nnunet.dataset_conversion.holdout import split_release

    try:
        record = split_release(a.release, a.out, share=a.holdout, seed=a.seed, overwrite=a.overwrite)
    except ValueError as e:
        return fail(str(e))
    except OSError as e:
        return fail(os_error_text(e))
    if not a.quiet:
        print(f"{len(record['train'])} patient(s) in {a.out}/train, {len(record['test'])} held out in {a.out}/test "
              f"(labels in {a.out}/test_labels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
