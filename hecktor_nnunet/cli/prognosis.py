"""``hecktor-prognosis``: train, cross-validate and apply RFS (risk) and HPV (0/1) models."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import fail, os_error_text, setup_logging
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=list(OUTCOME_TASKS))
    p.add_argument("--features", help="features table from hecktor-radiomics (.parquet or .csv)")
    p.add_argument("--clinical", required=True, help="clinical table with the targets (2022 or 2025 columns)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--model", default="xgb", choices=["xgb", "coxnet", "rsf", "gbsa"],
                   help="xgb (default); rfs baselines: coxnet, rsf, gbsa")
    p.add_argument("--no-radiomics", action="store_true", help="clinical variables only")
    p.add_argument("--k-features", type=int, default=20, help="radiomics columns kept per training fold")
    p.add_argument("--cv", default="stratified", choices=["stratified", "loco"],
                   help="centre-stratified k-fold or leave-one-centre-out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the 95%% intervals")
    p.add_argument("-np", "--threads", type=int, default=1, help="threads per model")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder (it is written whole: nothing of it is kept)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hecktor-prognosis", description=__doc__)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="fit on all patients and write a model folder")
    _common(tr)
    tr.add_argument("--repeats", type=int, default=1, help="CV repeats for the folder's cv_report.json")
    tr.add_argument("--no-cv", action="store_true", help="skip the cross-validation report")
    cv = sub.add_parser("cv", help="repeated cross-validation; writes DIR/cv_report.json")
    _common(cv)
    cv.add_argument("--repeats", type=int, default=3)
    cv.add_argument("--folds", type=int, default=5, help="folds of --cv stratified")
    pr = sub.add_parser("predict", help="apply a model folder; writes PatientID,Prediction CSV")
    pr.add_argument("--model", required=True, help="model folder from 'train'")
    pr.add_argument("--features", help="features table extracted with the model's settings")
    pr.add_argument("--clinical", help="clinical table (needed when the model uses clinical variables)")
    pr.add_argument("-o", "--out", required=True, help="predictions CSV")
    pr.add_argument("--json-dir", help="also write one <PatientID>.json per patient (container format)")
    a = ap.parse_args(argv)
    setup_logging(a.quiet, a.verbose)
    from hecktor_nnunet.prognosis.artifacts import ModelMismatchError

    try:
        if a.command == "predict":
            return _predict(a)
        if a.features is None and not a.no_radiomics:
            return fail("give --features, or --no-radiomics for a clinical-only model")
        features = None if a.no_radiomics else a.features
        if a.command == "train":
            from hecktor_nnunet.prognosis.train import train

            train(a.task, features, a.clinical, a.out, model=a.model, use_radiomics=not a.no_radiomics,
                  k_features=a.k_features, cv=None if a.no_cv else a.cv, repeats=a.repeats, seed=a.seed,
                  n_bootstrap=a.bootstrap, n_jobs=a.threads, quiet=a.quiet, overwrite=a.overwrite)
            print(f"model written to {a.out}")
        else:
            from hecktor_nnunet.prognosis.train import run_cv

            res = run_cv(a.task, features, a.clinical, a.out, model=a.model, cv=a.cv, n_splits=a.folds,
                         repeats=a.repeats, seed=a.seed, use_radiomics=not a.no_radiomics,
                         k_features=a.k_features, n_bootstrap=a.bootstrap, n_jobs=a.threads, quiet=a.quiet,
                         overwrite=a.overwrite)
            key = OUTCOME_TASKS[a.task].metric
            lo, hi = res.report[f"{key}_ci95"]
            print(f"{a.task} {a.model} ({a.cv}): {key} {res.report[key]:.3f} (95% CI {lo:.3f}-{hi:.3f}); "
                  f"report in {a.out}/cv_report.json")
    except (ValueError, ModelMismatchError) as e:
        return fail(str(e))
    except OSError as e:  # a missing input, an existing output folder, a failed write: named in the message
        return fail(os_error_text(e))
    return 0


def _predict(a: argparse.Namespace) -> int:
    from hecktor_nnunet.io.clinical import read_clinical
    from hecktor_nnunet.prognosis.artifacts import predict
    from hecktor_nnunet.prognosis.radiomics import read_features

    features, meta = read_features(a.features) if a.features else (None, {})
    clinical = read_clinical(a.clinical) if a.clinical else None
    out = predict(a.model, features, meta, a.out, clinical=clinical, json_dir=a.json_dir)
    print(f"wrote {len(out)} prediction(s) to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
