"""GPU check, learning: do the HECKTOR trainers learn at least as well as stock nnU-Net for the same iterations?

    python -m benchmarks.gpu.learning [--length 10x100x5] [--device cpu --tiny] [--work DIR] [--out FILE]

A synthetic release at the demo's grid (``tiny``: 48 labelled patients, 4 centre-stratified folds; 12 at
8 mm in the dry run) is converted, planned and preprocessed with nnU-Net's default planner; stock
``nnUNetTrainer`` and every combined HECKTOR trainer (``benchmarks/gpu/trainers/``: each for the same
``--length``) train fold 0 concurrently on the one GPU; nnU-Net's own validation predictions of fold 0's
held-out patients are restored onto their CT grids (``hecktor-restore``) and scored by
``hecktor-evaluate seg``. Pass marks: the recommended trainer's GTVp Dice >= 0.70 and >= stock - 0.02.
Writes the ``learning`` part of the results file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.gpu.common import (BIN, LEARN_ID, Check, build_dataset, dataset_name, nnunet_env, parser, record,
                                   run, run_check, tail)

PASS_GTVP, PASS_MARGIN = 0.70, 0.02


def default_length(tiny: bool) -> str:
    """EPOCHSxITERATIONSxVALIDATION_ITERATIONS: 1000 iterations (a few in the dry run)."""
    return "2x2x1" if tiny else "10x100x5"


def patients(tiny: bool) -> int:
    """Labelled patients of the learning release."""
    return 12 if tiny else 48


def build_learning_dataset(check: Check) -> bool:
    """The demo-grid synthetic release (:func:`patients`; at 8 mm in the dry run), planned (False: reused)."""
    return build_dataset(check.work, LEARN_ID, "tiny", patients(check.tiny), folds=4, seed=0,
                         spacing=8.0 if check.tiny else None)


def compared_trainers() -> list[str]:
    """The trainers compared (stock first); each trains as ``<name>_GpuCheck``."""
    from benchmarks.gpu.trainers.hecktor_gpu_check_trainers import COMPARED

    return [c.__name__ for c in COMPARED]


def learning(check: Check, length: str) -> dict:
    """Train the compared trainers concurrently for ``length`` and score fold 0's held-out patients."""
    from benchmarks.gpu.trainers.hecktor_gpu_check_trainers import LENGTH_ENV, SUFFIX
    from hecktor_nnunet.training.registry import RECOMMENDED

    work, learners = check.work, compared_trainers()
    name = dataset_name(work, LEARN_ID)
    val = sorted(json.loads((work / "raw" / name / "splits_final.json").read_text())[0]["val"])
    truth = work / "heldout_labels"
    for stale in (truth, work / "results", work / "restored", work / "eval"):
        shutil.rmtree(stale, ignore_errors=True)
    truth.mkdir()
    for pid in val:
        (truth / f"{pid}.nii.gz").symlink_to(work / f"release_{LEARN_ID}" / "Task 1" / pid / f"{pid}.nii.gz")
    n_da = max(1, min(8, check.cpus // len(learners)))
    env = nnunet_env(work, check_trainers=True, tiny=check.tiny, nnUNet_compile="false",
                     nnUNet_n_proc_DA=str(n_da), nnUNet_def_n_proc=str(n_da), **{LENGTH_ENV: length})
    t0 = time.perf_counter()
    procs = {}
    for trainer in learners:
        log = work / "logs" / f"train_{trainer}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as f:
            procs[trainer] = (subprocess.Popen([str(BIN / "nnUNetv2_train"), str(LEARN_ID), "3d_fullres", "0",
                                                "-tr", trainer + SUFFIX, "-device", check.device],
                                               env=env, stdout=f, stderr=subprocess.STDOUT), log)
    failed = [(t, log) for t, (p, log) in procs.items() if p.wait() != 0]
    if failed:
        raise RuntimeError("\n".join(f"training {t} failed; log {log}:\n{tail(log)}" for t, log in failed))
    out = {"patients": patients(check.tiny), "length": length, "iterations": _iterations(length),
           "held_out_patients": val,
           "train_seconds_concurrent": round(time.perf_counter() - t0, 1), "trainers": {}}
    for trainer in learners:
        model = work / "results" / name / f"{trainer}{SUFFIX}__nnUNetPlans__3d_fullres" / "fold_0"
        restored, log = work / "restored" / trainer, work / "logs" / f"evaluate_{trainer}.log"
        run([BIN / "hecktor-restore", model / "validation", "--manifest",
             work / "raw" / name / "conversion_manifest.json", "-o", restored, "--quiet"], env, log)
        run([BIN / "hecktor-evaluate", "seg", "--truth", truth, "--pred", restored, "-o", work / "eval" / trainer,
             "--n-boot", "200", "--quiet"], env, log)
        s = json.loads((work / "eval" / trainer / "summary.json").read_text())
        out["trainers"][trainer] = {k: s[k] for k in ("gtvp_dice_mean", "gtvn_dsc_agg", "gtvn_f1_agg")}
        out["trainers"][trainer]["pseudo_dice_last_epoch"] = _last_pseudo_dice(model)
    stock, ours = out["trainers"][learners[0]], out["trainers"][RECOMMENDED]
    out["pass"] = {"gtvp_dice_ge_0.70": ours["gtvp_dice_mean"] >= PASS_GTVP,
                   "gtvp_dice_ge_stock_minus_0.02": ours["gtvp_dice_mean"] >= stock["gtvp_dice_mean"] - PASS_MARGIN}
    return out


def _iterations(length: str) -> int:
    epochs, iterations, _ = (int(v) for v in length.split("x"))
    return epochs * iterations


def _last_pseudo_dice(fold_dir: Path) -> list[float] | None:
    logs = sorted(fold_dir.glob("training_log_*.txt"))
    found = re.findall(r"Pseudo dice \[(.*?)\]", logs[-1].read_text()) if logs else []
    return [float(v) for v in re.findall(r"[-+]?\d*\.\d+|\d+", found[-1])] if found else None


def run_learning(check: Check, length: str | None = None) -> dict:
    """Build the dataset, train and score; record the part and its seconds; the part."""
    t0 = time.perf_counter()
    built = build_learning_dataset(check)
    t1 = time.perf_counter()
    part = learning(check, length or default_length(check.tiny))
    seconds = {"learning": round(time.perf_counter() - t1, 1)}
    if built:
        seconds["learning_dataset"] = round(t1 - t0, 1)
    record(check, seconds, learning=part)
    return part


def summary(part: dict) -> str:
    """One line per trainer: what it learned."""
    return "\n".join(f"  learned {name:<46} GTVp {m['gtvp_dice_mean']:.3f}  GTVn DSCagg {m['gtvn_dsc_agg']:.3f}  "
                     f"F1agg {m['gtvn_f1_agg']:.3f}" for name, m in part["trainers"].items())


def main(argv: list[str] | None = None) -> int:
    ap = parser(__spec__.name, __doc__)
    ap.add_argument("--length", default=None, help="EPOCHSxITERATIONSxVALIDATION_ITERATIONS (default 10x100x5)")
    a = ap.parse_args(argv)
    return run_check(a, lambda check: print(summary(run_learning(check, a.length)), flush=True))


if __name__ == "__main__":
    raise SystemExit(main())
