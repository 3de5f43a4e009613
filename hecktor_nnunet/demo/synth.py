"""A synthetic HECKTOR release that looks like the real one to every reader.

CT (HU) and PET (SUV) of a head-and-neck phantom on different grids sharing one physical frame,
a primary tumour (label 1) and 0-4 lymph nodes (label 2) on the CT grid, the 2025 (or 2022)
folder layout and CSVs, and outcomes drawn from a known model:

* HPV status ~ logistic(age, number of nodes, tumour uptake)
* RFS ~ exponential with log-hazard ``true_risk = 0.8 z(log tumour volume) + 0.6 z(SUVmax)
  - 0.9 HPV + 0.3 z(age)``, uniform censoring.

The true risk and HPV probability go to a separate oracle CSV (not in the release) so tests can
compare a learned model with the best achievable C-index. Deterministic given ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from hecktor_nnunet.io.atomic_io import write_table
from hecktor_nnunet.io.image_files import write_image

log = logging.getLogger(__name__)

CENTRES = {"CHUM": 1, "CHUP": 2, "CHUS": 3, "MDA": 5, "HGJ": 6, "HMR": 7, "USZ": 8}
BAD_KINDS = ("pet_bqml", "empty_gtvn", "label_3", "missing_pet", "label_grid", "nan_ct", "no_overlap")
F18_HALF_LIFE_MIN = 109.77
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


def _render(p: Patient, spec: SizeSpec, ct_origin, pet_origin, rng: np.random.Generator,
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


def _image(arr: np.ndarray, spacing, origin) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    return img


def _assign_bad(ids: list[str], bad: dict[str, int] | None) -> dict[str, str]:
    """Spread the requested bad kinds over distinct patients, from the end of the list."""
    out: dict[str, str] = {}
    if not bad:
        return out
    pool = list(reversed(ids))
    for kind, n in bad.items():
        if kind not in BAD_KINDS:
            raise ValueError(f"unknown bad-case kind {kind!r}; choose from {BAD_KINDS}")
        for _ in range(n):
            if not pool:
                raise ValueError("more bad cases requested than patients")
            out[pool.pop(0)] = kind
    return out


def generate_release(
    out: str | Path,
    n_cases: int = 12,
    *,
    size: str = "tiny",
    layout: str = "2025",
    seed: int = 0,
    centres: Iterable[str] | None = None,
    bad: dict[str, int] | None = None,
    n_unlabelled: int = 0,
    oracle: str | Path | None = None,
    oracle_labels: str | Path | None = None,
    quiet: bool = True,
) -> pd.DataFrame:
    """Write a synthetic release and return the oracle table (true risk, HPV probability, bad kind).

    Parameters
    ----------
    out : path
        Release folder to create (must not exist or be empty).
    n_cases : int
        Labelled patients (Task 1 / imagesTr).
    size : {"tiny", "small", "realistic"}
        Grid preset; realistic is ~512x512x150 CT, 200x200x150 PET.
    layout : {"2025", "2022"}
    seed : int
        Everything drawn is a function of the seed.
    centres : iterable of str, optional
        Centre codes used as id prefixes (default: the 7 training centres).
    bad : dict, optional
        ``{kind: count}`` of deliberately broken cases, kinds in :data:`BAD_KINDS`.
    n_unlabelled : int
        Extra patients without labels (only in Task 2/3, or imagesTs for 2022).
    oracle : path, optional
        Where the oracle CSV goes (default ``<out>_oracle.csv``, outside the release).
    oracle_labels : path, optional
        A folder (outside the release) that receives the true label map ``<ID>.nii.gz`` of every
        patient, labelled or not: radiomics from true masks for patients the release gives no label.
    """
    from tqdm.auto import tqdm

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    if layout not in ("2025", "2022"):
        raise ValueError(f"layout must be '2025' or '2022', got {layout!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    if oracle_labels is not None and out.resolve() in (Path(oracle_labels).resolve(), *Path(oracle_labels).resolve().parents):
        raise ValueError(f"oracle_labels {oracle_labels} must lie outside the release {out}")
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    centres = list(centres or CENTRES)
    counters = {c: 0 for c in centres}
    ids = []
    for i in range(n_cases + n_unlabelled):
        c = centres[i % len(centres)]
        counters[c] += 1
        ids.append(f"{c}-{counters[c]:03d}")
    labelled = set(ids[:n_cases])
    bad_of = _assign_bad(ids[:n_cases], bad)
    ct_fov = np.asarray(spec.ct_size) * np.asarray(spec.ct_spacing)
    rows, oracle_rows, suv_rows = [], [], []
    for pid in tqdm(ids, desc="synthetic cases", disable=quiet):
        centre = pid.split("-")[0]
        prng = np.random.default_rng([seed, ids.index(pid)])
        ct_origin = np.array([-ct_fov[0] / 2, -ct_fov[1] / 2, -ct_fov[2]]) + spec.ct_spacing[0] / 2
        ct_origin[:2] += prng.normal(0, 3, size=2)
        pet_fov = np.asarray(spec.pet_size) * np.asarray(spec.pet_spacing)
        pet_origin = np.array([-pet_fov[0] / 2, -pet_fov[1] / 2, -pet_fov[2] + prng.uniform(-15, 20)])
        pet_origin += prng.normal(0, 4, size=3)
        p = draw_patient(pid, centre, prng, fov_top=0.0)
        kind = bad_of.get(pid)
        if kind == "empty_gtvn":
            p.nodes = []
        scanner = {"CHUP": 1.1, "MDA": 0.9, "USZ": 1.05}.get(centre, 1.0)
        ct, pet, label = _render(p, spec, ct_origin, pet_origin, prng, scanner)
        tumour_ml = 4 / 3 * np.pi * np.prod(p.tumour_r) / 1000
        weight = float(np.clip(prng.normal(78, 14), 45, 130))
        if kind == "pet_bqml":
            dose_mbq, delay_min = float(prng.uniform(250, 400)), float(prng.uniform(55, 75))
            decay = 2 ** (-delay_min / F18_HALF_LIFE_MIN)
            pet = pet * (dose_mbq * 1e6 * decay) / (weight * 1000)   # SUV -> Bq/mL
            suv_rows.append({"PatientID": pid, "Weight": weight, "InjectedDose_MBq": dose_mbq,
                             "Delay_min": delay_min})
        if kind == "label_3":
            label[label == 1] = np.where(prng.uniform(size=(label == 1).sum()) < 0.3, 3, 1)
        if kind == "nan_ct":
            ct = ct.astype(np.float32)
            ct[ct.shape[0] // 2, :4, :4] = np.nan
        if kind == "no_overlap":
            pet_origin = pet_origin + np.array([0, 0, 2000.0])
        ct_img = _image(ct, spec.ct_spacing, ct_origin)
        pet_img = _image(pet, spec.pet_spacing, pet_origin)
        lab_img = _image(label, spec.ct_spacing, ct_origin)
        if kind == "label_grid":
            coarse = [s * 2 for s in spec.ct_spacing]
            size2 = [max(1, n // 2) for n in spec.ct_size]
            ref = sitk.Image(size2, sitk.sitkUInt8)
            ref.SetSpacing(coarse)
            ref.SetOrigin(tuple(ct_origin + np.asarray(spec.ct_spacing) / 2))
            lab_img = sitk.Resample(lab_img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        if oracle_labels is not None:
            write_image(lab_img, Path(oracle_labels) / f"{pid}.nii.gz")
        # SimpleITK's NIfTI reader turns NaN into 0, so a NaN CT is only visible in MetaImage
        _write_patient(out, layout, pid, pid in labelled, ct_img, pet_img, lab_img,
                       write_pet=kind != "missing_pet", ct_suffix=".mha" if kind == "nan_ct" else ".nii.gz")
        rows.append(clinical_row(pid, centre, p, weight, prng))
        oracle_rows.append({"PatientID": pid, "tumour_volume_ml": tumour_ml, "tumour_suv": p.tumour_suv,
                            "n_nodes": len(p.nodes), "age": p.age, "hpv": p.hpv, "hpv_prob": p.hpv_prob,
                            "labelled": pid in labelled, "bad": kind or ""})
    clinical = pd.DataFrame(rows)
    orc = pd.DataFrame(oracle_rows)
    draw_outcomes(clinical, orc, rng)
    _write_tables(out, layout, clinical, labelled)
    oracle = Path(oracle) if oracle else out.parent / f"{out.name}_oracle.csv"
    write_table(orc, oracle)
    if suv_rows:
        write_table(pd.DataFrame(suv_rows), out.parent / f"{out.name}_suv_factors.csv")
    return orc


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


def _write_patient(out: Path, layout: str, pid: str, labelled: bool, ct, pet, lab, write_pet: bool,
                   ct_suffix: str = ".nii.gz") -> None:
    if layout == "2025":
        tasks = ["Task 1", "Task 2", "Task 3"] if labelled else ["Task 2", "Task 3"]
        for task in tasks:
            d = out / task / pid
            write_image(ct, d / f"{pid}__CT{ct_suffix}")
            if write_pet:
                write_image(pet, d / f"{pid}__PT.nii.gz")
            if task == "Task 1":
                write_image(lab, d / f"{pid}.nii.gz")
    else:
        sub = "imagesTr" if labelled else "imagesTs"
        write_image(ct, out / sub / f"{pid}__CT{ct_suffix}")
        if write_pet:
            write_image(pet, out / sub / f"{pid}__PT.nii.gz")
        if labelled:
            write_image(lab, out / "labelsTr" / f"{pid}.nii.gz")


def _write_tables(out: Path, layout: str, clinical: pd.DataFrame, labelled: set[str]) -> None:
    if layout == "2025":
        cols = ["PatientID", "CenterID", "Age", "Gender", "Tobacco Consumption", "Alcohol Consumption",
                "Performance Status", "Treatment", "M-stage", "T-stage", "N-stage", "HPV Status",
                "Relapse", "RFS"]
        t1 = clinical[clinical["PatientID"].isin(labelled)]
        write_table(t1[cols[:9] + ["T-stage", "N-stage"]], out / "Task 1" / "HECKTOR_2025_Training_Task_1.csv")
        write_table(clinical[cols], out / "Task 2" / "HECKTOR_2025_Training_Task_2.csv")
        write_table(clinical[cols[:12]], out / "Task 3" / "HECKTOR_2025_Training_Task_3.csv")
    else:
        c = clinical.copy()
        info = pd.DataFrame({
            "PatientID": c["PatientID"], "CenterID": c["CenterID"],
            "Gender": c["Gender"].map({1: "M", 0: "F"}), "Age": c["Age"], "Weight": c["Weight"],
            "Tobacco": c["Tobacco Consumption"], "Alcohol": c["Alcohol Consumption"],
            "Performance status": c["Performance Status"], "HPV status (0=-, 1=+)": c["HPV Status"],
            "Surgery": 0, "Chemotherapy": c["Treatment"]})
        write_table(info, out / "hecktor2022_clinical_info_training.csv")
        write_table(c[["PatientID", "Relapse", "RFS"]], out / "hecktor2022_endpoint_training.csv")
