"""Bootstrap intervals and the evaluation figures (numbers at risk, small centres, readable axis titles)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from hecktor_nnunet.metrics.bootstrap import bootstrap_ci
from hecktor_nnunet.evaluation.plots import (FEW_PATIENTS, centre_boxplot, centre_boxplot_figure, km_figure,
                                             km_risk_groups, numbers_at_risk, risk_groups, roc_plot, time_ticks)


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


def test_numbers_at_risk_by_hand():
    # followed until day 1..6; the first three in one group; at risk at t = still followed on day t
    t = [1, 2, 3, 4, 5, 6]
    groups = {"a": [True, True, True, False, False, False], "b": [False, False, False, True, True, True]}
    assert numbers_at_risk(t, groups, [0, 2, 3.5, 4, 6, 7]) == {"a": [3, 2, 0, 0, 0, 0], "b": [3, 3, 3, 3, 1, 0]}
    with pytest.raises(ValueError, match="2 flags for 6 times"):
        numbers_at_risk(t, {"a": [True, False]}, [0])
    assert time_ticks(986) == [0, 200, 400, 600, 800]


def test_kaplan_meier_figure_shows_the_numbers_at_risk_under_its_axes():
    t = np.array([50.0, 120, 300, 410, 700, 800, 950, 1200])
    e = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    risk = -t  # the four shortest follow-ups are the high-risk group
    fig, p, at_risk = km_figure(t, e, risk, title="x")
    ax = fig.axes[0]
    ticks = [float(x) for x in ax.get_xticks()]
    assert at_risk["time_days"] == ticks == [0, 250, 500, 750, 1000]
    # high risk: followed 50, 120, 300, 410 days; low risk: 700, 800, 950, 1200 days
    assert at_risk["high risk"] == [4, 2, 0, 0, 0] and at_risk["low risk"] == [4, 4, 4, 3, 1]
    assert {k: v for k, v in at_risk.items() if k != "time_days"} == numbers_at_risk(t, risk_groups(risk), ticks)
    below = [txt for txt in ax.texts if txt.get_position()[1] < 0]  # y in axes units: under the x axis
    assert "Number at risk" in [txt.get_text() for txt in below]
    high = [txt.get_text() for txt in below if txt.get_color() == "tab:red" and txt.get_text().isdigit()]
    assert high == [str(n) for n in at_risk["high risk"]]
    assert 0 < p < 1 and "log-rank p = " in ax.get_title()
    plt.close(fig)


def test_centre_boxplot_draws_no_box_below_the_minimum_and_says_so():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"centre": ["A"] * FEW_PATIENTS + ["B"] * (FEW_PATIENTS - 1),
                       "gtvp_dice": rng.random(2 * FEW_PATIENTS - 1)})
    fig = centre_boxplot_figure(df, "gtvp_dice")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "GTVp Dice"
    assert [lab.get_text() for lab in ax.get_xticklabels()] == [f"A\n(n={FEW_PATIENTS})", f"B\n(n={FEW_PATIENTS - 1}*)"]
    medians = [line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_color() != "black"]
    assert [float(np.mean(m.get_xdata())) for m in medians] == [1.0]  # one box, at centre A
    assert any(f"fewer than {FEW_PATIENTS} patients" in txt.get_text() for txt in fig.texts)
    plt.close(fig)
