"""A planted-signal prognosis cohort, tables only, built to be harder than the demo's.

The demo's own tables (:mod:`hecktor_nnunet.demo.simulate`) carry exactly the outcome model of the
synthetic images. This cohort is independent of it and closer to what a real radiomics table does
to a model:

* **Centres** differ in how they measure and follow up, not in biology: each has its own PET
  calibration (SUV values scaled by 0.88-1.12) and follow-up length (administrative censoring).
  The outcome model is the same everywhere, so the oracle is attainable in principle by a model that
  never sees the centre (as the project's models never do).
* **Signal** sits in a few columns: GTVp volume and SUVmax, nodal burden (count and volume), and the
  clinical age, performance status, M-stage and HPV status. RFS risk is linear in them plus one
  threshold effect (very large primaries relapse more); HPV status is logistic in age, tobacco,
  nodal burden and uptake.
* **Nuisance**: every signal column is measured with noise; many texture-like columns are noisy
  functions of tumour volume or uptake (correlated with the signal, but with no signal of their
  own); the rest is pure noise.
* **Missing values**: GTVn columns are NaN without nodes, 5 % of the texture-like values are
  missing at random, and tobacco, alcohol, performance status and HPV status are missing for
  some patients, as in the release.

The oracle (``true_risk``, ``hpv_prob``) is what a model could at best learn: the planted linear
predictor and probability, computed from the true (unmeasured) values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: centre -> (CenterID, PET calibration, median follow-up in days)
COHORT_CENTRES = {"CHUM": (1, 1.00, 1500), "CHUP": (2, 0.88, 1100), "HGJ": (6, 1.12, 1800),
                  "MDA": (5, 0.95, 2000), "USZ": (8, 1.06, 1300)}
#: the radiomics-like columns that carry signal (measured versions of the planted variables)
SIGNAL_COLUMNS = ("PET_GTVp_MTV_ml", "PET_GTVp_SUVmax", "PET_GTVp_TLG", "MASK_GTVn_count",
                  "MASK_GTVn_total_ml", "PET_GTVn_SUVmax")


def _z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / (v.std() + 1e-12)


@dataclass
class _Patients:
    """The true (unmeasured) variables of the cohort, one array each."""

    pid: np.ndarray
    centre: np.ndarray
    calib: np.ndarray
    follow_up: np.ndarray
    age: np.ndarray
    tobacco: np.ndarray
    log_vol: np.ndarray
    suv: np.ndarray
    n_nodes: np.ndarray
    node_ml: np.ndarray
    node_suv: np.ndarray
    ps: np.ndarray
    m1: np.ndarray
    hpv_prob: np.ndarray
    hpv: np.ndarray


def _patients(n: int, rng: np.random.Generator) -> _Patients:
    names = list(COHORT_CENTRES)
    centre = np.asarray([names[i % len(names)] for i in range(n)])
    age = np.clip(rng.normal(62, 9, n), 35, 88)
    tobacco = (rng.uniform(size=n) < 0.5).astype(float)
    log_vol = rng.normal(np.log(18), 0.7, n)                       # GTVp mL, median 18
    suv = np.exp(np.log(11) + 0.25 * _z(log_vol) + rng.normal(0, 0.3, n))
    n_nodes = np.minimum(rng.poisson(1.4, n), 6)
    node_ml = np.where(n_nodes > 0, n_nodes * np.exp(rng.normal(np.log(2.5), 0.6, n)), 0.0)
    node_suv = np.where(n_nodes > 0, np.exp(rng.normal(np.log(7), 0.3, n)), np.nan)
    ps = rng.choice([0, 0, 0, 1, 1, 2], size=n).astype(float)
    m1 = (rng.uniform(size=n) < 0.04).astype(float)
    hpv_logit = -0.3 - 0.06 * (age - 62) - 0.9 * tobacco + 0.5 * (n_nodes - 1.4) + 0.4 * _z(np.log(suv))
    hpv_prob = 1 / (1 + np.exp(-hpv_logit))
    return _Patients(
        pid=np.asarray([f"{c}-{i // len(names) + 1:03d}" for i, c in enumerate(centre)]), centre=centre,
        calib=np.asarray([COHORT_CENTRES[c][1] for c in centre]),
        follow_up=np.asarray([COHORT_CENTRES[c][2] for c in centre], dtype=float), age=age, tobacco=tobacco,
        log_vol=log_vol, suv=suv, n_nodes=n_nodes, node_ml=node_ml, node_suv=node_suv, ps=ps, m1=m1,
        hpv_prob=hpv_prob, hpv=(rng.uniform(size=n) < hpv_prob).astype(int))


def _outcomes(p: _Patients, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The planted log relative hazard, RFS (days) and relapse indicator."""
    n = len(p.pid)
    risk = (0.6 * _z(p.log_vol) + 0.4 * _z(np.log(p.suv)) + 0.35 * _z(np.log1p(p.node_ml)) - 0.8 * p.hpv
            + 0.25 * _z(p.age) + 0.3 * p.ps + 0.8 * p.m1 + 0.5 * (p.log_vol > np.quantile(p.log_vol, 0.85)))
    event_time = rng.exponential(900.0 * np.exp(-risk))
    censor = np.minimum(rng.uniform(0.3, 1.7, n) * p.follow_up, rng.uniform(200, 3000, n))
    rfs = np.clip(np.round(np.minimum(event_time, censor)), 1, None).astype(int)
    return risk, rfs, (event_time <= censor).astype(int)


def _features(p: _Patients, rng: np.random.Generator, n_correlated: int, n_noise: int) -> pd.DataFrame:
    """The radiomics-like table: noisy signal columns, texture-like nuisance, pure noise, NaN."""
    n = len(p.pid)

    def noisy(v: np.ndarray, sd: float) -> np.ndarray:
        return v * np.exp(rng.normal(0, sd, n))

    vol = noisy(np.exp(p.log_vol), 0.08)
    suv = noisy(p.suv * p.calib, 0.06)
    has_nodes = p.n_nodes > 0
    feats = {"PatientID": p.pid, "PET_GTVp_MTV_ml": vol, "PET_GTVp_SUVmax": suv,
             "PET_GTVp_TLG": 0.6 * suv * vol * np.exp(rng.normal(0, 0.08, n)),
             "MASK_GTVn_count": p.n_nodes.astype(float),
             "MASK_GTVn_total_ml": np.where(has_nodes, noisy(np.maximum(p.node_ml, 1e-3), 0.1), 0.0),
             "PET_GTVn_SUVmax": np.where(has_nodes, noisy(np.nan_to_num(p.node_suv) * p.calib, 0.08), np.nan),
             "flag_GTVn_empty": (~has_nodes).astype(float),
             "CT_GTVp_original_firstorder_Mean": rng.normal(55, 8, n)}
    for j in range(n_correlated):
        base = np.log(vol) if j % 3 else np.log(suv)
        col = (0.4 + 0.6 * rng.uniform()) * _z(base) + rng.normal(0, rng.uniform(0.4, 1.2), n)
        col[rng.uniform(size=n) < 0.05] = np.nan
        kind = ("glcm", "glrlm", "glszm", "gldm")[j % 4]
        feats[f"{'PET' if j % 2 else 'CT'}_GTVp_original_{kind}_Texture{j:03d}"] = col
    for j in range(n_noise):
        feats[f"{'CT' if j % 2 else 'PET'}_GTV_wavelet_Noise{j:03d}"] = rng.normal(size=n)
    return pd.DataFrame(feats)


def _clinical(p: _Patients, rfs: np.ndarray, relapse: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The 2025 clinical table with outcomes; some tobacco, alcohol, performance and HPV values missing."""
    n = len(p.pid)

    def missing(v: np.ndarray, share: float) -> np.ndarray:
        return np.where(rng.uniform(size=n) < share, np.nan, v)

    t_stage = np.clip(np.digitize(p.log_vol, np.log([8, 20, 45])) + 1, 1, 4)
    return pd.DataFrame({
        "PatientID": p.pid, "CenterID": [COHORT_CENTRES[c][0] for c in p.centre], "Age": np.round(p.age),
        "Gender": (rng.uniform(size=n) < 0.8).astype(int), "Tobacco Consumption": missing(p.tobacco, 0.12),
        "Alcohol Consumption": missing((rng.uniform(size=n) < 0.4).astype(float), 0.12),
        "Performance Status": missing(p.ps, 0.1), "Treatment": (rng.uniform(size=n) < 0.7).astype(int),
        "M-stage": np.where(p.m1 > 0, "M1", "M0"), "T-stage": [f"T{t}" for t in t_stage],
        "N-stage": [f"N{min(3, k)}" for k in p.n_nodes], "HPV Status": missing(p.hpv.astype(float), 0.15),
        "Relapse": relapse, "RFS": rfs})


def planted_cohort(n: int = 700, *, seed: int = 0, n_correlated: int = 50, n_noise: int = 30
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A features table, a clinical table (2025 schema, with outcomes) and the oracle.

    Parameters
    ----------
    n : int
        Patients, spread evenly over the centres of :data:`COHORT_CENTRES` (700: about the HECKTOR
        2025 training set).
    seed : int
        Everything is a function of the seed.
    n_correlated, n_noise : int
        Texture-like columns correlated with tumour volume or uptake, and pure-noise columns.

    Returns
    -------
    features, clinical, oracle : DataFrame
        ``features``: PatientID and ``8 + n_correlated + n_noise`` columns (flags included);
        ``clinical``: the 2025 columns with ``Relapse`` and ``RFS`` (days); ``oracle``: PatientID,
        Centre, ``true_risk`` (log relative hazard), ``hpv_prob`` and ``hpv``.
    """
    rng = np.random.default_rng(seed)
    p = _patients(n, rng)
    risk, rfs, relapse = _outcomes(p, rng)
    features = _features(p, rng, n_correlated, n_noise)
    clinical = _clinical(p, rfs, relapse, rng)
    oracle = pd.DataFrame({"PatientID": p.pid, "Centre": p.centre, "true_risk": risk, "hpv_prob": p.hpv_prob,
                           "hpv": p.hpv})
    return features, clinical, oracle
