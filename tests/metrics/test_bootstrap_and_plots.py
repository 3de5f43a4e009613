"""Bootstrap intervals and the evaluation figures."""

import numpy as np
import pandas as pd
import pytest

from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.evaluation.plots import centre_boxplot, km_risk_groups, roc_plot


def test_bootstrap_mean_interval_is_reproducible_and_sane():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 2, 400)
    lo, hi = bootstrap_ci(np.mean, x, n=500, seed=1)
    assert (lo, hi) == bootstrap_ci(np.mean, x, n=500, seed=1)
    se = 2 / np.sqrt(400)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_bootstrap_paired_arrays_and_failures():
    a = np.arange(10.0)
    lo, hi = bootstrap_ci(lambda u, v: float(np.mean(u - v)), a, a, n=50)
    assert lo == hi == 0.0  # rows are drawn together
    assert np.isnan(bootstrap_ci(lambda u: float("nan"), a, n=20)[0])
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_ci(np.mean, a, a[:5])


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.exponential(500, 80)
    e = rng.random(80) < 0.7
    p = km_risk_groups(t, e, -t, tmp_path / "km.png", title="x")
    assert p < 1e-3 and (tmp_path / "km.png").stat().st_size > 1000
    assert np.isnan(km_risk_groups(t, e, np.ones(80), tmp_path / "km_flat.png"))
    y = rng.random(60) < 0.5
    assert roc_plot(y, y + rng.random(60), tmp_path / "roc.png") > 0.7
    df = pd.DataFrame({"centre": rng.choice(["A", "B"], 30), "d": rng.random(30)})
    centre_boxplot(df, "d", tmp_path / "box.png")
    assert (tmp_path / "box.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
