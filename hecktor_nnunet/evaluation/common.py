"""What the evaluation modules share: their error and NaN-tolerant statistics."""

from __future__ import annotations

from typing import Callable

import numpy as np

from hecktor_nnunet.io.problems import ProblemsError


class EvaluationError(ProblemsError):
    """Inputs cannot be evaluated; the message names every patient and file concerned."""


def nanstat(func: Callable[[np.ndarray], float], values) -> float:
    """``func`` of the finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(func(v)) if v.size else float("nan")


def or_nan(func: Callable[..., float], *args, **kwargs) -> float:
    """``func(*args, **kwargs)`` as a float, NaN where the metric is undefined (it raises ValueError)."""
    try:
        return float(func(*args, **kwargs))
    except ValueError:
        return float("nan")
