"""``hecktor-prognosis``: train, cross-validate, compare and apply RFS (risk) and HPV (0/1) models."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import (DefaultsHelpFormatter, add_quiet, fail, os_error_text, retired_option,
                                       setup_logging)
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.prognosis.cv import CV_KINDS

#: every --model value of either task; a value the task lacks is refused by the model, naming the choices
MODEL_CHOICES = ("auto", "xgb", "coxnet", "gbsa", "rsf", "icare", "logistic", "ensemble")
HELP = DefaultsHelpFormatter
#: the retired --cv values
OLD_SPLITS = {"stratified": "centre-stratified", "loco": "leave-one-centre-out"}


def _inputs(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    p.add_argument("task", choices=list(OUTCOME_TASKS))
    p.add_argument("--features", help="features table from hecktor-radiomics (.parquet or .csv)")
    p.add_argument("--clinical", required=True, help="clinical table with the targets (2022 or 2025 columns)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    if model:
        p.add_argument("--model", default="auto", choices=MODEL_CHOICES,
                       help="auto: inner cross-validation chooses the family and --k-features; rfs families "
                            "xgb, coxnet, gbsa, rsf, icare; hpv families xgb, logistic, icare; ensemble: all "
                            "families of the task averaged")
        p.add_argument("--no-radiomics", action="store_true", help="clinical variables only")
    p.add_argument("--k-features", type=int, default=None,
                   help="radiomics columns kept per training fold (default: chosen by auto from 5, 10, 20; "
                        "20 for a named family)")
    p.add_argument("--exclude-clinical", nargs="+", default=[], metavar="COL",
                   help="clinical columns left out of the inputs, e.g. 'HPV Status' (unknown at test time)")
    p.add_argument("--splits", default="centre-stratified", choices=CV_KINDS,
                   help="the outer folds: stratified by centre and outcome, or one centre per fold")
    p.add_argument("--n-folds", type=int, default=5, help="folds of --splits centre-stratified")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and the models")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the 95%% intervals")
    p.add_argument("-np", "--workers", type=int, default=1, help="worker processes (folds fitted in parallel)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder (it is written whole: nothing of it is kept)")
    add_quiet(p, verbose=True)
    retired_option(p, "--cv", "--splits", "splits", convert=lambda v: OLD_SPLITS.get(v, v))
    retired_option(p, "--folds", "--n-folds", "n_folds", type=int)
    retired_option(p, "--bootstrap", "--n-boot", "n_boot", type=int)
    retired_option(p, "--threads", "-np", "workers", type=int)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``hecktor-prognosis`` and its subcommands."""
    ap = argparse.ArgumentParser(prog="hecktor-prognosis", description=__doc__, formatter_class=HELP)
    retired_option(ap, "--quiet", "--quiet after the subcommand", "quiet_before", flag=True)
    retired_option(ap, "--verbose", "--verbose after the subcommand", "verbose_before", flag=True)
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="fit on all patients and write a model folder", formatter_class=HELP)
    _inputs(tr)
    tr.add_argument("--repeats", type=int, default=1, help="CV repeats for the folder's cv_report.json")
    tr.add_argument("--no-cv", action="store_true", help="skip the cross-validation report")
    cv = sub.add_parser("cv", help="repeated cross-validation; writes DIR/cv_report.json", formatter_class=HELP)
    _inputs(cv)
    cv.add_argument("--repeats", type=int, default=3, help="repeats of the cross-validation (new folds each)")
    cmp = sub.add_parser("compare", formatter_class=HELP,
                         help="every model family, the ensemble, auto and a clinical-only model on the same "
                              "folds; writes DIR/comparison.json, .md and .png")
    _inputs(cmp, model=False)
    cmp.add_argument("--models", nargs="+", default=None,
                     help="rows to compute (default: auto, every family, ensemble, clinical)")
    cmp.add_argument("--repeats", type=int, default=1, help="repeats of the cross-validation (new folds each)")
    pr = sub.add_parser("predict", help="apply a model folder; writes PatientID,Prediction CSV", formatter_class=HELP)
    # not required=True: argparse would refuse the retired --model spelling; _predict checks it
    pr.add_argument("--model-dir", help="model folder from 'train' (required)")
    pr.add_argument("--features", help="features table extracted with the model's settings")
    pr.add_argument("--clinical", help="clinical table (needed when the model uses clinical variables)")
    pr.add_argument("-o", "--out", required=True, help="predictions CSV")
    pr.add_argument("--json-dir", help="also write one <PatientID>.json per patient (container format)")
    add_quiet(pr, verbose=True)
    retired_option(pr, "--model", "--model-dir", "model_dir")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    a.quiet = a.quiet or getattr(a, "quiet_before", False)
    setup_logging(a.quiet, a.verbose or getattr(a, "verbose_before", False))
    from hecktor_nnunet.prognosis.artifacts import ModelMismatchError

    try:
        if a.command == "predict":
            return _predict(a)
        if a.command == "compare":
            return _compare(a)
        if a.features is None and not a.no_radiomics:
            return fail("give --features, or --no-radiomics for a clinical-only model")
        from hecktor_nnunet.prognosis.features import clinical_columns

        common = dict(use_radiomics=not a.no_radiomics, model=a.model, k_features=a.k_features, seed=a.seed,
                      exclude_clinical=clinical_columns(a.exclude_clinical), n_bootstrap=a.n_boot,
                      workers=a.workers, quiet=a.quiet, overwrite=a.overwrite, n_splits=a.n_folds)
        features = None if a.no_radiomics else a.features
        if a.command == "train":
            from hecktor_nnunet.prognosis.train import train

            model = train(a.task, features, a.clinical, a.out, cv=None if a.no_cv else a.splits, repeats=a.repeats,
                          **common)
            print(f"model written to {a.out} ({model.chosen_['model']}, {len(model.selected_features_)} columns)")
        else:
            from hecktor_nnunet.prognosis.train import run_cv

            res = run_cv(a.task, features, a.clinical, a.out, cv=a.splits, repeats=a.repeats, **common)
            key = OUTCOME_TASKS[a.task].metric
            lo, hi = res.report[f"{key}_ci95"]
            print(f"{a.task} {a.model} ({a.splits}): {key} {res.report[key]:.3f} (95% CI {lo:.3f}-{hi:.3f}); "
                  f"report in {a.out}/cv_report.json")
    except (ValueError, ModelMismatchError) as e:
        return fail(str(e))
    except OSError as e:  # a missing input, an existing output folder, a failed write: named in the message
        return fail(os_error_text(e))
    return 0


def _compare(a: argparse.Namespace) -> int:
    from hecktor_nnunet.prognosis.features import clinical_columns
    from hecktor_nnunet.prognosis.train import run_compare

    report = run_compare(a.task, a.features, a.clinical, a.out, models=tuple(a.models) if a.models else None,
                         cv=a.splits, n_splits=a.n_folds, repeats=a.repeats, seed=a.seed, k_features=a.k_features,
                         exclude_clinical=clinical_columns(a.exclude_clinical), n_bootstrap=a.n_boot,
                         workers=a.workers, quiet=a.quiet, overwrite=a.overwrite)
    if not a.quiet:
        print((a.out.rstrip("/") + "/comparison.md: ") + "\n" + _table(report))
    return 0


def _table(report: dict) -> str:
    lines = []
    for r in report["rows"]:
        if r["error"]:
            lines.append(f"  {r['label']:<28} could not be fitted: {r['error'][:100]}")
            continue
        ci = f"{r['ci'][0]:.3f}-{r['ci'][1]:.3f}" if r["ci"] else "n/a"
        vs = "" if r["diff_vs_default"] is None else f"  vs default {r['diff_vs_default']:+.3f} (p {r['p_value']:.3f})"
        lines.append(f"  {r['label']:<28} {report['metric']} {r['score']:.3f} (95% CI {ci}){vs}")
    return "\n".join(lines)


def _predict(a: argparse.Namespace) -> int:
    from hecktor_nnunet.io.clinical import read_clinical
    from hecktor_nnunet.prognosis.artifacts import predict
    from hecktor_nnunet.prognosis.radiomics import read_features

    if a.model_dir is None:
        return fail("give the model folder: --model-dir DIR")
    features, meta = read_features(a.features) if a.features else (None, {})
    clinical = read_clinical(a.clinical) if a.clinical else None
    out = predict(a.model_dir, features, meta, a.out, clinical=clinical, json_dir=a.json_dir,
                  sources=(str(a.features), str(a.clinical)))
    skipped = out.attrs.get("not_scored", {})
    print(f"wrote {len(out)} prediction(s) to {a.out}"
          + (f"; {len(skipped)} patient(s) not scored: " + ", ".join(f"{p} ({why})" for p, why in
                                                                    sorted(skipped.items())) if skipped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
