"""Training time of each prognosis model on a 700-patient synthetic table.

The table is :func:`hecktor_nnunet.demo.simulate.simulate_tables` (planted outcomes of the
synthetic release) widened to about the size of a real radiomics table (``--columns``, default 800).
Each fit is the full :class:`~hecktor_nnunet.prognosis.models.PrognosisModel` fit: feature
selection, inner 3-fold grid search, final fit (one thread).

Usage: ``python benchmarks/prognosis_training.py [--patients 700] [--columns 800]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from sksurv.util import Surv

from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.prognosis.features import model_inputs, targets
from hecktor_nnunet.prognosis.models import GRIDS, PrognosisModel
from hecktor_nnunet.demo.simulate import simulate_tables


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=700)
    ap.add_argument("--columns", type=int, default=800, help="approximate radiomics columns")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prognosis_training.json"))
    a = ap.parse_args(argv)
    feat, clin, _ = simulate_tables(a.patients, seed=0, n_noise=max(a.columns - 13, 0))
    clin = normalise_table(clin)[0]
    timings = {}
    for (task, name) in GRIDS:
        X = model_inputs(feat, clin, task)
        t = targets(clin, task)
        X = X.loc[X.index.intersection(t.index)]
        t = t.loc[X.index]
        y = (Surv.from_arrays(t["Relapse"].astype(bool), t["RFS"]) if task == "rfs"
             else t["HPV Status"].astype(int).to_numpy())
        t0 = time.perf_counter()
        model = PrognosisModel(task=task, model=name).fit(X, y)
        timings[f"{task}/{name}"] = {"seconds": round(time.perf_counter() - t0, 2), "patients": len(X),
                                     "columns_in": X.shape[1], "selected": len(model.selected_features_),
                                     "grid_candidates": int(np.prod([len(v) for v in GRIDS[(task, name)].values()]))}
        print(f"{task}/{name}: {timings[f'{task}/{name}']['seconds']} s ({len(X)} patients, {X.shape[1]} columns)",
              flush=True)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPU(s)", "threads": 1, "timings": timings}
    write_json(result, a.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
