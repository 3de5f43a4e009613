"""The synthetic patients: a head-and-neck phantom drawn from a seed, rendered as CT (HU), PET (SUV) and labels.

A patient is a primary tumour (label 1) and 0-4 lymph nodes (label 2) with uptake, an age and an HPV
status; :func:`draw_outcomes` plants the RFS model of :mod:`hecktor_nnunet.demo.synth` on a cohort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

CENTRES = {"CHUM": 1, "CHUP": 2, "CHUS": 3, "MDA": 5, "HGJ": 6, "HMR": 7, "USZ": 8}
#: lesion volume ranges (mL) of the synthetic patients, as in HECKTOR (primary tumours ~5-60 mL, nodes ~0.5-20 mL)
GTVP_ML = (5.0, 60.0)
GTVN_ML = (0.5, 15.0)
#: lesion uptake (SUV of the activity before the scanner's blur): primary tumours and involved nodes of
#: HNSCC are typically SUVmax 5-20
GTVP_SUV_MEDIAN = 11.0
GTVN_SUV = (5.0, 12.0)


@dataclass(frozen=True)
class SizeSpec:
    """CT and PET grids of one size preset (voxels in x, y, z and spacing in mm)."""

    ct_size: tuple[int, int, int]
    ct_spacing: tuple[float, float, float]
    pet_size: tuple[int, int, int]
    pet_spacing: tuple[float, float, float]


SIZES = {
    # tiny: fast enough for real nnU-Net training in tests (FOV ~200 x 200 x 290 mm)
    "tiny": SizeSpec((48, 48, 48), (4.2, 4.2, 6.0), (36, 36, 40), (6.0, 6.0, 7.0)),
    "small": SizeSpec((128, 128, 100), (1.6, 1.6, 3.0), (64, 64, 80), (3.5, 3.5, 4.0)),
    "realistic": SizeSpec((512, 512, 150), (0.98, 0.98, 3.0), (200, 200, 150), (4.0, 4.0, 3.0)),
}


def _coords(size, spacing, origin):
    """Separable physical coordinates of voxel centres (identity direction): z, y, x vectors."""
    axes = [origin[a] + spacing[a] * np.arange(size[a], dtype=np.float32) for a in range(3)]
    return axes[2][:, None, None], axes[1][None, :, None], axes[0][None, None, :]


def _ellipsoid(zyx, centre, radii) -> np.ndarray:
    z, y, x = zyx
    return (((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((z - centre[2]) / radii[2]) ** 2) <= 1.0


def _cylinder(zyx, centre_xy, radii_xy, z_lo, z_hi) -> np.ndarray:
    z, y, x = zyx
    disc = (((x - centre_xy[0]) / radii_xy[0]) ** 2 + ((y - centre_xy[1]) / radii_xy[1]) ** 2) <= 1.0
    return disc & (z >= z_lo) & (z <= z_hi)


@dataclass
class Patient:
    """The drawn anatomy and outcomes of one synthetic patient (physical mm, LPS)."""

    patient_id: str
    centre: str
    top: float                      # z of the top of the head
    body_xy: tuple[float, float]
    tumour_c: tuple[float, float, float]
    tumour_r: tuple[float, float, float]
    tumour_suv: float
    nodes: list[tuple[tuple[float, float, float], tuple[float, float, float], float]]
    brain_suv: float
    age: float
    hpv_prob: float
    hpv: int

    def body(self, zyx) -> dict[str, np.ndarray]:
        cx, cy = self.body_xy
        t = self.top
        z = zyx[0]
        head = _ellipsoid(zyx, (cx, cy, t - 95), (72, 88, 95))
        brain = _ellipsoid(zyx, (cx, cy + 5, t - 85), (60, 74, 70))
        neck = _cylinder(zyx, (cx, cy + 10), (55, 58), t - 270, t - 140)
        torso = _cylinder(zyx, (cx, cy + 10), (170, 100), -1e9, t - 250)
        body = head | neck | torso
        inner = (_ellipsoid(zyx, (cx, cy, t - 95), (66, 82, 89)) | _cylinder(zyx, (cx, cy + 10), (49, 52), t - 270, t - 140)
                 | _cylinder(zyx, (cx, cy + 10), (164, 94), -1e9, t - 250))
        # cranium: a 7 mm shell around the brain only; the face and neck below it are soft tissue
        skull = _ellipsoid(zyx, (cx, cy + 5, t - 85), (67, 81, 77)) & ~brain & (z > t - 125)
        # mandible: the front half of a thin elliptic ring at the level of the oropharynx
        ring = (_ellipsoid(zyx, (cx, cy - 15, t - 150), (46, 48, 9)) & ~_ellipsoid(zyx, (cx, cy - 15, t - 150), (40, 42, 9)))
        mandible = ring & (zyx[1] < cy - 15)
        spine = _cylinder(zyx, (cx, cy + 40), (11, 11), -1e9, t - 150)
        airway = _cylinder(zyx, (cx, cy - 25), (8, 8), t - 260, t - 150)
        # the lateral neck compartments around the great vessels, where the lymph nodes lie, are fatty
        neck_fat = (_ellipsoid(zyx, (cx - 36, cy + 5, t - 190), (17, 24, 48))
                    | _ellipsoid(zyx, (cx + 36, cy + 5, t - 190), (17, 24, 48)))
        return {"body": body, "fat": (body & ~inner) | (neck_fat & body), "brain": brain,
                "bone": (skull | mandible | spine) & body, "airway": airway}

    def lesions(self, zyx) -> tuple[np.ndarray, np.ndarray]:
        gtvp = _ellipsoid(zyx, self.tumour_c, self.tumour_r)
        gtvn = np.zeros_like(gtvp)
        for c, r, _ in self.nodes:
            gtvn |= _ellipsoid(zyx, c, r)
        return gtvp, gtvn & ~gtvp


def _radii(rng: np.random.Generator, volume_range_ml: tuple[float, float]) -> tuple[float, float, float]:
    """Ellipsoid semi-axes (mm) of a log-uniform volume in ``volume_range_ml`` with mild anisotropy."""
    volume_mm3 = 1000 * float(np.exp(rng.uniform(*np.log(volume_range_ml))))
    aspect = rng.uniform(0.75, 1.3, size=3)
    aspect /= np.prod(aspect) ** (1 / 3)
    r0 = (volume_mm3 / (4 / 3 * np.pi)) ** (1 / 3)
    return tuple(float(r0 * a) for a in aspect)


def draw_patient(pid: str, centre: str, rng: np.random.Generator, fov_top: float) -> Patient:
    top = fov_top - rng.uniform(10, 30)
    cx, cy = rng.normal(0, 4), rng.normal(0, 4)
    tr = _radii(rng, GTVP_ML)
    tc = (cx + rng.choice([-1, 1]) * rng.uniform(5, 18), cy - rng.uniform(0, 12), top - rng.uniform(150, 175))
    age = float(np.clip(rng.normal(62, 9), 35, 88))
    n_nodes = int(rng.choice([0, 1, 1, 2, 2, 3, 4]))
    nodes = []
    for _ in range(n_nodes):
        side = rng.choice([-1, 1])
        c = (cx + side * rng.uniform(30, 42), cy + rng.uniform(-5, 15), top - rng.uniform(165, 215))
        r = _radii(rng, GTVN_ML)
        nodes.append((c, r, float(rng.uniform(*GTVN_SUV))))
    tumour_suv = float(rng.lognormal(np.log(GTVP_SUV_MEDIAN), 0.35))
    # HPV: younger, more nodes, higher uptake -> more often positive
    logit = -0.3 - 0.08 * (age - 62) + 0.7 * (n_nodes - 1.8) + 0.15 * (tumour_suv - GTVP_SUV_MEDIAN)
    hpv_prob = float(1 / (1 + np.exp(-logit)))
    hpv = int(rng.uniform() < hpv_prob)
    return Patient(pid, centre, top, (cx, cy), tc, tr, tumour_suv, nodes,
                   float(rng.uniform(7, 11)), age, hpv_prob, hpv)


def render_patient(p: Patient, spec: SizeSpec, ct_origin, pet_origin, rng: np.random.Generator,
            pet_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CT (HU, int16), PET (SUV, float32) and label (uint8) arrays in (z, y, x) order."""
    zyx = _coords(spec.ct_size, spec.ct_spacing, ct_origin)
    parts = p.body(zyx)
    ct = np.full(parts["body"].shape, -1000.0, dtype=np.float32)
    ct[parts["body"]] = 40.0
    ct[parts["fat"]] = -100.0
    ct[parts["brain"]] = 35.0
    ct[parts["bone"]] = 700.0
    ct[parts["airway"]] = -950.0
    gtvp, gtvn = p.lesions(zyx)
    # lesions are soft tissue (slightly enhancing tumour, nodes near muscle density) wherever they sit
    ct[gtvp] = 60.0
    ct[gtvn] = 45.0
    ct += rng.normal(0, 12, size=ct.shape).astype(np.float32)
    label = np.zeros(ct.shape, dtype=np.uint8)
    label[gtvn] = 2
    label[gtvp] = 1
    del parts, gtvp, gtvn

    zyx = _coords(spec.pet_size, spec.pet_spacing, pet_origin)
    parts = p.body(zyx)
    pet = np.full(parts["body"].shape, 0.02, dtype=np.float32)
    pet[parts["body"]] = 1.0
    pet[parts["brain"]] = p.brain_suv
    gtvp, gtvn = p.lesions(zyx)
    pet[gtvp] = p.tumour_suv
    for c, r, suv in p.nodes:
        pet[_ellipsoid(zyx, c, r)] = suv
    pet = ndimage.gaussian_filter(pet, sigma=6.0 / (2.355 * np.asarray(spec.pet_spacing[::-1])))
    pet = np.clip(pet * pet_scale + rng.normal(0, 0.05, size=pet.shape), 0, None).astype(np.float32)
    return np.round(ct).astype(np.int16), pet, label


def image_on_grid(arr: np.ndarray, spacing, origin) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    return img


def clinical_row(pid: str, centre: str, p: Patient, weight: float, rng: np.random.Generator) -> dict:
    def maybe(v, p_missing=0.08):
        return np.nan if rng.uniform() < p_missing else v

    return {
        "PatientID": pid, "CenterID": CENTRES.get(centre, 9), "Age": round(p.age),
        "Gender": int(rng.uniform() < 0.8), "Tobacco Consumption": maybe(int(rng.uniform() < 0.5)),
        "Alcohol Consumption": maybe(int(rng.uniform() < 0.4)),
        "Performance Status": maybe(int(rng.choice([0, 0, 1, 1, 2]))),
        "Treatment": int(rng.uniform() < 0.7), "M-stage": "M1" if rng.uniform() < 0.04 else "M0",
        "T-stage": f"T{int(np.clip(round(np.prod(p.tumour_r) ** (1/3) / 6), 1, 4))}",
        "N-stage": f"N{min(3, len(p.nodes))}",
        "HPV Status": maybe(p.hpv, 0.1), "Weight": round(weight, 1),
    }


def draw_outcomes(clinical: pd.DataFrame, orc: pd.DataFrame, rng: np.random.Generator) -> None:
    z = lambda v: (v - v.mean()) / (v.std(ddof=0) + 1e-9)  # noqa: E731
    risk = (0.8 * z(np.log(orc["tumour_volume_ml"])) + 0.6 * z(orc["tumour_suv"])
            - 0.9 * orc["hpv"] + 0.3 * z(orc["age"]))
    orc["true_risk"] = risk
    event_time = rng.exponential(1.0 / (np.exp(risk) / 900.0))
    censor = rng.uniform(300, 2500, size=len(risk))
    clinical["RFS"] = np.round(np.minimum(event_time, censor)).astype(int).clip(1)
    clinical["Relapse"] = (event_time <= censor).astype(int)
