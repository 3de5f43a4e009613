"""Every prognosis model against the planted truth, on cohorts built to be hard (several seeds).

For each seed, :func:`hecktor_nnunet.demo.cohort.planted_cohort` draws a cohort (default 700 patients,
the size of the HECKTOR 2025 training set; 5 centres with their own PET calibration and follow-up,
noisy signal columns, texture-like columns correlated with the signal, missing values), and for RFS
and HPV this script records, on the same 5 centre-stratified outer folds:

* every model of ``hecktor-prognosis compare`` (the families, the ensemble, ``auto`` and a
  clinical-only model), mean of the fold metrics;
* the oracle: the planted risk (C-index) or the planted probability put through the models' own
  threshold rule (chosen on the training folds for balanced accuracy);
* a well-specified model: a Cox or logistic model told the true inputs and their transforms,
  which no real model is: how much of the gap to the oracle is measurement noise and finite data;
* ``auto`` on shuffled outcomes (what no signal gives).

Usage: ``python benchmarks/prognosis_models.py [--patients 700] [--seeds 5] [-np 2]``; writes
``benchmarks/results/prognosis_models.json`` (``python benchmarks/tables.py`` renders it).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hecktor_nnunet.demo.cohort import planted_cohort
from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.metrics.classification import balanced_accuracy, best_threshold
from hecktor_nnunet.metrics.survival import concordance_index
from hecktor_nnunet.prognosis.compare import compare_models
from hecktor_nnunet.prognosis.cv import cross_validate, splits
from hecktor_nnunet.prognosis.features import dataset_from_tables
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import stratify_labels


def _true_inputs(X: pd.DataFrame, task: str) -> pd.DataFrame:
    """The measured versions of the planted variables, transformed as the truth uses them."""
    if task == "rfs":
        cols = {"v": np.log(X["PET_GTVp_MTV_ml"]), "s": np.log(X["PET_GTVp_SUVmax"]),
                "n": np.log1p(X["MASK_GTVn_total_ml"]), "age": X["CLIN_Age"], "ps": X["CLIN_PerformanceStatus"],
                "m": X["CLIN_M"], "hpv": X["CLIN_HPV"],
                "large": (np.log(X["PET_GTVp_MTV_ml"]) > np.log(X["PET_GTVp_MTV_ml"]).quantile(0.85)).astype(float)}
    else:
        cols = {"age": X["CLIN_Age"], "tobacco": X["CLIN_Tobacco"], "nodes": X["MASK_GTVn_count"],
                "suv": np.log(X["PET_GTVp_SUVmax"])}
    return pd.DataFrame(cols, index=X.index)


def _references(task: str, X: pd.DataFrame, y: np.ndarray, centres: np.ndarray, oracle: pd.DataFrame,
                seed: int) -> dict:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    Z = _true_inputs(X, task)
    oracle_scores, specified = [], []
    for tr, te in splits(centres, stratify_labels(task, y), "centre-stratified", 5, seed):
        impute = SimpleImputer(strategy="median").fit(Z.iloc[tr])
        Ztr, Zte = impute.transform(Z.iloc[tr]), impute.transform(Z.iloc[te])
        if task == "rfs":
            risk = oracle["true_risk"].to_numpy()
            oracle_scores.append(concordance_index(y["time"][te], y["event"][te], risk[te]))
            cox = CoxPHSurvivalAnalysis(alpha=0.1).fit(Ztr, y[tr])
            specified.append(concordance_index(y["time"][te], y["event"][te], cox.predict(Zte)))
        else:
            p = oracle["hpv_prob"].to_numpy()
            oracle_scores.append(balanced_accuracy(y[te], (p[te] >= best_threshold(y[tr], p[tr])).astype(int)))
            logit = LogisticRegression(C=10.0, max_iter=2000).fit(Ztr, y[tr])
            q_tr = logit.predict_proba(Ztr)[:, 1]
            q_te = logit.predict_proba(Zte)[:, 1]
            specified.append(balanced_accuracy(y[te], (q_te >= best_threshold(y[tr], q_tr)).astype(int)))
    return {"oracle": float(np.mean(oracle_scores)), "well_specified": float(np.mean(specified))}


def run_seed(task: str, n: int, seed: int, workers: int) -> dict:
    feat, clin, oracle = planted_cohort(n, seed=seed)
    d = dataset_from_tables(feat, normalise_table(clin)[0], task)
    orc = oracle.set_index("PatientID").loc[d.X.index]
    t0 = time.perf_counter()
    report, _ = compare_models(d.X, d.y, d.centres, task=task, seed=seed, n_boot=500, workers=workers, quiet=True)
    seconds = time.perf_counter() - t0
    shuffled = d.y[np.random.default_rng(seed).permutation(len(d.y))]
    null = cross_validate(d.X, shuffled, d.centres, task=task, repeats=1, seed=seed, n_bootstrap=50, workers=workers,
                          quiet=True, make_model=lambda rs: PrognosisModel(task=task, random_state=rs))
    return {"seed": seed, "n_patients": int(len(d.y)), "compare_seconds": round(seconds, 1),
            "scores": {r["model"]: r["score"] for r in report["rows"]},
            "p_vs_auto": {r["model"]: r["p_value"] for r in report["rows"] if r["p_value"] is not None},
            "auto_chose": next(r["chosen"] for r in report["rows"] if r["model"] == "auto"),
            **_references(task, d.X, d.y, d.centres, orc, seed),
            "auto_shuffled": null.report["c_index" if task == "rfs" else "balanced_accuracy"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=700)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("-np", "--workers", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prognosis_models.json"))
    a = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the cohort's patients without an HPV status are named on every fit
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPU(s)", "patients": a.patients,
              "date": time.strftime("%Y-%m-%d"), "tasks": {}}
    for task in ("rfs", "hpv"):
        runs = []
        for seed in range(a.seeds):
            runs.append(run_seed(task, a.patients, seed, a.workers))
            r = runs[-1]
            print(f"{task} seed {seed}: oracle {r['oracle']:.3f}, well-specified {r['well_specified']:.3f}, "
                  f"auto {r['scores']['auto']:.3f}, shuffled {r['auto_shuffled']:.3f} ({r['compare_seconds']} s)",
                  flush=True)
        result["tasks"][task] = runs
        write_json(result, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
