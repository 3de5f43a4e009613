"""Cross-validation splits in nnU-Net's ``splits_final.json`` format."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_MODES = ("centre-stratified", "leave-one-centre-out")
# the one default seed of the folds, for every route (hecktor-convert, Dataset500_HECKTOR2025)
DEFAULT_SEED = 0


def make_splits(table: pd.DataFrame, mode: str, n_folds: int = 5, seed: int = DEFAULT_SEED) -> list[dict]:
    """Folds as ``[{"train": [...], "val": [...]}, ...]``.

    Parameters
    ----------
    table : DataFrame
        Columns ``PatientID``, ``Centre`` and optionally ``Relapse`` (used for stratification).
    mode : {"centre-stratified", "leave-one-centre-out"}
        ``centre-stratified``: ``n_folds`` folds balanced by centre and relapse status;
        ``leave-one-centre-out``: one fold per centre (its patients are the validation set).
    n_folds : int
        Number of centre-stratified folds.
    seed : int
        Seed of the shuffle before the centre-stratified deal (:data:`DEFAULT_SEED` by default).
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {SPLIT_MODES}, got {mode!r}")
    ids = table["PatientID"].astype(str).to_numpy()
    centres = table["Centre"].astype(str).to_numpy()
    if mode == "leave-one-centre-out":
        uniq = sorted(set(centres))
        if len(uniq) < 2:
            raise ValueError("leave-one-centre-out needs at least two centres")
        return [{"train": sorted(ids[centres != c].tolist()), "val": sorted(ids[centres == c].tolist())}
                for c in uniq]
    if len(ids) < n_folds:
        raise ValueError(f"{len(ids)} training cases cannot make {n_folds} folds")
    relapse = table["Relapse"] if "Relapse" in table.columns else pd.Series([np.nan] * len(ids))
    relapse = pd.to_numeric(relapse, errors="coerce").fillna(-1).to_numpy()
    # Shuffle, then order by centre and relapse and deal patients to folds round-robin: every
    # centre (and every relapse group within it) is spread over the folds with counts differing
    # by at most one, and fold sizes differ by at most one.
    order = np.random.default_rng(seed).permutation(len(ids))
    order = order[np.lexsort((relapse[order], centres[order]))]
    fold_of = np.empty(len(ids), dtype=int)
    fold_of[order] = np.arange(len(ids)) % n_folds
    return [{"train": sorted(ids[fold_of != k].tolist()), "val": sorted(ids[fold_of == k].tolist())}
            for k in range(n_folds)]
