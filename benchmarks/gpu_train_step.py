"""Seconds per training iteration and peak GPU memory: stock nnUNetTrainer vs each HECKTOR variant (CUDA only).

Builds a synthetic dataset (size ``small`` by default), plans it with nnU-Net's default planner and
with ``nnUNetPlannerResEncM``, then for each trainer runs nnU-Net's own ``train_step`` on batches
from the trainer's real training loader (background DA workers, as in training): ``--warmup``
iterations, then ``--iters`` timed ones. Prints s/iteration, the ratio to stock (target <= 1.05x;
different architectures are compared, not targeted) and peak allocated GPU memory.

    python benchmarks/gpu_train_step.py --iters 30
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augmentation import DATASET_ID, ROOT, build_dataset  # noqa: E402

RUNS = (  # (trainer, plans)
    ("nnUNetTrainer", "nnUNetPlans"),
    ("nnUNetTrainerHecktorFocal", "nnUNetPlans"),
    ("nnUNetTrainerHecktorTversky", "nnUNetPlans"),
    ("nnUNetTrainerHecktorFocalTversky", "nnUNetPlans"),
    ("nnUNetTrainerHecktorPETAug", "nnUNetPlans"),
    ("nnUNetTrainerHecktorNodeSampling", "nnUNetPlans"),
    ("nnUNetTrainerHecktorFocalPETAug", "nnUNetPlans"),
    ("nnUNetTrainerHecktorSegResNet", "nnUNetPlans"),
    ("nnUNetTrainer", "nnUNetResEncUNetMPlans"),
    ("nnUNetTrainerHecktorFocalPETAug", "nnUNetResEncUNetMPlans"),
)


def time_trainer(trainer_name: str, plans: str, warmup: int, iters: int) -> dict:
    """Seconds per ``train_step`` and peak GPU memory (GiB) for one trainer."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    t = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, trainer_name, plans, device=torch.device("cuda"))
    t.on_train_start()  # initialise, dataloaders with DA workers, deep-supervision switch
    t.on_train_epoch_start()
    try:
        for _ in range(warmup):
            t.train_step(next(t.dataloader_train))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(iters):
            t.train_step(next(t.dataloader_train))
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / iters
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
    finally:
        t.on_train_end()
    return {"trainer": trainer_name, "plans": plans, "s_per_iter": seconds, "peak_gib": peak,
            "patch_size": t.configuration_manager.patch_size, "batch_size": t.batch_size,
            "network": type(t.network).__name__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "small", "realistic"], default="small")
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_train_step.json"))
    a = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_train_step.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured.",
              file=sys.stderr)
        return 1
    from hecktor_nnunet.atomic_io import write_json

    os.environ.setdefault("nnUNet_n_proc_DA", str(min(12, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        build_dataset(work, a.size, a.cases, planners=("ExperimentPlanner", "nnUNetPlannerResEncM"))
        rows = []
        for trainer, plans in RUNS:
            r = time_trainer(trainer, plans, a.warmup, a.iters)
            rows.append(r)
            print(f"{trainer:<40} {plans:<24} {r['network']:<20} {r['s_per_iter']:.3f} s/it  "
                  f"{r['peak_gib']:.2f} GiB", flush=True)
    stock = {p: r["s_per_iter"] for r in rows if r["trainer"] == "nnUNetTrainer" for p in [r["plans"]]}
    for r in rows:
        r["ratio_to_stock_same_plans"] = r["s_per_iter"] / stock[r["plans"]]
    print(f"\n{'trainer':<40} {'plans':<24} ratio")
    for r in rows:
        print(f"{r['trainer']:<40} {r['plans']:<24} {r['ratio_to_stock_same_plans']:.2f}x")
    write_json({"benchmark": "gpu_train_step", "gpu": torch.cuda.get_device_name(),
                "machine": f"{platform.machine()} {os.cpu_count()} CPU", "size": a.size,
                "warmup": a.warmup, "iters": a.iters, "results": rows}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
