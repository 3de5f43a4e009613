"""Large synthetic cohorts as tables, without images, for model tests and benchmarks.

Patients, clinical rows and outcomes are drawn by :mod:`hecktor_nnunet.demo.phantom` itself (the same
patient model and the same planted ``true_risk`` / HPV model as the image generator); only the
features are derived here, with measurement noise, instead of being extracted from rendered images
(rendering 700 patients would take minutes). The table mimics a radiomics table: the informative
descriptors (GTVp volume and SUVmax, node count), many noisy columns correlated with tumour volume
(as texture features are), pure noise, NaN GTVn features and flags for patients without nodes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hecktor_nnunet.demo.phantom import CENTRES, clinical_row, draw_outcomes, draw_patient


def simulate_tables(n: int = 600, *, seed: int = 0, n_noise: int = 60) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A features table, a clinical table (2025 schema, with outcomes) and the oracle.

    Parameters
    ----------
    n : int
        Patients (spread over the 7 training centres).
    seed : int
        Everything is a function of the seed.
    n_noise : int
        Extra radiomics-like columns: half noisy functions of tumour volume, half pure noise.

    Returns
    -------
    features, clinical, oracle : DataFrame
        ``oracle`` has PatientID, tumour_volume_ml, tumour_suv, n_nodes, age, hpv, hpv_prob, true_risk.
    """
    rng = np.random.default_rng(seed)
    centres = list(CENTRES)
    rows, clin, orc = [], [], []
    for i in range(n):
        centre = centres[i % len(centres)]
        pid = f"{centre}-{i // len(centres) + 1:03d}"
        prng = np.random.default_rng([seed, i])
        p = draw_patient(pid, centre, prng, fov_top=0.0)
        volume = 4 / 3 * np.pi * np.prod(p.tumour_r) / 1000
        node_ml = [4 / 3 * np.pi * np.prod(r) / 1000 for _, r, _ in p.nodes]
        weight = float(np.clip(prng.normal(78, 14), 45, 130))
        clin.append(clinical_row(pid, centre, p, weight, prng))
        orc.append({"PatientID": pid, "tumour_volume_ml": volume, "tumour_suv": p.tumour_suv,
                    "n_nodes": len(p.nodes), "age": p.age, "hpv": p.hpv, "hpv_prob": p.hpv_prob})
        noise = lambda s: float(np.exp(rng.normal(0, s)))  # noqa: E731
        # partial-volume loss: small tumours look colder on PET
        suvmax = p.tumour_suv * volume / (volume + 1.5) * noise(0.08)
        vol_meas = volume * noise(0.06)
        row = {"PatientID": pid,
               "flag_GTVn_empty": float(not p.nodes),
               "PET_GTVp_SUVmax": suvmax, "PET_GTVp_SUVmean": 0.65 * suvmax * noise(0.08),
               "PET_GTVp_SUVpeak": 0.9 * suvmax * noise(0.05), "PET_GTVp_MTV_ml": vol_meas,
               "PET_GTVp_original_shape_MeshVolume": 1000 * vol_meas * noise(0.02),
               "PET_GTVp_original_shape_Sphericity": float(np.clip(rng.normal(0.8, 0.05), 0.4, 1)),
               "MASK_GTVn_count": float(len(p.nodes)), "MASK_GTVn_total_ml": float(sum(node_ml)),
               "PET_GTVn_SUVmax": (max(s for *_, s in p.nodes) * noise(0.1)) if p.nodes else np.nan,
               "CT_GTVp_original_firstorder_Mean": float(rng.normal(55, 8))}
        row["PET_GTVp_TLG"] = row["PET_GTVp_SUVmean"] * vol_meas
        for j in range(n_noise):
            name = f"CT_GTVp_original_glcm_Synthetic{j:03d}" if j % 2 else f"PET_GTV_original_glszm_Synthetic{j:03d}"
            row[name] = (np.log(volume) * (0.5 + j / n_noise) + rng.normal(0, 1.5)) if j % 2 else rng.normal()
        rows.append(row)
    clinical = pd.DataFrame(clin)
    oracle = pd.DataFrame(orc)
    draw_outcomes(clinical, oracle, rng)
    return pd.DataFrame(rows), clinical, oracle
