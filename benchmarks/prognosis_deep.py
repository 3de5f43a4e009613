"""Does a network on the images beat radiomics here? The deep model beside radiomics and clinical-only
models on the same folds of a synthetic release with planted outcomes (hand-run).

The release (``hecktor_nnunet.demo.synth.generate_release``, tiny size: CT 48^3 voxels of 4.2 x 4.2 x 6 mm)
plants RFS on tumour volume, SUVmax, HPV status and age, and HPV status on age, node count and
tumour uptake; its oracle table holds the planted risk and probability. Masks are the true ones (every
patient's label map, written outside the release). For RFS and HPV, on the same centre-stratified
outer folds (:func:`hecktor_nnunet.prognosis.cv.splits`; every model sees the same patients in the
same order), this script records:

* ``deep``: ``hecktor-prognosis cv --model deep`` (crops, clinical vector and PET measures; the
  settings given);
* ``radiomics``: ``auto`` on the radiomics of the same true masks (the demo's params files: first-order
  PET/CT features at 4 mm, PET descriptors) with the clinical columns;
* ``clinical``: the clinical-only model (``coxnet`` / ``logistic`` on the clinical columns);
* the deep model's linear term alone (``epochs=0``: each member is the penalised linear model of the
  clinical columns and PET measures its network starts from): what the network adds;
* ``deep`` without the PET measures among its tabular inputs (images + clinical columns only): whether
  the network finds in the images what the measures hold (the planted outcomes depend on tumour
  volume and uptake, which the measures give directly);
* ``deep`` on shuffled outcomes (what no signal gives);
* the oracle (planted risk; planted probability >= 0.5), on the pooled patients.

Usage: ``python benchmarks/prognosis_deep.py [--patients 150] [--repeats 1] [--work DIR]``; writes
``benchmarks/results/prognosis_deep.json``. The release, radiomics and crops are cached in ``--work``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.clinical import read_clinical
from hecktor_nnunet.metrics.classification import balanced_accuracy
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.cv import cross_validate
from hecktor_nnunet.prognosis.deep_crops import CropSettings
from hecktor_nnunet.prognosis.deep_model import DeepPrognosisModel
from hecktor_nnunet.prognosis.deep_train import deep_dataset
from hecktor_nnunet.prognosis.features import build_dataset
from hecktor_nnunet.prognosis.families import CLINICAL_FAMILY
from hecktor_nnunet.prognosis.models import PrognosisModel

METRIC = {"rfs": "c_index", "hpv": "balanced_accuracy"}


def prepare(work: Path, n: int, seed: int, workers: int) -> tuple[Path, Path, Path, Path]:
    """The release, its true masks, the Task 2 clinical table and the radiomics of the true masks (cached)."""
    from hecktor_nnunet.demo.steps import write_demo_params
    from hecktor_nnunet.demo.synth import generate_release
    from hecktor_nnunet.prognosis.radiomics import extract_features

    release, masks, features = work / "release", work / "masks", work / "radiomics" / "features.parquet"
    if not release.is_dir():
        generate_release(release, 0, n_unlabelled=n, size="tiny", seed=seed, oracle_labels=masks)
    if not features.is_file():
        params = write_demo_params(features.parent)
        extract_features(release, masks, features, workers=workers, params_pet=params["PET"],
                         params_ct=params["CT"], cache_dir=features.parent / "cache", quiet=True)
    return release, masks, release / "Task 2" / "HECKTOR_2025_Training_Task_2.csv", features


def _row(name: str, report: dict, task: str, seconds: float, n_fits: int) -> dict:
    key = METRIC[task]
    row = {"model": name, "score": report[key], "ci95": report[f"{key}_ci95"],
           "fold_scores": [f[key] for f in report["folds"]], "seconds_per_fit": round(seconds / n_fits, 1)}
    if task == "hpv":
        row.update({k: report[k] for k in ("auc", "sensitivity", "specificity")})
    return row


def run_task(task: str, release: Path, masks: Path, clinical: Path, features: Path, oracle: pd.DataFrame, *,
             crop: CropSettings, net: dict, repeats: int, seed: int, cache: Path) -> dict:
    deep, store = deep_dataset(task, release, masks, clinical, crop=crop, cache=cache, quiet=True)
    no_measures, _ = deep_dataset(task, release, masks, clinical, crop=crop, cache=cache, measures=False, quiet=True)
    rad = build_dataset(features, clinical, task)
    ids = sorted(set(deep.X.index) & set(rad.X.index))  # one patient set, one order: the same folds
    pos = {k: [list(d.X.index).index(i) for i in ids] for k, d in (("deep", deep), ("rad", rad))}
    y, centres = deep.y[pos["deep"]], deep.centres[pos["deep"]]
    X_deep, X_rad, X_images = deep.X.loc[ids], rad.X.loc[ids], no_measures.X.loc[ids]
    clinical_cols = [c for c in X_rad.columns if c.startswith("CLIN_")]
    cv = dict(task=task, n_splits=5, repeats=repeats, seed=seed, n_bootstrap=500, quiet=True)
    n_fits = 5 * repeats
    rows = []

    def deep_model(rs: int) -> DeepPrognosisModel:
        return DeepPrognosisModel(task=task, crops=store, random_state=rs, **net)

    for name, X, target, make in (
            ("deep", X_deep, y, deep_model),
            ("radiomics (auto)", X_rad, y, lambda rs: PrognosisModel(task=task, random_state=rs)),
            (f"clinical ({CLINICAL_FAMILY[task]})", X_rad[clinical_cols], y,
             lambda rs: PrognosisModel(task=task, model=CLINICAL_FAMILY[task], random_state=rs)),
            ("deep, its linear term alone (no network)", X_deep, y,
             lambda rs: DeepPrognosisModel(task=task, crops=store, random_state=rs, **{**net, "epochs": 0})),
            ("deep without the PET measures (images + clinical)", X_images, y, deep_model),
            ("deep, shuffled outcomes", X_deep, y[np.random.default_rng(seed).permutation(len(y))], deep_model)):
        t0 = time.perf_counter()
        report = cross_validate(X, target, centres, make_model=make, **cv).report
        rows.append(_row(name, report, task, time.perf_counter() - t0, n_fits))
        print(f"{task} {name}: {METRIC[task]} {rows[-1]['score']:.3f} "
              f"({rows[-1]['seconds_per_fit']} s per fit)", flush=True)
    orc = oracle.loc[ids]
    if task == "rfs":
        best = concordance_index(y["time"], y["event"], orc["true_risk"].to_numpy())
    else:
        best = balanced_accuracy(y, (orc["hpv_prob"] >= 0.5).astype(int).to_numpy())
    return {"n_patients": len(ids), "n_events" if task == "rfs" else "n_positive":
            int(y["event"].sum() if task == "rfs" else y.sum()), "oracle": float(best), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0, help="seed of the release, the folds and the models")
    ap.add_argument("--repeats", type=int, default=1, help="repeats of the 5-fold cross-validation")
    ap.add_argument("--crop-size", type=int, default=CropSettings().size)
    ap.add_argument("--crop-spacing", type=float, default=CropSettings().spacing_mm)
    ap.add_argument("--epochs", type=int, default=DeepPrognosisModel().epochs)
    ap.add_argument("--members", type=int, default=DeepPrognosisModel().members)
    ap.add_argument("-np", "--workers", type=int, default=2, help="processes for the radiomics and the crops")
    ap.add_argument("--work", default=None, help="working folder (default: a new temporary one)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prognosis_deep.json"))
    a = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # patients without an HPV status are named on every fit
    work = Path(a.work or tempfile.mkdtemp(prefix="prognosis_deep_"))
    release, masks, clinical, features = prepare(work, a.patients, a.seed, a.workers)
    oracle = pd.read_csv(work / "release_oracle.csv").set_index("PatientID")
    read_clinical(clinical)  # fail early on a bad table
    crop = CropSettings(size=a.crop_size, spacing_mm=a.crop_spacing)
    net = {"epochs": a.epochs, "members": a.members}
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPU(s)", "date": time.strftime("%Y-%m-%d"),
              "patients": a.patients, "seed": a.seed, "repeats": a.repeats, "masks": "true",
              "crop": {"size": crop.size, "spacing_mm": crop.spacing_mm},
              "deep_settings": {k: v for k, v in DeepPrognosisModel(**net).get_params().items() if k != "crops"},
              "radiomics": "demo params: first-order PET/CT at 4 mm + PET descriptors, with the clinical columns",
              "tasks": {}}
    for task in ("rfs", "hpv"):
        result["tasks"][task] = run_task(task, release, masks, clinical, features, oracle, crop=crop, net=net,
                                         repeats=a.repeats, seed=a.seed, cache=work / "crops")
        write_json(result, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
