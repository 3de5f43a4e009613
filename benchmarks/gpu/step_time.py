"""GPU check, step time: what does one training step of each HECKTOR trainer cost against stock nnU-Net?

    python -m benchmarks.gpu.step_time [--warmup 20] [--iters 30] [--da-workers 12] [--budget-s S]
                                       [--device cpu --tiny] [--work DIR] [--out FILE]

A ``realistic`` dataset (CT 512 x 512 x 150; ``tiny`` in the dry run) is planned; stock
``nnUNetTrainer`` and every HECKTOR trainer that changes the step (not the length, demo and debug
ones) run nnU-Net's ``train_step`` on batches from their real training loaders after ``--warmup``
iterations, each trainer in its own process (creating several trainers in one process races
nnU-Net's trainer lookup), with ``nnUNet_compile`` off for all and, on CUDA, on for stock and the
recommended trainer. Target: <= 1.05x stock. Each row is written to the results file at once;
no trainer is started after ``--budget-s`` seconds (the rest are listed as skipped). The dry run times
stock and the recommended trainer only.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.gpu.common import (TIMING_ID, Check, build_timing_dataset, in_own_process, nnunet_env, parser,
                                   record, run_check)

STEP_TARGET = 1.05
STOCK = "nnUNetTrainer"


def defaults(tiny: bool) -> dict:
    """Warm-up and timed iterations, DA workers (fewer in the dry run)."""
    return {"warmup": 2, "iters": 2, "da_workers": 1} if tiny else \
        {"warmup": 20, "iters": 30, "da_workers": min(12, os.cpu_count() or 1)}


def step_trainers(tiny: bool) -> list[str]:
    """Stock, then every HECKTOR trainer whose step differs (the dry run: stock and the recommended one)."""
    from hecktor_nnunet.training.registry import RECOMMENDED, trainers

    if tiny:
        return [STOCK, RECOMMENDED]
    return [STOCK] + [t.name for t in trainers() if t.axis not in ("length", "demo", "debug")]


def time_steps(trainer: str, device: str, warmup: int, iters: int) -> dict:
    """Seconds per ``train_step`` (after ``warmup``) and peak GPU memory of one trainer, in this process.

    nnU-Net's ``on_train_end`` writes the trainer's final checkpoint (the inference part predicts with it).
    """
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    t = get_trainer_from_args(str(TIMING_ID), "3d_fullres", 0, trainer, "nnUNetPlans", device=torch.device(device))
    t.on_train_start()
    t.on_train_epoch_start()
    cuda = device == "cuda"
    try:
        for _ in range(warmup):
            t.train_step(next(t.dataloader_train))
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(iters):
            t.train_step(next(t.dataloader_train))
        if cuda:
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / iters
        peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None
    finally:
        t.on_train_end()
    return {"trainer": trainer, "s_per_iter": seconds, "peak_gib": peak, "network": type(t.network).__name__,
            "patch_size": list(t.configuration_manager.patch_size), "batch_size": t.batch_size}


def step_env(check: Check, da_workers: int, compiled: bool = False) -> dict[str, str]:
    """The environment of a step-time (or checkpoint) process: its own results folder."""
    return nnunet_env(check.work, tiny=check.tiny, nnUNet_compile="true" if compiled else "false",
                      nnUNet_n_proc_DA=str(da_workers), nnUNet_results=str(check.work / "results_step"))


def step_time(check: Check, warmup: int, iters: int, da_workers: int, deadline: float = float("inf")) -> dict:
    """Step time of every trainer vs stock, each row recorded as it comes; trainers not started by
    ``deadline`` (a ``time.perf_counter()`` value) are listed as skipped instead of timed."""
    runs = [(tr, False) for tr in step_trainers(check.tiny)]
    if check.device == "cuda":
        from hecktor_nnunet.training.registry import RECOMMENDED

        runs += [(STOCK, True), (RECOMMENDED, True)]
    rows: list[dict] = []
    part = {"dataset": "tiny" if check.tiny else "realistic", "warmup": warmup, "iters": iters,
            "da_workers": da_workers, "target_ratio": STEP_TARGET, "results": rows, "skipped": []}
    for trainer, compiled in runs:
        if time.perf_counter() > deadline:
            part["skipped"].append({"trainer": trainer, "compile": compiled, "why": "--budget-s reached"})
            continue
        r = in_own_process(time_steps, trainer, check.device, warmup, iters, env=step_env(check, da_workers, compiled),
                           log=check.work / "logs" / f"step_{trainer}_{int(compiled)}.log")
        r["compile"] = compiled
        stock = next((s for s in rows + [r] if s["trainer"] == STOCK and s["compile"] == compiled), None)
        r["ratio_to_stock"] = r["s_per_iter"] / stock["s_per_iter"] if stock else None
        rows.append(r)
        record(check, step_time=part)
        print(f"  step {trainer:<48} compile={compiled!s:<5} {r['s_per_iter']:.3f} s/it", flush=True)
    return part


def run_step_time(check: Check, warmup: int | None = None, iters: int | None = None, da_workers: int | None = None,
                  deadline: float = float("inf")) -> dict:
    """Build the timing dataset if needed, time every trainer, record the part and its seconds; the part."""
    d = defaults(check.tiny)
    t0 = time.perf_counter()
    built = build_timing_dataset(check.work, check.tiny)
    t1 = time.perf_counter()
    part = step_time(check, d["warmup"] if warmup is None else warmup, d["iters"] if iters is None else iters,
                     d["da_workers"] if da_workers is None else da_workers, deadline)
    seconds = {"step_time": round(time.perf_counter() - t1, 1)}
    if built:
        seconds["timing_dataset"] = round(t1 - t0, 1)
    record(check, seconds, step_time=part)
    return part


def add_step_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--warmup", type=int, default=None, help="warm-up iterations per trainer (default 20)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per trainer (default 30)")
    ap.add_argument("--da-workers", type=int, default=None, help="data-augmentation processes (default 12)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no trainer after this many seconds (default: no limit)")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__spec__.name, __doc__)
    add_step_arguments(ap)
    a = ap.parse_args(argv)
    deadline = time.perf_counter() + a.budget_s if a.budget_s is not None else float("inf")
    return run_check(a, lambda check: run_step_time(check, a.warmup, a.iters, a.da_workers, deadline))


if __name__ == "__main__":
    raise SystemExit(main())
