"""Radiomics seconds per patient: the cropped pipeline vs naive PyRadiomics on uncropped images.

Writes a realistic-size synthetic release (CT 512x512x150 at 0.98x0.98x3 mm, PET 200x200x150 at
4x4x3 mm), uses its ground-truth label maps as masks, and times in one run:

* ``hecktor_nnunet.prognosis.radiomics.extract_features`` (crop to the labels' box + margin, PET
  resampled onto the cropped CT grid only, PyRadiomics per region and modality, PET descriptors);
* the naive way: PET resampled onto the whole CT grid, PyRadiomics on the uncropped images with the
  same params files, regions and modalities (no PET descriptors).

Both modalities and all regions (GTVp, GTVn, GTV). Prints the ratio and projects the time for the
1123-study HECKTOR 2025 cohort on 2 and 16 cores (linear scaling over patients assumed).

Usage: ``python benchmarks/radiomics_extraction.py [--cases 2] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.atomic_io import write_json
from hecktor_nnunet.geometry import Grid, resample
from hecktor_nnunet.prognosis.radiomics import (DEFAULT_PARAMS, REGION_LABELS, extract_features,
                                                radiomics_extractor)
from hecktor_nnunet.release import read_release
from hecktor_nnunet.synth import generate_release

COHORT = 1123


def naive_patient(ct_path: Path, pet_path: Path, mask_path: Path) -> int:
    """PyRadiomics on the whole CT grid; returns the number of features computed."""
    ct = sitk.Cast(sitk.ReadImage(str(ct_path)), sitk.sitkFloat32)
    pet = resample(sitk.ReadImage(str(pet_path), sitk.sitkFloat32), Grid.of(ct), "linear", 0.0, sitk.sitkFloat32)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
    n = 0
    for region, labels in REGION_LABELS.items():
        mask = sitk.GetImageFromArray(np.isin(label, labels).astype(np.uint8))
        mask.CopyInformation(ct)
        if not sitk.GetArrayViewFromImage(mask).any():
            continue
        for modality, image in (("PET", pet), ("CT", ct)):
            try:
                n += len(radiomics_extractor(str(DEFAULT_PARAMS[modality])).execute(image, mask, label=1))
            except ValueError:  # e.g. nothing left after CT resegmentation (the pipeline reports it)
                pass
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2)
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

    for modality in ("PET", "CT"):  # build the extractors outside the timings
        radiomics_extractor(str(DEFAULT_PARAMS[modality]))
    t0 = time.perf_counter()
    df = extract_features(release, masks, work / "features.parquet", workers=1, quiet=True)
    ours = (time.perf_counter() - t0) / len(cases)
    t0 = time.perf_counter()
    n_naive = sum(naive_patient(c.ct, c.pet, masks / c.label.name) for c in cases)
    naive = (time.perf_counter() - t0) / len(cases)

    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU(s), {platform.processor() or platform.platform()}",
        "cases": len(cases), "size": "realistic (CT 512x512x150 @0.98x0.98x3 mm, PET 200x200x150 @4x4x3 mm)",
        "regions": list(REGION_LABELS), "modalities": ["PET", "CT"],
        "columns": int(df.shape[1] - 1), "naive_features": n_naive // len(cases),
        "seconds_per_patient": round(ours, 2), "naive_seconds_per_patient": round(naive, 2),
        "speedup": round(naive / ours, 2),
        "projection_hours_1123": {f"{cores}_cores": round(COHORT * ours / cores / 3600, 2) for cores in (2, 16)},
        "naive_projection_hours_1123": {f"{cores}_cores": round(COHORT * naive / cores / 3600, 2)
                                        for cores in (2, 16)},
    }
    print(json.dumps(result, indent=2))
    write_json(result, a.out)
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
