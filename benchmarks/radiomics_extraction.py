"""Radiomics seconds per patient: ours, PyRadiomics the plain way, and the floor, in interleaved rounds.

Writes a realistic-size synthetic release (CT 512x512x150 at 0.98x0.98x3 mm, PET 200x200x150 at
4x4x3 mm), uses its ground-truth label maps as masks, and times, round after round (the order of
the three rotates each round; the figures are medians over rounds):

* ours: ``hecktor_nnunet.prognosis.radiomics.extract_features`` (crop to the labels' box, PET
  resampled on the crop only, PyRadiomics per region and modality, PET descriptors, table written);
* naive: PyRadiomics the plain way: the PET resampled onto the whole CT grid, one whole-grid mask
  per region, PyRadiomics on the uncropped images with the same params files (no PET descriptors);
* floor: reading the CT, PET and label files, plus PyRadiomics on images already cropped to each
  region's box (and the padding PyRadiomics keeps), prepared beforehand and untimed.

All three compute GTVp, GTVn and GTV on PET and CT. The run also checks that ours and the plain
run give the same values (largest relative difference over every feature), records the CPU
seconds beside the wall-clock ones and the load average (the machine may be shared) and projects
the time of the 1123-study HECKTOR 2025 cohort on 2 and 16 cores (linear scaling over patients
assumed).

Usage: ``python benchmarks/radiomics_extraction.py [--cases 2] [--rounds 5] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.geometry import Grid, IndexBox, bounding_box, crop, resample
from hecktor_nnunet.prognosis.radiomics import extract_features
from hecktor_nnunet.prognosis.radiomics_settings import DEFAULT_PARAMS, MODALITIES, REGION_LABELS, radiomics_extractor
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.demo.synth import generate_release

COHORT = 1123


def _execute(modality: str, image: sitk.Image, mask: sitk.Image) -> dict[str, float]:
    try:
        result = radiomics_extractor(str(DEFAULT_PARAMS[modality])).execute(image, mask, label=1)
    except ValueError:  # e.g. nothing left after CT resegmentation (the pipeline reports it)
        return {}
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def naive_patient(ct_path: Path, pet_path: Path, mask_path: Path) -> dict[str, float]:
    """PyRadiomics on the whole CT grid; returns ``{<modality>_<region>_<feature>: value}``."""
    ct = sitk.ReadImage(str(ct_path))
    pet = resample(sitk.ReadImage(str(pet_path), sitk.sitkFloat32), Grid.of(ct), "linear", 0.0, sitk.sitkFloat32)
    label_img = sitk.ReadImage(str(mask_path))
    label = sitk.GetArrayViewFromImage(label_img)
    out = {}
    for region, labels in REGION_LABELS.items():
        region_mask = np.isin(label, labels)
        if not region_mask.any():
            continue
        mask = sitk.GetImageFromArray(region_mask.astype(np.uint8))
        mask.CopyInformation(label_img)
        for modality, image in (("PET", pet), ("CT", ct)):
            out.update({f"{modality}_{region}_{k}": v for k, v in _execute(modality, image, mask).items()})
    return out


def floor_inputs(ct_path: Path, pet_path: Path, mask_path: Path) -> list[tuple[str, sitk.Image, sitk.Image]]:
    """``(modality, image, mask)`` per region, cropped to the region's box plus PyRadiomics' padding."""
    ct = sitk.ReadImage(str(ct_path))
    pet = resample(sitk.ReadImage(str(pet_path), sitk.sitkFloat32), Grid.of(ct), "linear", 0.0, sitk.sitkFloat32)
    label_img = sitk.ReadImage(str(mask_path))
    label = sitk.GetArrayViewFromImage(label_img)
    spacing = np.asarray(ct.GetSpacing())
    inputs = []
    for labels in REGION_LABELS.values():
        region = np.isin(label, labels)
        box = bounding_box(region)
        if box is None:
            continue
        mask = sitk.GetImageFromArray(region.astype(np.uint8))
        mask.CopyInformation(label_img)
        for modality, image in (("PET", pet), ("CT", ct)):
            setting = radiomics_extractor(str(DEFAULT_PARAMS[modality])).settings
            step = np.maximum(np.asarray(setting.get("resampledPixelSpacing") or spacing, dtype=float), spacing)
            pad = np.ceil(setting.get("padDistance", 5) * step / spacing).astype(int) + 1
            region_box = IndexBox.from_bounds(np.asarray(box.start) - pad, np.asarray(box.stop) + pad).intersect(
                IndexBox.full(Grid.of(ct)))
            inputs.append((modality, crop(image, region_box), crop(mask, region_box)))
    return inputs


def floor_patient(ct_path: Path, pet_path: Path, mask_path: Path, inputs) -> int:
    """Read the three files, then PyRadiomics on the prepared crops; returns the number of features."""
    sitk.ReadImage(str(ct_path))
    sitk.ReadImage(str(pet_path), sitk.sitkFloat32)
    sitk.ReadImage(str(mask_path))
    return sum(len(_execute(modality, image, mask)) for modality, image, mask in inputs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    ap.add_argument("--workdir", help="keep the synthetic release here (default: a temporary folder)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "radiomics.json"))
    a = ap.parse_args(argv)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_radiomics_"))
    release = work / "release"
    t0 = time.perf_counter()
    if not release.exists():
        generate_release(release, a.cases, size="realistic", seed=5)
    print(f"synthetic release: {time.perf_counter() - t0:.1f} s")
    masks = work / "masks"
    masks.mkdir(exist_ok=True)
    cases = [c for c in read_release(release).cases if c.label is not None]
    for c in cases:
        shutil.copy(c.label, masks / c.label.name)

    for modality in MODALITIES:  # build the extractors outside the timings
        radiomics_extractor(str(DEFAULT_PARAMS[modality]))
    inputs = {c.patient_id: floor_inputs(c.ct, c.pet, masks / c.label.name) for c in cases}
    state: dict = {}

    def ours() -> None:
        state["ours"] = extract_features(release, masks, work / "features.parquet", workers=1, quiet=True)

    def naive() -> None:
        state["naive"] = {c.patient_id: naive_patient(c.ct, c.pet, masks / c.label.name) for c in cases}

    def floor() -> None:
        state["floor"] = sum(floor_patient(c.ct, c.pet, masks / c.label.name, inputs[c.patient_id]) for c in cases)

    methods = {"ours": ours, "naive": naive, "floor": floor}
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    load = [os.getloadavg()[0]]
    for r in range(a.rounds):
        names = list(methods)
        for name in names[r % 3:] + names[:r % 3]:
            t0, c0 = time.perf_counter(), time.process_time()
            methods[name]()
            times[name].append((time.perf_counter() - t0) / len(cases))
            cpu[name].append((time.process_time() - c0) / len(cases))
        load.append(os.getloadavg()[0])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
              + f" (load {load[-1]:.2f})")

    df = state["ours"].set_index("PatientID")
    worst = 0.0
    for pid, plain in state["naive"].items():
        cols = list(plain)
        ours_v, plain_v = df.loc[pid, cols].to_numpy(float), np.array([plain[c] for c in cols])
        worst = max(worst, float(np.max(np.abs(ours_v - plain_v) / np.maximum(np.abs(plain_v), 1e-12))))
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s), {platform.processor() or platform.platform()}",
        "cases": len(cases), "rounds": a.rounds,
        "size": "realistic (CT 512x512x150 @0.98x0.98x3 mm, PET 200x200x150 @4x4x3 mm)",
        "regions": list(REGION_LABELS), "modalities": list(MODALITIES),
        "columns": int(df.shape[1]), "naive_features": sum(len(v) for v in state["naive"].values()) // len(cases),
        "seconds_per_patient": round(med["ours"], 3), "naive_seconds_per_patient": round(med["naive"], 3),
        "floor_seconds_per_patient": round(med["floor"], 3),
        "ratio_to_floor": round(med["ours"] / med["floor"], 3),
        "speedup_vs_naive": round(med["naive"] / med["ours"], 2),
        "cpu_seconds_per_patient": {k: round(v, 3) for k, v in med_cpu.items()},
        "cpu_ratio_to_floor": round(med_cpu["ours"] / med_cpu["floor"], 3),
        "max_relative_difference_vs_plain": worst,
        "rounds_seconds_per_patient": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "load_average_1min": {"start": round(load[0], 2), "end": round(load[-1], 2),
                              "median": round(statistics.median(load), 2)},
        "projection_hours_1123": {f"{cores}_cores": round(COHORT * med["ours"] / cores / 3600, 2) for cores in (2, 16)},
        "naive_projection_hours_1123": {f"{cores}_cores": round(COHORT * med["naive"] / cores / 3600, 2)
                                        for cores in (2, 16)},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rounds_seconds_per_patient"}, indent=2))
    write_json(result, a.out)
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
