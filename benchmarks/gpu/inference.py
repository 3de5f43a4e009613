"""GPU check, inference: how long does ``hecktor-predict`` take on one realistic case, and how much of it is nnU-Net?

    python -m benchmarks.gpu.inference [--device cpu --tiny] [--work DIR] [--out FILE]

``hecktor_nnunet.inference.predict.predict`` (what ``hecktor-predict`` runs) segments one synthetic
``realistic`` case (``tiny`` in the dry run) with the recommended trainer's checkpoint from the step-time
dataset (one short training step writes it when the step-time part has not run), copied to 5 folds:
1 fold and 5 folds, test-time mirroring off and on (the dry run: 1 fold without, 5 folds with). Each
setting is measured in two fresh processes: the whole ``predict`` (seconds, peak GPU memory) and
nnU-Net's part alone (``run_nnunet`` on the same case converted beforehand); the rest is the
difference. Against the challenge's limits: T4 16 GB, 10 minutes per case. Writes the ``inference`` part.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.gpu.common import (BIN, TIMING_ID, Check, build_timing_dataset, dataset_name, in_own_process,
                                   nnunet_env, parser, record, run, run_check, timing_size)

FOLDS = ("0", "1", "2", "3", "4")


def settings(tiny: bool) -> list[tuple[tuple[str, ...], bool]]:
    """(folds, test-time mirroring) of each measurement."""
    one, five = FOLDS[:1], FOLDS
    return [(one, False), (five, True)] if tiny else [(one, False), (one, True), (five, False), (five, True)]


def timed_predict(case: Path, trainer: str, folds: tuple[str, ...], device: str, mirroring: bool) -> dict:
    """Seconds and peak GPU memory of the whole ``predict`` of ``case``, in this process."""
    import torch

    from hecktor_nnunet.inference.predict import predict

    with tempfile.TemporaryDirectory(prefix="gpu_check_predict_") as out:
        t0 = time.perf_counter()
        predict(case, out, dataset=TIMING_ID, trainer=trainer, folds=folds, device=device, mirroring=mirroring,
                quiet=True)
        seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None
    return {"seconds": seconds, "peak_gpu_gib": peak}


def timed_nnunet(case: Path, trainer: str, folds: tuple[str, ...], device: str, mirroring: bool) -> float:
    """Seconds of nnU-Net's part of ``predict`` alone (``run_nnunet``; the case converted before), in this process."""
    from hecktor_nnunet.dataset_conversion.cases import convert_images
    from hecktor_nnunet.inference.predict import conversion_settings, model_folder, run_nnunet
    from hecktor_nnunet.io.release import read_release

    folder = model_folder(TIMING_ID, trainer)
    with tempfile.TemporaryDirectory(prefix="gpu_check_nnunet_") as tmp:
        images = Path(tmp) / "images"
        manifest = convert_images(read_release(case).cases, images, conversion_settings(folder), quiet=True)
        cases = {pid: [images / f for f in r["files"]] for pid, r in manifest["cases"].items()}
        t0 = time.perf_counter()
        run_nnunet(folder, cases, Path(tmp) / "pred", folds, device=device, mirroring=mirroring, quiet=True)
        return time.perf_counter() - t0


def inference(check: Check) -> dict:
    """Time every setting of :func:`settings` with the recommended trainer's checkpoint."""
    from benchmarks.gpu.step_time import defaults, step_env, time_steps
    from hecktor_nnunet.training.registry import RECOMMENDED

    work = check.work
    model = work / "results_step" / dataset_name(work, TIMING_ID) / f"{RECOMMENDED}__nnUNetPlans__3d_fullres"
    env = step_env(check, defaults(check.tiny)["da_workers"])
    if not (model / "fold_0" / "checkpoint_final.pth").is_file():  # the step-time part has not run
        in_own_process(time_steps, RECOMMENDED, check.device, 1, 1, env=env, log=work / "logs" / "checkpoint.log")
    for fold in FOLDS[1:]:
        shutil.copytree(model / "fold_0", model / f"fold_{fold}", dirs_exist_ok=True)
    case = work / "inference_case"
    if not case.exists():
        run([BIN / "hecktor-synth", case, "-n", "1", "--size", timing_size(check.tiny), "--seed", "11", "--quiet"],
            nnunet_env(work), work / "logs" / "inference_case.log")
    rows = []
    for folds, tta in settings(check.tiny):
        args = (case, RECOMMENDED, folds, check.device, tta)
        log = work / "logs" / f"predict_{len(folds)}_{int(tta)}.log"
        whole = in_own_process(timed_predict, *args, env=env, log=log)
        nnunet = in_own_process(timed_nnunet, *args, env=env, log=log)
        rows.append({"folds": len(folds), "tta": tta, "seconds": whole["seconds"], "nnunet_seconds": nnunet,
                     "other_seconds": whole["seconds"] - nnunet, "peak_gpu_gib": whole["peak_gpu_gib"]})
        print(f"  predict folds={len(folds)} tta={tta!s:<5} {whole['seconds']:.1f} s (nnU-Net {nnunet:.1f} s)",
              flush=True)
    return {"case": timing_size(check.tiny), "trainer": RECOMMENDED, "results": rows,
            "measured": "whole predict and nnU-Net's part alone, each in a fresh process",
            "challenge_limits": {"gpu": "T4 16 GB", "seconds_per_case": 600}}


def run_inference(check: Check) -> dict:
    """Build the timing dataset if needed, time the predictions, record the part and its seconds; the part."""
    t0 = time.perf_counter()
    built = build_timing_dataset(check.work, check.tiny)
    t1 = time.perf_counter()
    part = inference(check)
    seconds = {"inference": round(time.perf_counter() - t1, 1)}
    if built:
        seconds["timing_dataset"] = round(t1 - t0, 1)
    record(check, seconds, inference=part)
    return part


def main(argv: list[str] | None = None) -> int:
    ap = parser(__spec__.name, __doc__)
    return run_check(ap.parse_args(argv), run_inference)


if __name__ == "__main__":
    raise SystemExit(main())
