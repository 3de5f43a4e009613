"""hecktor-predict seconds per case on CPU: a tiny and a realistic-size synthetic case.

Trains ``nnUNetTrainerHecktorTinyCPUDebug`` (<= 8 features wide, so the network time here is a lower
bound; a full-width nnU-Net is roughly 20-50x more compute per voxel) on a tiny synthetic dataset
converted on each CT grid, then times ``hecktor_nnunet.predict.predict`` on one tiny case and on
one realistic-size case (~512 x 512 x 150 CT), split into conversion, nnU-Net and restore.

    python benchmarks/inference.py --tta
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augmentation import DATASET_ID, ROOT, build_dataset, nnunet_env  # noqa: E402

TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"


def timed_predict(release: Path, out: Path, work: Path, mirroring: bool) -> dict:
    """Seconds of the three stages of ``predict`` for the cases of ``release``."""
    import hecktor_nnunet.predict as hp

    stages: dict[str, float] = {}
    originals = {k: getattr(hp, k) for k in ("run_nnunet",)}

    def run_nnunet(*args, **kwargs):
        t = time.perf_counter()
        originals["run_nnunet"](*args, **kwargs)
        stages["nnunet_s"] = time.perf_counter() - t

    hp.run_nnunet = run_nnunet  # time the nnU-Net stage separately (this script only)
    try:
        t0 = time.perf_counter()
        hp.predict(release, out, dataset=DATASET_ID, trainer=TRAINER, folds=[0], device="cpu", mirroring=mirroring,
                   keep_work=work, quiet=True)
        stages["total_s"] = time.perf_counter() - t0
    finally:
        hp.run_nnunet = originals["run_nnunet"]
    stages["other_s"] = stages["total_s"] - stages["nnunet_s"]  # conversion + restore + checks
    return stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tta", action="store_true", help="test-time mirroring on (8 passes in 3-D)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    a = ap.parse_args(argv)
    import torch

    from hecktor_nnunet.atomic_io import write_json
    from hecktor_nnunet.synth import generate_release

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        build_dataset(work, "tiny", 6)
        env = nnunet_env(work)
        subprocess.run([str(Path(sys.executable).parent / "nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "0",
                        "-tr", TRAINER, "-device", "cpu"], env={**env, "nnUNet_n_proc_DA": "0"}, check=True,
                       capture_output=True)
        results = {}
        for size in ("tiny", "realistic"):
            rel = work / f"input_{size}"
            generate_release(rel, 1, size=size, seed=11)
            results[size] = timed_predict(rel, work / f"out_{size}", work / f"work_{size}", a.tta)
            print(f"{size:<10} total {results[size]['total_s']:6.1f} s  (nnU-Net {results[size]['nnunet_s']:6.1f} s, "
                  f"conversion + restore {results[size]['other_s']:6.1f} s)")
    write_json({"benchmark": "inference", "machine": f"{platform.machine()} {os.cpu_count()} CPU, no GPU",
                "trainer": TRAINER, "tta": a.tta, "seconds_per_case": results}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
