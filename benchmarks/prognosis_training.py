"""Training time of each prognosis model on a 700-patient synthetic table.

The table is :func:`hecktor_nnunet.demo.simulate.simulate_tables` (planted outcomes of the
synthetic release) widened to about the size of a real radiomics table (``--columns``, default 800).
Each fit is the full :class:`~hecktor_nnunet.prognosis.models.PrognosisModel` fit (one thread): for a
named family, feature selection, its inner 3-fold grid search and the final fit; for ``ensemble``,
every family at its defaults; for ``auto`` (the default), the inner 3-fold choice of family and
``k`` among every (family, k) candidate, then the final fit.

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

from hecktor_nnunet.demo.simulate import simulate_tables
from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.clinical import normalise_table
from hecktor_nnunet.prognosis.families import GRIDS, model_names
from hecktor_nnunet.prognosis.features import dataset_from_tables
from hecktor_nnunet.prognosis.models import PrognosisModel
from hecktor_nnunet.prognosis.selection import K_GRID


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=700)
    ap.add_argument("--columns", type=int, default=800, help="approximate radiomics columns")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "prognosis_training.json"))
    a = ap.parse_args(argv)
    feat, clin, _ = simulate_tables(a.patients, seed=0, n_noise=max(a.columns - 13, 0))
    clin = normalise_table(clin)[0]
    timings = {}
    for task in ("rfs", "hpv"):
        d = dataset_from_tables(feat, clin, task)
        for name in model_names(task):
            t0 = time.perf_counter()
            model = PrognosisModel(task=task, model=name).fit(d.X, d.y)
            candidates = (len(model.search_) if name == "auto" else
                          int(np.prod([len(v) for v in GRIDS.get((task, name), {}).values()])))
            timings[f"{task}/{name}"] = {"seconds": round(time.perf_counter() - t0, 2), "patients": len(d.X),
                                         "columns_in": d.X.shape[1], "selected": len(model.selected_features_),
                                         "candidates": candidates, "fitted": model.chosen_["model"]}
            print(f"{task}/{name}: {timings[f'{task}/{name}']['seconds']} s ({len(d.X)} patients, "
                  f"{d.X.shape[1]} columns)", flush=True)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPU(s)", "threads": 1, "k_grid": list(K_GRID),
              "timings": timings}
    write_json(result, a.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
