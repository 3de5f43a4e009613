"""``hecktor-prognosis``: train, cross-validate, compare and apply RFS (risk) and HPV (0/1) models."""

from __future__ import annotations

import argparse

from hecktor_nnunet.cli.common import (DefaultsHelpFormatter, add_quiet, fail, os_error_text, retired_option,
                                       setup_logging)
from hecktor_nnunet.evaluation.labels import p_equation
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.prognosis.cv import CV_KINDS

#: every --model value of either task; a value the task lacks is refused by the model, naming the choices
MODEL_CHOICES = ("auto", "xgb", "coxnet", "gbsa", "rsf", "icare", "logistic", "ensemble", "deep")
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
                            "families of the task averaged; deep: a network on PET/CT crops around the masks "
                            "and the clinical variables (reads --release and --masks, not --features)")
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
    _deep_inputs(tr)
    tr.add_argument("--repeats", type=int, default=1, help="CV repeats for the folder's cv_report.json")
    tr.add_argument("--no-cv", action="store_true", help="skip the cross-validation report")
    cv = sub.add_parser("cv", help="repeated cross-validation; writes DIR/cv_report.json", formatter_class=HELP)
    _inputs(cv)
    _deep_inputs(cv)
    cv.add_argument("--repeats", type=int, default=3, help="repeats of the cross-validation (new folds each)")
    cmp = sub.add_parser("compare", formatter_class=HELP,
                         help="every model family, the ensemble, auto and a clinical-only model on the same "
                              "folds; writes DIR/comparison.json, .md and .png")
    _inputs(cmp, model=False)
    _deep_inputs(cmp)
    cmp.add_argument("--models", nargs="+", default=None,
                     help="rows to compute (default: auto, every family, ensemble, clinical; with --release and "
                          "--masks also the deep model)")
    cmp.add_argument("--repeats", type=int, default=1, help="repeats of the cross-validation (new folds each)")
    pr = sub.add_parser("predict", help="apply a model folder; writes PatientID,Prediction CSV", formatter_class=HELP)
    # not required=True: argparse would refuse the retired --model spelling; _predict checks it
    pr.add_argument("--model-dir", help="model folder from 'train' (required)")
    pr.add_argument("--features", help="features table extracted with the model's settings")
    pr.add_argument("--clinical", help="clinical table (needed when the model uses clinical variables)")
    pr.add_argument("-o", "--out", required=True, help="predictions CSV")
    pr.add_argument("--json-dir", help="also write one <PatientID>.json per patient (container format)")
    _deep_inputs(pr, predict=True)
    add_quiet(pr, verbose=True)
    retired_option(pr, "--model", "--model-dir", "model_dir")
    return ap


def _deep_inputs(p: argparse.ArgumentParser, *, predict: bool = False) -> None:
    """The options of the deep model (``--model deep``; a deep model folder for ``predict``)."""
    from hecktor_nnunet.prognosis.deep_crops import EMPTY_MASK, CropSettings
    from hecktor_nnunet.prognosis.deep_model import DeepPrognosisModel

    crop, net = CropSettings(), DeepPrognosisModel()
    g = p.add_argument_group("deep model", "a network on PET/CT crops (docs/howto/prognosis_deep.md)")
    g.add_argument("--release", help="release folder with the patients' CT and PET")
    g.add_argument("--masks", help="label maps <ID>.nii.gz (true or predicted) the crops are centred on")
    g.add_argument("--cache", help="crop cache folder (reused by the other task and by reruns)")
    g.add_argument("--empty-mask", choices=EMPTY_MASK, default=None if predict else crop.empty_mask,
                   help="a mask without lesion voxels: leave the patient out (skip) or crop the middle of the "
                        "CT/PET overlap (centre)" + ("; default: the model's setting" if predict else ""))
    g.add_argument("--resample-nearest", action="store_true",
                   help="resample a mask that is not on its CT grid (nearest neighbour) instead of refusing it")
    g.add_argument("-device", dest="device", choices=["auto", "cpu", "cuda"], default="cpu" if predict else net.device,
                   help="where the network trains and runs")
    g.add_argument("--torch-threads", type=int, default=net.n_jobs,
                   help="torch threads on the CPU (more can be slower on a busy machine)")
    if predict:
        g.add_argument("-np", "--workers", type=int, default=1, help="worker processes cropping")
        g.add_argument("--deep-features", help="also write the network's penultimate features (deep_* columns) "
                                               "as a features table (.csv or .parquet) for the other models")
        return
    g.add_argument("--crop-size", type=int, default=crop.size, help="voxels per side of the crop cube")
    g.add_argument("--crop-spacing", type=float, default=crop.spacing_mm, help="crop voxel size (mm)")
    g.add_argument("--width", type=int, default=net.width, help="channels of the network's first layer")
    g.add_argument("--epochs", type=int, default=net.epochs, help="most epochs per member network")
    g.add_argument("--patience", type=int, default=net.patience,
                   help="epochs without a lower validation loss before a member network stops")
    g.add_argument("--members", type=int, default=net.members,
                   help="member networks, one per inner fold (early stopping and the HPV threshold use its "
                        "out-of-fold outputs)")
    g.add_argument("--no-measures", action="store_true",
                   help="leave the PET measures (SUVmax, MTV, TLG...) out of the network's tabular inputs")


def _deep_settings(a: argparse.Namespace) -> dict:
    """The deep model's crop, network and input settings from the command line."""
    from hecktor_nnunet.prognosis.deep_crops import CropSettings

    crop = CropSettings(size=a.crop_size, spacing_mm=a.crop_spacing, empty_mask=a.empty_mask,
                        resample_nearest=a.resample_nearest)
    net = {"width": a.width, "epochs": a.epochs, "patience": a.patience, "members": a.members, "device": a.device,
           "n_jobs": a.torch_threads}
    return dict(crop=crop, cache=a.cache, net=net, measures=not a.no_measures)


def _deep(a: argparse.Namespace) -> int:
    """``train`` / ``cv`` with ``--model deep``."""
    from hecktor_nnunet.prognosis.deep_train import run_deep_cv, train_deep
    from hecktor_nnunet.prognosis.features import clinical_columns

    if a.release is None or a.masks is None:
        return fail("--model deep reads images: give --release and --masks")
    if a.features is not None or a.no_radiomics or a.k_features is not None:
        return fail("--model deep reads images, not a features table: leave out --features, --no-radiomics and "
                    "--k-features")
    common = dict(**_deep_settings(a), exclude_clinical=clinical_columns(a.exclude_clinical), n_splits=a.n_folds, repeats=a.repeats,
                  seed=a.seed, n_bootstrap=a.n_boot, workers=a.workers, quiet=a.quiet, overwrite=a.overwrite)
    if a.command == "train":
        model = train_deep(a.task, a.release, a.masks, a.clinical, a.out, cv=None if a.no_cv else a.splits, **common)
        print(f"model written to {a.out} (deep, {len(model.nets_)} member network(s), "
              f"{len(model.feature_names_in_)} tabular columns)")
        return 0
    res = run_deep_cv(a.task, a.release, a.masks, a.clinical, a.out, cv=a.splits, **common)
    key = OUTCOME_TASKS[a.task].metric
    lo, hi = res.report[f"{key}_ci95"]
    print(f"{a.task} deep ({a.splits}): {key} {res.report[key]:.3f} (95% CI {lo:.3f}-{hi:.3f}); "
          f"report in {a.out}/cv_report.json")
    return 0


def _predict_deep(a: argparse.Namespace) -> int:
    from hecktor_nnunet.prognosis.deep_train import predict_deep

    if a.release is None or a.masks is None:
        return fail(f"{a.model_dir} is a deep model: give --release and --masks")
    out = predict_deep(a.model_dir, a.release, a.masks, a.out, clinical=a.clinical, cache=a.cache,
                       json_dir=a.json_dir, features_out=a.deep_features, empty_mask=a.empty_mask,
                       resample_nearest=a.resample_nearest, workers=a.workers, threads=a.torch_threads,
                       device=a.device, quiet=a.quiet)
    _print_predicted(out, a.out)
    return 0


def _print_predicted(out, path: str) -> None:
    skipped = out.attrs.get("not_scored", {})
    print(f"wrote {len(out)} prediction(s) to {path}"
          + (f"; {len(skipped)} patient(s) not scored: " + ", ".join(f"{p} ({why})" for p, why in
                                                                    sorted(skipped.items())) if skipped else ""))


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
        if a.model == "deep":
            return _deep(a)
        if a.release is not None or a.masks is not None:
            return fail("--release and --masks are inputs of --model deep only")
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

    if (a.release is None) != (a.masks is None):
        return fail("the deep model's row needs both --release and --masks")
    deep = dict(release=a.release, masks=a.masks, **_deep_settings(a)) if a.release else None
    report = run_compare(a.task, a.features, a.clinical, a.out, models=tuple(a.models) if a.models else None,
                         cv=a.splits, n_splits=a.n_folds, repeats=a.repeats, seed=a.seed, k_features=a.k_features,
                         exclude_clinical=clinical_columns(a.exclude_clinical), deep=deep, n_bootstrap=a.n_boot,
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
        vs = "" if r["diff_vs_default"] is None else f"  vs default {r['diff_vs_default']:+.3f} ({p_equation(r['p_value'])})"
        lines.append(f"  {r['label']:<28} {report['metric']} {r['score']:.3f} (95% CI {ci}){vs}")
    return "\n".join(lines)


def _predict(a: argparse.Namespace) -> int:
    from hecktor_nnunet.io.clinical import read_clinical
    from hecktor_nnunet.prognosis.artifacts import predict
    from hecktor_nnunet.prognosis.radiomics import read_features

    if a.model_dir is None:
        return fail("give the model folder: --model-dir DIR")
    from hecktor_nnunet.prognosis.deep_train import is_deep_folder

    if is_deep_folder(a.model_dir):
        return _predict_deep(a)
    features, meta = read_features(a.features) if a.features else (None, {})
    clinical = read_clinical(a.clinical) if a.clinical else None
    out = predict(a.model_dir, features, meta, a.out, clinical=clinical, json_dir=a.json_dir,
                  sources=(str(a.features), str(a.clinical)))
    _print_predicted(out, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
