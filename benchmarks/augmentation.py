"""Data-augmentation throughput: each HECKTOR variant's training pipeline vs stock nnUNetTrainer.

Builds a synthetic release, converts and preprocesses it with nnU-Net (in a temporary folder
unless --work is given), then for every trainer with its own data pipeline draws batches from its
real training loader (nnU-Net's single-threaded augmenter, so the number is per DA worker) and
reports batches/s and the ratio to stock. Rounds are interleaved so drifting machine load hits all
trainers alike. Target: >= 0.9x of stock.

    python benchmarks/augmentation.py --size tiny --cases 6 --batches 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET_ID = 590
PLANS_OF_PLANNER = {"ExperimentPlanner": "nnUNetPlans", "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
                    "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans"}
VARIANTS = ("nnUNetTrainerHecktorPETMisreg", "nnUNetTrainerHecktorPETIntensity", "nnUNetTrainerHecktorPETAug",
            "nnUNetTrainerHecktorMirrorLR", "nnUNetTrainerHecktorNodeSampling", "nnUNetTrainerHecktorFocalPETAug",
            "nnUNetTrainerHecktorFocalTverskyPETAugNodes")


def nnunet_env(work: Path) -> dict[str, str]:
    """nnU-Net folders under ``work`` and the HECKTOR trainers folder, set in this process too."""
    from hecktor_nnunet.training.registry import TRAINERS_DIR

    env = {"nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results"), "nnUNet_extTrainer": str(TRAINERS_DIR),
           "nnUNet_def_n_proc": "1"}
    os.environ.update(env)
    return {**os.environ, **env}


def build_dataset(work: Path, size: str, cases: int, spacing: float | None = None,
                  planners: tuple[str, ...] = ("ExperimentPlanner",)) -> str:
    """Synthetic release -> converted -> planned + preprocessed (3d_fullres); returns the dataset name."""
    from hecktor_nnunet.dataset_conversion.convert import convert_release
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
    from hecktor_nnunet.synth import generate_release

    env = nnunet_env(work)
    name = f"Dataset{DATASET_ID}_Bench"
    if not (work / "raw" / name / "dataset.json").is_file():
        generate_release(work / "release", cases, size=size, seed=7)
        settings = ConversionSettings(spacing=(spacing,) * 3 if spacing else None)
        convert_release(work / "release", DATASET_ID, name="Bench", raw_dir=work / "raw", settings=settings,
                        quiet=True)
    bin_dir = Path(sys.executable).parent
    for planner in planners:
        plans = PLANS_OF_PLANNER[planner]
        if (work / "preprocessed" / name / f"{plans}.json").is_file():
            continue
        subprocess.run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "3d_fullres",
                        "-np", "2", "-pl", planner], env={**env, "nnUNet_n_proc_DA": "1"}, check=True,
                       capture_output=True)
    return name


def training_loader(trainer_name: str):
    """The real training loader (single-threaded augmenter) of a trainer on the benchmark dataset."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    os.environ["nnUNet_n_proc_DA"] = "0"
    t = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, trainer_name, device=torch.device("cpu"))
    t._set_batch_size_and_oversample()
    train, _ = t.get_dataloaders()
    return train


def time_batches(loader, n: int) -> float:
    """Batches per second over ``n`` batches (after one warm-up batch)."""
    next(loader)
    t0 = time.perf_counter()
    for _ in range(n):
        next(loader)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "small", "realistic"], default="tiny")
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=None, help="keep the dataset here (default: temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "augmentation.json"))
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        name = build_dataset(work, a.size, a.cases)
        plans = json.loads((work / "preprocessed" / name / "nnUNetPlans.json").read_text())
        cfg = plans["configurations"]["3d_fullres"]
        trainers = ("nnUNetTrainer",) + VARIANTS
        loaders = {t: training_loader(t) for t in trainers}
        rates: dict[str, list[float]] = {t: [] for t in trainers}
        for r in range(a.rounds):
            for t in trainers:
                # same seed for every trainer in a round: the same patches and nnU-Net augmentations
                # are drawn, so the ratio measures the variant's extra work, not sampling luck
                random.seed(r), np.random.seed(r), torch.manual_seed(r)
                rates[t].append(time_batches(loaders[t], a.batches))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    stock = sorted(rates["nnUNetTrainer"])[len(rates["nnUNetTrainer"]) // 2]
    rows = []
    print(f"patch {cfg['patch_size']}, batch {cfg['batch_size']}, median of {a.rounds} rounds x {a.batches} batches")
    print(f"{'trainer':<46} {'batches/s':>10} {'vs stock':>9}")
    for t in trainers:
        med = sorted(rates[t])[len(rates[t]) // 2]
        rows.append({"trainer": t, "batches_per_s": med, "ratio_to_stock": med / stock, "rounds": rates[t]})
        print(f"{t:<46} {med:>10.2f} {med / stock:>8.2f}x")
    result = {"benchmark": "augmentation", "machine": f"{platform.machine()} {os.cpu_count()} CPU, no GPU",
              "size": a.size, "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
              "batches": a.batches, "rounds": a.rounds, "results": rows}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from hecktor_nnunet.atomic_io import write_json

    write_json(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
