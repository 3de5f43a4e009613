"""hecktor-predict seconds per case on CPU, split by stage: how much of it is nnU-Net's.

Trains ``nnUNetTrainerHecktorTinyCPUDebug`` (<= 8 features wide, so the network time here is a lower
bound; a full-width nnU-Net is roughly 20-50x more compute per voxel) on a tiny synthetic dataset
converted on each CT grid, then times ``hecktor_nnunet.inference.predict.predict`` on one tiny case and on
one realistic-size case (~512 x 512 x 150 CT) in interleaved rounds (medians reported), split into

* ``nnunet_s``: nnU-Net's predictor (model loading, its preprocessing, the network, its export);
* ``conversion_s``: the input converted the way the training data were (read, check, crop, PET
  onto the CT grid, the converted images written for nnU-Net);
* ``restore_s``: post-processing and the label map restored onto the original CT grid and written;
* ``other_s``: the rest (model and release checks).

``outside_nnunet_share`` is (total - nnunet) / total. Run by hand::

    python benchmarks/inference.py [--rounds 5] [--tta] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augmentation import DATASET_ID, ROOT, build_dataset, nnunet_env  # noqa: E402

from hecktor_nnunet.training.registry import TINY_TRAINER  # noqa: E402

TRAINER = TINY_TRAINER


@contextlib.contextmanager
def stage_timers(stages: dict[str, float]):
    """Time the stages of ``predict`` by wrapping the functions it calls (this script only)."""
    import hecktor_nnunet.dataset_conversion.cases as cases
    import hecktor_nnunet.dataset_conversion.restore as restore
    import hecktor_nnunet.inference.predict as hp

    targets = [(hp, "run_nnunet", "nnunet_s"), (cases, "convert_images", "conversion_s"),
               (hp, "postprocess_folder", "restore_s"), (restore, "restore_predictions", "restore_s")]
    originals = [(mod, name, getattr(mod, name)) for mod, name, _ in targets]

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages[key] = stages.get(key, 0.0) + time.perf_counter() - t
        return wrapper

    for (mod, name, key), (_, _, fn) in zip(targets, originals):
        setattr(mod, name, timed(fn, key))
    try:
        yield
    finally:
        for mod, name, fn in originals:
            setattr(mod, name, fn)


def timed_predict(release: Path, out: Path, mirroring: bool) -> dict:
    """Seconds of the stages of ``predict`` for the cases of ``release`` (a fresh work folder: nothing reused)."""
    import hecktor_nnunet.inference.predict as hp

    stages: dict[str, float] = {}
    with stage_timers(stages):
        t0 = time.perf_counter()
        hp.predict(release, out, dataset=DATASET_ID, trainer=TRAINER, folds=[0], device="cpu", mirroring=mirroring,
                   quiet=True)
        stages["total_s"] = time.perf_counter() - t0
    stages["other_s"] = stages["total_s"] - sum(v for k, v in stages.items() if k != "total_s")
    stages["outside_nnunet_share"] = 1 - stages["nnunet_s"] / stages["total_s"]
    return stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tta", action="store_true", help="test-time mirroring on (8 passes in 3-D)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    a = ap.parse_args(argv)
    import torch

    from hecktor_nnunet.io.atomic_io import write_json
    from hecktor_nnunet.demo.synth import generate_release

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        build_dataset(work, "tiny", 6)
        env = nnunet_env(work)
        model = work / "results" / f"Dataset{DATASET_ID:03d}_Bench" / f"{TRAINER}__nnUNetPlans__3d_fullres"
        if not (model / "fold_0" / "checkpoint_final.pth").is_file():
            subprocess.run([str(Path(sys.executable).parent / "nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "0",
                            "-tr", TRAINER, "-device", "cpu"], env={**env, "nnUNet_n_proc_DA": "0"}, check=True,
                           capture_output=True)
        sizes = ("tiny", "realistic")
        for size in sizes:
            if not (work / f"input_{size}").exists():
                generate_release(work / f"input_{size}", 1, size=size, seed=11)
        runs: dict[str, list[dict]] = {s: [] for s in sizes}
        load = [os.getloadavg()[0]]
        for r in range(a.rounds):
            for size in (sizes if r % 2 == 0 else sizes[::-1]):
                runs[size].append(timed_predict(work / f"input_{size}", work / f"out_{size}", a.tta))
            load.append(os.getloadavg()[0])
            print(f"round {r + 1}/{a.rounds}: " + ", ".join(
                f"{s} {runs[s][-1]['total_s']:.1f} s ({100 * runs[s][-1]['outside_nnunet_share']:.1f} % outside "
                "nnU-Net)" for s in sizes) + f" (load {load[-1]:.2f})")
    results = {s: {k: statistics.median(run[k] for run in runs[s]) for k in runs[s][0]} for s in sizes}
    for s in sizes:
        res = results[s]
        print(f"{s:<10} total {res['total_s']:6.1f} s: nnU-Net {res['nnunet_s']:6.1f} s, conversion "
              f"{res['conversion_s']:5.1f} s, restore {res['restore_s']:5.1f} s, other {res['other_s']:4.1f} s "
              f"-> {100 * res['outside_nnunet_share']:.1f} % outside nnU-Net (median of {a.rounds})")
    write_json({"benchmark": "inference", "machine": f"{platform.machine()} {os.cpu_count()} CPU, no GPU",
                "trainer": TRAINER, "tta": a.tta, "rounds": a.rounds, "target_outside_share": 0.10,
                "load_average_1min": {"start": round(load[0], 2), "end": round(load[-1], 2),
                                      "median": round(statistics.median(load), 2)},
                "seconds_per_case": results, "rounds_seconds_per_case": runs}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
