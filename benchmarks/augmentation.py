"""Data-augmentation throughput: each HECKTOR variant's training pipeline vs stock nnUNetTrainer.

Builds a synthetic release, converts and preprocesses it with nnU-Net (in a temporary folder
unless --work is given), then for every trainer with its own data pipeline draws batches from its
real training loader (nnU-Net's single-threaded augmenter, so the number is per DA worker) and
reports batches/s and the ratio to stock. Every batch is drawn after seeding the random generators
with (round, batch), and each sample's transforms after re-seeding every generator with (round,
batch, sample), the PET transforms' own ones included (:class:`Reseeded`). So every trainer
draws the same patches (except the lymph-node samplers, which pick other patches by design and
use up other draws doing so) and, sample for sample, the same nnU-Net and PET augmentations.
Whether a sample is rotated or scaled (a resampling of the whole patch) or only cropped, and
whether its PET is moved or blurred, decides most of its cost; without the re-seeding a ratio
would partly measure the luck of those draws. nnU-Net's Gaussian blur picks FFT or convolution by
timing both the first time it meets a kernel size and axis length; the warm-up makes every such
choice once, before the timing, and all trainers share it (:func:`share_blur_choices`). The ratio
measures the variant's extra work. Trainers take turns batch by batch, so drifting machine load
hits all of them alike; figures are medians over rounds of the per-round ratios (the trainer's
batches per second over stock's in that round). Every batch is drawn ``--repeats`` times with
the same seeds (the same work) and its fastest draw kept, so what other processes take from a
draw does not count. Throughput is reported from CPU seconds of this (single-threaded) process,
which other processes on a shared machine disturb less, and from wall seconds beside it; the load
average is recorded.
Target: >= 0.95x of stock.

    python benchmarks/augmentation.py --size tiny --cases 6 --batches 40 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hecktor_nnunet.training.registry import trainer_classes

ROOT = Path(__file__).resolve().parents[1]
DATASET_ID = 590
PLANS_OF_PLANNER = {"ExperimentPlanner": "nnUNetPlans", "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
                    "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans"}
VARIANTS = tuple(c.__name__ for c in trainer_classes() if c.axis in ("augmentation", "sampling", "combined"))


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
    from hecktor_nnunet.demo.synth import generate_release

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


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators."""
    import numpy as np
    import torch

    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def inner_transforms(transform) -> list:
    """A pipeline and every transform inside it (through compositions, random wrappers, the folded motion)."""
    found, todo = [], [transform]
    while todo:
        t = todo.pop()
        found.append(t)
        for name in ("transform", "transforms", "spatial", "motion"):
            inner = getattr(t, name, None)
            todo += inner if isinstance(inner, list) else [inner] if inner is not None else []
    return found


def own_generators(transform) -> list:
    """The :class:`~hecktor_nnunet.training.transforms.OwnRandom` generators inside a transform pipeline."""
    from hecktor_nnunet.training.transforms import OwnRandom

    return [t.random for t in inner_transforms(transform) if isinstance(getattr(t, "random", None), OwnRandom)]


class Reseeded:
    """A loader's transforms with every random generator re-seeded before each sample.

    The seed is ``(batch_seed, k)`` for the loader's ``k``-th sample since :meth:`start` was given
    ``batch_seed``: samples at the same place in the same batch get the same augmentation draws in
    every trainer, whatever draws its patch sampler used up. The PET transforms' own generators
    are re-seeded too (without touching the global ones), so trainers with the same PET transforms
    draw the same PET augmentations, and how many samples happen to be moved or blurred does not
    differ between them.

    The re-seeding is the benchmark's own work, not the trainer's (a new NumPy generator per PET
    transform costs about 65 us, 1 % of a ``tiny`` sample), so its CPU and wall seconds since
    :meth:`start` are kept in ``seeding`` for :func:`time_round` to subtract.
    """

    def __init__(self, transforms) -> None:
        self.transforms, self.batch_seed, self.k = transforms, 0, 0
        self.own = own_generators(transforms)
        self.seeding = (0.0, 0.0)

    def start(self, batch_seed: int) -> None:
        self.batch_seed, self.k, self.seeding = batch_seed, 0, (0.0, 0.0)

    def __call__(self, **data):
        c0, w0 = time.process_time(), time.perf_counter()
        seed = (self.batch_seed * 1009 + self.k) % 2 ** 32
        self.k += 1
        seed_all(seed)
        for own in self.own:
            own.seed(seed)
        self.seeding = (self.seeding[0] + time.process_time() - c0, self.seeding[1] + time.perf_counter() - w0)
        return self.transforms(**data)


def share_blur_choices(loaders: dict, patch_size) -> dict:
    """Let nnU-Net's blur choose FFT or convolution before the timing, once, for every trainer alike.

    nnU-Net's ``GaussianBlurTransform(benchmark=True)`` times both ways (nine blurs each) the first
    time it meets an (axis length, kernel size) pair and keeps the faster one. Left to itself that
    timing would fall into the timed rounds (about 0.1 s per FFT blur of a ``small`` patch), and
    each trainer's copy could choose differently by chance. Here the first loader's transform
    makes every choice its blur range can meet, on a random patch of the real size, and every
    loader's transform shares the table. Returns it.
    """
    import numpy as np
    import torch
    from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform, _compute_kernel_size

    blurs = [t for loader in loaders.values() for t in inner_transforms(loader.data_loader.transforms.transforms)
             if isinstance(t, GaussianBlurTransform) and t.benchmark]
    if not blurs:
        return {}
    first = blurs[0]
    lo, hi = (first.blur_sigma, first.blur_sigma) if np.isscalar(first.blur_sigma) else first.blur_sigma
    sigmas = {_compute_kernel_size(s): s for s in np.linspace(lo, hi, 41)}.values()  # one per kernel size
    patch = torch.rand(1, *patch_size)
    for sigma in sigmas:
        for axis in range(len(patch_size)):
            first._benchmark_wrapper(patch, float(sigma), axis)
    for blur in blurs:
        blur.benchmark_use_fft = first.benchmark_use_fft
    return first.benchmark_use_fft


def training_loader(trainer_name: str):
    """The real training loader (single-threaded augmenter) of a trainer on the benchmark dataset.

    Its transforms are wrapped in :class:`Reseeded` (reached as ``loader.data_loader.transforms``).
    """
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    os.environ["nnUNet_n_proc_DA"] = "0"
    t = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, trainer_name, device=torch.device("cpu"))
    t._set_batch_size_and_oversample()
    train, _ = t.get_dataloaders()
    train.data_loader.transforms = Reseeded(train.data_loader.transforms)
    return train


def time_round(loaders: dict, n: int, round_index: int, repeats: int = 1) -> dict[str, list[tuple[float, float]]]:
    """``{trainer: [(CPU seconds, wall seconds) of batch i]}`` for ``n`` batches from every loader.

    Batch ``i`` is drawn from every loader in turn (the order rotates) after seeding the random
    generators with (round, i) (and each sample's transforms with (round, i, sample), see
    :class:`Reseeded`, whose seconds are not counted), so a load change on the machine hits all
    trainers alike. With ``repeats`` > 1 every batch is drawn that many times, the same work each
    time (same seeds), the trainers taking turns between draws, and its fastest draw is kept: the
    batch's cost without what other processes took from it.
    """
    names = list(loaders)
    spent: dict[str, list[tuple[float, float]]] = {t: [] for t in names}
    for i in range(n):
        k, seed = (round_index + i) % len(names), round_index * 100_003 + i
        best = {t: (math.inf, math.inf) for t in names}
        for _ in range(repeats):
            for t in names[k:] + names[:k]:
                seed_all(seed)
                reseeded = loaders[t].data_loader.transforms
                reseeded.start(seed)
                c0, w0 = time.process_time(), time.perf_counter()
                next(loaders[t])
                cpu = time.process_time() - c0 - reseeded.seeding[0]
                wall = time.perf_counter() - w0 - reseeded.seeding[1]
                best[t] = (min(best[t][0], cpu), min(best[t][1], wall))
        for t in names:
            spent[t].append(best[t])
    return spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "small", "realistic"], default="tiny")
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3,
                    help="draws of every batch (same seeds), the fastest kept (default: 3)")
    ap.add_argument("--trainers", nargs="+", default=list(VARIANTS), choices=VARIANTS, metavar="TRAINER",
                    help="variants to compare with stock (default: all)")
    ap.add_argument("--work", default=None, help="keep the dataset here (default: temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "augmentation.json"))
    a = ap.parse_args(argv)
    if min(a.batches, a.rounds, a.repeats) < 1:
        ap.error("--batches, --rounds and --repeats must be at least 1")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        name = build_dataset(work, a.size, a.cases)
        plans = json.loads((work / "preprocessed" / name / "nnUNetPlans.json").read_text())
        cfg = plans["configurations"]["3d_fullres"]
        trainers = ("nnUNetTrainer",) + tuple(a.trainers)
        loaders = {t: training_loader(t) for t in trainers}
        blur_choices = share_blur_choices(loaders, cfg["patch_size"])
        for t in trainers:  # warm-up (first batch, caches)
            next(loaders[t])
        cpu: dict[str, list[float]] = {t: [] for t in trainers}
        wall: dict[str, list[float]] = {t: [] for t in trainers}
        load = [os.getloadavg()[0]]
        for r in range(a.rounds):
            for t, times in time_round(loaders, a.batches, r, a.repeats).items():
                cpu[t].append(a.batches / sum(c for c, _ in times))
                wall[t].append(a.batches / sum(w for _, w in times))
            load.append(os.getloadavg()[0])
            print(f"round {r + 1}/{a.rounds} done (load {load[-1]:.2f})", file=sys.stderr)
    rows = []
    print(f"patch {cfg['patch_size']}, batch {cfg['batch_size']}, median of {a.rounds} rounds x {a.batches} batches, "
          f"fastest of {a.repeats} draws each")
    print(f"{'trainer':<46} {'batches/s (CPU)':>15} {'vs stock':>9} {'batches/s (wall)':>17} {'vs stock':>9}")
    for t in trainers:
        # ratio per round (same seeds, same load), then the median over rounds
        ratios = [x / y for x, y in zip(cpu[t], cpu["nnUNetTrainer"])]
        wall_ratios = [x / y for x, y in zip(wall[t], wall["nnUNetTrainer"])]
        row = {"trainer": t, "batches_per_cpu_s": statistics.median(cpu[t]),
               "ratio_to_stock": statistics.median(ratios),
               "batches_per_wall_s": statistics.median(wall[t]), "wall_ratio_to_stock": statistics.median(wall_ratios),
               "rounds_batches_per_cpu_s": cpu[t], "rounds_batches_per_wall_s": wall[t]}
        rows.append(row)
        print(f"{t:<46} {row['batches_per_cpu_s']:>15.2f} {row['ratio_to_stock']:>8.3f}x "
              f"{row['batches_per_wall_s']:>17.2f} {row['wall_ratio_to_stock']:>8.3f}x")
    result = {"machine": f"{platform.machine()} {os.cpu_count()} CPU, no GPU",
              "size": a.size, "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
              "batches": a.batches, "rounds": a.rounds, "repeats": a.repeats, "target_ratio": 0.95,
              "load_average_1min": {"start": round(load[0], 2), "end": round(load[-1], 2),
                                    "median": round(statistics.median(load), 2)},
              "blur_uses_fft": {f"{n}:{k}": bool(v) for n, ks in blur_choices.items() for k, v in ks.items()},
              "results": rows}
    out = Path(a.out)
    sys.path.insert(0, str(ROOT))
    from hecktor_nnunet.io.atomic_io import write_json

    # one file for every size (and subset of trainers): this run replaces its own entry
    key = a.size if list(a.trainers) == list(VARIANTS) else f"{a.size}:{'+'.join(a.trainers)}"
    runs = json.loads(out.read_text()).get("runs", {}) if out.is_file() else {}
    write_json({"benchmark": "augmentation", "runs": {**runs, key: result}}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
