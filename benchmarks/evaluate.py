"""Seconds per realistic-size case (CT grid ~512x512x150) for the Task 1 metrics, HD95 included.

Usage: python benchmarks/evaluate.py [--cases 2] [--workers 1]
Writes benchmarks/results/evaluate.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.evaluation.segmentation import evaluate_segmentation
from hecktor_nnunet.io.label_maps import find_truth_labels
from hecktor_nnunet.metrics.segmentation import hd95, match_lesions, patient_metrics
from hecktor_nnunet.demo.synth import generate_release


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        generate_release(tmp / "rel", args.cases, size="realistic", seed=0)
        t_gen = time.perf_counter() - t0
        labels = find_truth_labels(tmp / "rel")
        (tmp / "pred").mkdir()
        timings = {"read": [], "metrics": [], "hd95": [], "lesions": []}
        size = None
        for pid, path in labels.items():
            t0 = time.perf_counter()
            img = sitk.ReadImage(str(path))
            truth = sitk.GetArrayFromImage(img)
            timings["read"].append(time.perf_counter() - t0)
            size = img.GetSize()
            pred = np.roll(truth, 2, axis=2)          # 2-voxel shift: realistic disagreement
            out = sitk.GetImageFromArray(pred)
            out.CopyInformation(img)
            sitk.WriteImage(out, str(tmp / "pred" / f"{pid}.nii.gz"))
            spacing = img.GetSpacing()[::-1]
            t0 = time.perf_counter()
            patient_metrics(truth, pred, spacing)
            timings["metrics"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hd95(truth == 1, pred == 1, spacing)
            hd95(truth == 2, pred == 2, spacing)
            timings["hd95"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            match_lesions(truth == 2, pred == 2)
            timings["lesions"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate_segmentation(tmp / "rel", tmp / "pred", tmp / "eval", workers=args.workers, n_boot=1000, quiet=True)
        t_total = time.perf_counter() - t0
    res = {
        "cases": args.cases, "ct_size": list(size), "workers": args.workers,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "generate_s": round(t_gen, 2),
        **{f"{k}_s_per_case": round(float(np.mean(v)), 3) for k, v in timings.items()},
        "evaluate_segmentation_total_s": round(t_total, 2),
        "evaluate_segmentation_s_per_case": round(t_total / args.cases, 2),
    }
    print(json.dumps(res, indent=2))
    write_json(res, Path(__file__).parent / "results" / "evaluate.json")


if __name__ == "__main__":
    main()
