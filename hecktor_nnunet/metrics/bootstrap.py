"""Percentile bootstrap confidence intervals over patients."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def bootstrap_ci(func: Callable[..., float], *arrays, n: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of ``func(*arrays)``, resampling patients with replacement.

    Parameters
    ----------
    func : callable
        Statistic of the arrays (e.g. :func:`~hecktor_nnunet.metrics.survival.concordance_index`).
    *arrays : array-like
        Per-patient arrays of equal length along axis 0; the same rows are drawn from each.
    n : int
        Number of bootstrap resamples.
    seed : int
        Seed of the random generator (results are reproducible).
    alpha : float
        1 - confidence level (0.05 gives a 95% interval).

    Returns
    -------
    (low, high) : tuple of float
        Interval bounds; ``(nan, nan)`` when fewer than half of the resamples give a finite
        value. Resamples where ``func`` raises ``ValueError`` (e.g. all censored) or returns NaN
        are skipped and counted in a debug log message.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    m = len(arrs[0])
    if any(len(a) != m for a in arrs):
        raise ValueError(f"arrays must have equal length, got {[len(a) for a in arrs]}")
    if m == 0:
        raise ValueError("bootstrap_ci got empty arrays")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    stats = []
    skipped = 0
    for _ in range(n):
        idx = rng.integers(0, m, m)
        try:
            v = float(func(*(a[idx] for a in arrs)))
        except ValueError:
            v = float("nan")
        if np.isfinite(v):
            stats.append(v)
        else:
            skipped += 1
    if skipped:
        log.debug("bootstrap: %d of %d resamples gave no value", skipped, n)
    if len(stats) < max(1, n // 2):
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
