"""``hecktor-synth``: write a synthetic HECKTOR release (for tests, the demo and benchmarks)."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import DefaultsHelpFormatter, add_quiet, fail, setup_logging
from hecktor_nnunet.demo.synth import BAD_KINDS, SIZES, generate_release


def _bad(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        kind, _, n = item.partition(":")
        out[kind] = int(n or 1)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-synth``."""
    ap = argparse.ArgumentParser(prog="hecktor-synth", description=__doc__, formatter_class=DefaultsHelpFormatter)
    ap.add_argument("out", help="release folder to create")
    ap.add_argument("-n", "--cases", type=int, default=12, help="labelled patients")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny", help="image size preset")
    ap.add_argument("--layout", choices=["2025", "2022"], default="2025", help="the release's folder layout")
    ap.add_argument("--seed", type=int, default=0, help="seed of everything drawn")
    ap.add_argument("--unlabelled", type=int, default=0, help="extra patients without labels")
    ap.add_argument("--bad", nargs="*", default=[], metavar="KIND[:N]",
                    help=f"deliberately broken cases, kinds: {', '.join(BAD_KINDS)}")
    ap.add_argument("--oracle", help="oracle CSV path (default <out>_oracle.csv, outside the release)")
    ap.add_argument("--oracle-labels", metavar="DIR",
                    help="also write every patient's true label map <ID>.nii.gz there (outside the release)")
    add_quiet(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    setup_logging(a.quiet)
    try:
        oracle = generate_release(a.out, a.cases, size=a.size, layout=a.layout, seed=a.seed, bad=_bad(a.bad),
                                  n_unlabelled=a.unlabelled, oracle=a.oracle,
                                  oracle_labels=a.oracle_labels, quiet=a.quiet)
    except (ValueError, FileExistsError) as e:
        return fail(str(e))
    if not a.quiet:
        print(f"wrote {len(oracle)} synthetic patient(s) ({a.size}, {a.layout} layout) to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
