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

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hecktor_nnunet.demo.phantom import (CENTRES, SIZES, Patient, SizeSpec, clinical_row, draw_outcomes,
                                         draw_patient, image_on_grid, render_patient)
from hecktor_nnunet.io.atomic_io import write_table
from hecktor_nnunet.io.image_files import write_image

BAD_KINDS = ("pet_bqml", "empty_gtvn", "label_3", "missing_pet", "label_grid", "nan_ct", "no_overlap")
F18_HALF_LIFE_MIN = 109.77


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

    out = Path(out)
    _check_destination(out, size, layout, oracle_labels)
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    ids = _patient_ids(n_cases + n_unlabelled, list(centres or CENTRES))
    labelled = set(ids[:n_cases])
    bad_of = _assign_bad(ids[:n_cases], bad)
    rows, oracle_rows, suv_rows = [], [], []
    for index, pid in enumerate(tqdm(ids, desc="synthetic cases", disable=quiet)):
        centre = pid.split("-")[0]
        prng = np.random.default_rng([seed, index])
        kind = bad_of.get(pid)
        p, weight, images, suv_row = _patient_images(pid, centre, spec, kind, prng)
        ct_img, pet_img, lab_img = images
        if suv_row:
            suv_rows.append(suv_row)
        if oracle_labels is not None:
            write_image(lab_img, Path(oracle_labels) / f"{pid}.nii.gz")
        # SimpleITK's NIfTI reader turns NaN into 0, so a NaN CT is only visible in MetaImage
        _write_patient(out, layout, pid, pid in labelled, ct_img, pet_img, lab_img,
                       write_pet=kind != "missing_pet", ct_suffix=".mha" if kind == "nan_ct" else ".nii.gz")
        rows.append(clinical_row(pid, centre, p, weight, prng))
        oracle_rows.append({"PatientID": pid, "tumour_volume_ml": 4 / 3 * np.pi * np.prod(p.tumour_r) / 1000,
                            "tumour_suv": p.tumour_suv, "n_nodes": len(p.nodes), "age": p.age, "hpv": p.hpv,
                            "hpv_prob": p.hpv_prob, "labelled": pid in labelled, "bad": kind or ""})
    clinical = pd.DataFrame(rows)
    orc = pd.DataFrame(oracle_rows)
    draw_outcomes(clinical, orc, rng)
    _write_tables(out, layout, clinical, labelled)
    oracle = Path(oracle) if oracle else out.parent / f"{out.name}_oracle.csv"
    write_table(orc, oracle)
    if suv_rows:
        write_table(pd.DataFrame(suv_rows), out.parent / f"{out.name}_suv_factors.csv")
    return orc


def _check_destination(out: Path, size: str, layout: str, oracle_labels: str | Path | None) -> None:
    """Refuse an unknown size or layout, a non-empty release folder, or true labels inside the release."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    if layout not in ("2025", "2022"):
        raise ValueError(f"layout must be '2025' or '2022', got {layout!r}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    if oracle_labels is not None and out.resolve() in (Path(oracle_labels).resolve(), *Path(oracle_labels).resolve().parents):
        raise ValueError(f"oracle_labels {oracle_labels} must lie outside the release {out}")


def _patient_ids(n: int, centres: list[str]) -> list[str]:
    """``<centre>-<NNN>`` ids, the centres taken in turn."""
    counters = {c: 0 for c in centres}
    ids = []
    for i in range(n):
        c = centres[i % len(centres)]
        counters[c] += 1
        ids.append(f"{c}-{counters[c]:03d}")
    return ids


def _patient_images(pid: str, centre: str, spec: SizeSpec, kind: str | None, prng: np.random.Generator
                    ) -> tuple[Patient, float, tuple[sitk.Image, sitk.Image, sitk.Image], dict | None]:
    """One patient drawn and rendered (CT, PET, label images), broken as ``kind`` says.

    Returns the patient, the body weight (kg), the images and, for ``pet_bqml``, the row of the SUV
    factors table. The draws from ``prng`` come in a fixed order: the release is a function of the seed.
    """
    ct_fov = np.asarray(spec.ct_size) * np.asarray(spec.ct_spacing)
    ct_origin = np.array([-ct_fov[0] / 2, -ct_fov[1] / 2, -ct_fov[2]]) + spec.ct_spacing[0] / 2
    ct_origin[:2] += prng.normal(0, 3, size=2)
    pet_fov = np.asarray(spec.pet_size) * np.asarray(spec.pet_spacing)
    pet_origin = np.array([-pet_fov[0] / 2, -pet_fov[1] / 2, -pet_fov[2] + prng.uniform(-15, 20)])
    pet_origin += prng.normal(0, 4, size=3)
    p = draw_patient(pid, centre, prng, fov_top=0.0)
    if kind == "empty_gtvn":
        p.nodes = []
    scanner = {"CHUP": 1.1, "MDA": 0.9, "USZ": 1.05}.get(centre, 1.0)
    ct, pet, label = render_patient(p, spec, ct_origin, pet_origin, prng, scanner)
    weight = float(np.clip(prng.normal(78, 14), 45, 130))
    suv_row = None
    if kind == "pet_bqml":
        dose_mbq, delay_min = float(prng.uniform(250, 400)), float(prng.uniform(55, 75))
        decay = 2 ** (-delay_min / F18_HALF_LIFE_MIN)
        pet = pet * (dose_mbq * 1e6 * decay) / (weight * 1000)   # SUV -> Bq/mL
        suv_row = {"PatientID": pid, "Weight": weight, "InjectedDose_MBq": dose_mbq, "Delay_min": delay_min}
    if kind == "label_3":
        label[label == 1] = np.where(prng.uniform(size=(label == 1).sum()) < 0.3, 3, 1)
    if kind == "nan_ct":
        ct = ct.astype(np.float32)
        ct[ct.shape[0] // 2, :4, :4] = np.nan
    if kind == "no_overlap":
        pet_origin = pet_origin + np.array([0, 0, 2000.0])
    ct_img = image_on_grid(ct, spec.ct_spacing, ct_origin)
    pet_img = image_on_grid(pet, spec.pet_spacing, pet_origin)
    lab_img = image_on_grid(label, spec.ct_spacing, ct_origin)
    if kind == "label_grid":
        lab_img = _coarser_label_grid(lab_img, spec, ct_origin)
    return p, weight, (ct_img, pet_img, lab_img), suv_row


def _coarser_label_grid(lab_img: sitk.Image, spec: SizeSpec, ct_origin: np.ndarray) -> sitk.Image:
    """The label map resampled onto a grid of twice the CT spacing (the ``label_grid`` fault)."""
    coarse = [s * 2 for s in spec.ct_spacing]
    size2 = [max(1, n // 2) for n in spec.ct_size]
    ref = sitk.Image(size2, sitk.sitkUInt8)
    ref.SetSpacing(coarse)
    ref.SetOrigin(tuple(ct_origin + np.asarray(spec.ct_spacing) / 2))
    return sitk.Resample(lab_img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


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
