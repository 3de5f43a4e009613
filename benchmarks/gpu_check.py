"""One GPU check, one command: does it learn, what does a training step cost, how long does inference take.

    python benchmarks/gpu_check.py                        # CUDA machine, ~8-10 min on one H100/H200 (estimated)
    python benchmarks/gpu_check.py --device cpu --tiny    # the CPU dry run the test suite executes
    python benchmarks/gpu_check.py --docs                 # rewrite docs/benchmarks.md's GPU block from the JSON

Needs nothing from the internet. Writes ``benchmarks/results/gpu_check.json`` (card, date, every
figure) and prints a table. Three parts:

1. **Learning.** A synthetic release at the demo's grid (``tiny``: 48 labelled patients, 4
   centre-stratified folds) is converted, planned and preprocessed with nnU-Net's default planner;
   stock ``nnUNetTrainer``, the recommended ``nnUNetTrainerHecktorFocalPETAug`` and the recall-oriented
   ``nnUNetTrainerHecktorFocalTverskyPETAugNodes`` train fold 0 for the same fixed number of iterations
   (``--length``), concurrently on the one GPU; nnU-Net's own validation predictions of fold 0's 12
   held-out patients are restored onto their CT grids (``hecktor-restore``) and scored by
   ``hecktor-evaluate seg``. Pass marks: HECKTOR GTVp Dice >= 0.70 and >= stock - 0.02.
2. **Inference.** ``hecktor-predict``'s work (``hecktor_nnunet.inference.predict.predict``) on one realistic case,
   1 fold and 5 folds (copies of one checkpoint), test-time mirroring on and off: seconds (nnU-Net's
   part and the rest) and peak GPU memory, to set against the challenge's limits (T4 16 GB, 10 min).
3. **Step time.** A ``realistic`` dataset (512 x 512 x 150 CT) is planned; every HECKTOR trainer and
   stock run nnU-Net's ``train_step`` on batches from their real training loaders, each trainer in its
   own process (creating several trainers in one process races nnU-Net's trainer lookup), after
   ``--warmup`` iterations, with ``nnUNet_compile`` off for all and on for stock and the recommended
   trainer. Target: <= 1.05x stock.

Each finished part is written to the JSON at once, so a run stopped from outside keeps it;
``--budget-s`` starts no step-time trainer after that many seconds and lists the rest as skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "gpu_check.json"
CHECK_TRAINERS_DIR = Path(__file__).resolve().parent / "gpu_check_trainers"
BIN = Path(sys.executable).parent
LEARN_ID, TIMING_ID = 520, 521
RECOMMENDED = "nnUNetTrainerHecktorFocalPETAug"
LEARNERS = ("nnUNetTrainer", RECOMMENDED, "nnUNetTrainerHecktorFocalTverskyPETAugNodes")
#: trainers left out of the step-time table: same step as the recommended trainer, or not a real model
SAME_STEP_AS = {"nnUNetTrainerHecktorFocalPETAug_250epochs": RECOMMENDED,
                "nnUNetTrainerHecktorFocalPETAug_500epochs": RECOMMENDED}
PASS_GTVP, PASS_MARGIN = 0.70, 0.02
STEP_TARGET = 1.05
#: the block of docs/benchmarks.md this script writes (``benchmarks/tables.py`` writes the same block)
DOCS_BENCHMARKS = ROOT / "docs" / "benchmarks.md"
BLOCK_BEGIN, BLOCK_END = "<!-- table:gpu_check:begin -->", "<!-- table:gpu_check:end -->"


# -- helpers -------------------------------------------------------------------------------------
def _env(work: Path, extra_trainers: bool = False, **more: str) -> dict[str, str]:
    from hecktor_nnunet.training.registry import TRAINERS_DIR

    ext = [str(TRAINERS_DIR)] + ([str(CHECK_TRAINERS_DIR)] if extra_trainers else [])
    env = {**os.environ, "nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results"), "nnUNet_extTrainer": os.pathsep.join(ext),
           "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.update(more)
    return env


def _run(cmd: list, env: dict, log: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a command, its output into ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        p = subprocess.run([str(c) for c in cmd], env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    if p.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{cmd[0]} failed (exit {p.returncode}); log {log}:\n{tail}")
    return p


def _worker(args: list[str], env: dict, log: Path) -> dict:
    """Run this script as a worker process; its last stdout line is a JSON result."""
    log.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed (exit {p.returncode}); log {log}:\n"
                           + "\n".join((p.stdout + p.stderr).splitlines()[-30:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def build_dataset(work: Path, dataset_id: int, size: str, cases: int, *, folds: int, seed: int, workers: int,
                  spacing: float | None = None) -> Path:
    """hecktor-synth -> hecktor-convert (centre-stratified folds) -> nnUNetv2_plan_and_preprocess.

    A dataset already planned in ``work`` is reused (a re-run with ``--work`` resumes).
    """
    env = _env(work, nnUNet_n_proc_DA=str(workers), nnUNet_def_n_proc=str(workers))
    release = work / f"release_{dataset_id}"
    if list((work / "preprocessed").glob(f"Dataset{dataset_id:03d}_*/nnUNetPlans.json")):
        return release
    for stale in [release, *(work / "raw").glob(f"Dataset{dataset_id:03d}_*"),
                  *(work / "preprocessed").glob(f"Dataset{dataset_id:03d}_*")]:
        shutil.rmtree(stale, ignore_errors=True)
    log = work / "logs" / f"dataset_{dataset_id}.log"
    _run([BIN / "hecktor-synth", release, "-n", cases, "--size", size, "--seed", seed, "--quiet"], env, log)
    convert = [BIN / "hecktor-convert", release, "-d", dataset_id, "--name", f"GpuCheck{size.title()}",
               "-o", work / "raw", "-np", workers, "--quiet"]
    if folds > 1:
        convert += ["--splits", "centre-stratified", "--folds", folds, "--seed", seed]
    if spacing:
        convert += ["--spacing", spacing, spacing, spacing]
    _run(convert, env, log)
    _run([BIN / "nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "3d_fullres", "-np", workers,
          "-npfp", workers], env, log)
    return release


def _dataset_name(work: Path, dataset_id: int) -> str:
    return next(p.name for p in (work / "raw").glob(f"Dataset{dataset_id:03d}_*"))


# -- part 1: learning ----------------------------------------------------------------------------
def learning(work: Path, a: argparse.Namespace) -> dict:
    """Train the learners concurrently for ``a.length`` and score fold 0's held-out patients."""
    name = _dataset_name(work, LEARN_ID)
    val = sorted(json.loads((work / "raw" / name / "splits_final.json").read_text())[0]["val"])
    truth = work / "heldout_labels"
    shutil.rmtree(truth, ignore_errors=True)
    truth.mkdir()
    release = work / f"release_{LEARN_ID}"
    for pid in val:
        (truth / f"{pid}.nii.gz").symlink_to(release / "Task 1" / pid / f"{pid}.nii.gz")
    for stale in ("results", "restored", "eval"):
        shutil.rmtree(work / stale, ignore_errors=True)
    n_da = max(1, min(8, (os.cpu_count() or 2) // len(LEARNERS)))
    env = _env(work, extra_trainers=True, HECKTOR_GPU_CHECK_LENGTH=a.length, nnUNet_compile="false",
               nnUNet_n_proc_DA=str(n_da), nnUNet_def_n_proc=str(n_da))
    if a.tiny:
        env["HECKTOR_NNUNET_DEBUG"] = "1"  # HECKTOR trainers narrowed; stock keeps its network
    t0 = time.perf_counter()
    procs = {}
    for trainer in LEARNERS:
        log = work / "logs" / f"train_{trainer}.log"
        procs[trainer] = (subprocess.Popen(
            [str(BIN / "nnUNetv2_train"), str(LEARN_ID), "3d_fullres", "0", "-tr", f"{trainer}_GpuCheck",
             "-device", a.device], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT), log)
    for trainer, (p, log) in procs.items():
        if p.wait() != 0:
            raise RuntimeError(f"training {trainer} failed; log {log}:\n"
                               + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    train_s = time.perf_counter() - t0
    out = {"length": a.length, "iterations": _iterations(a.length), "held_out_patients": val,
           "train_seconds_concurrent": round(train_s, 1), "trainers": {}}
    for trainer in LEARNERS:
        model = work / "results" / name / f"{trainer}_GpuCheck__nnUNetPlans__3d_fullres" / "fold_0"
        restored = work / "restored" / trainer
        log = work / "logs" / f"evaluate_{trainer}.log"
        _run([BIN / "hecktor-restore", model / "validation", "--manifest",
              work / "raw" / name / "conversion_manifest.json", "-o", restored, "--quiet"], env, log)
        _run([BIN / "hecktor-evaluate", "seg", "--truth", truth, "--pred", restored, "-o", work / "eval" / trainer,
              "--n-boot", "200", "--quiet"], env, log)
        s = json.loads((work / "eval" / trainer / "summary.json").read_text())
        out["trainers"][trainer] = {k: s[k] for k in ("gtvp_dice_mean", "gtvn_dsc_agg", "gtvn_f1_agg")}
        out["trainers"][trainer]["pseudo_dice_last_epoch"] = _last_pseudo_dice(model)
    stock, ours = out["trainers"]["nnUNetTrainer"], out["trainers"][RECOMMENDED]
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


# -- part 2: step time ---------------------------------------------------------------------------
def step_trainers(tiny: bool = False) -> list[str]:
    """Stock and every GPU-worthy HECKTOR trainer (the dry run: stock and the recommended one)."""
    from hecktor_nnunet.training.registry import trainers

    if tiny:
        return ["nnUNetTrainer", RECOMMENDED]
    return ["nnUNetTrainer"] + [t.name for t in trainers() if t.axis not in ("debug", "demo")
                                and t.name not in SAME_STEP_AS]


def step_worker(trainer: str, dataset_id: int, device: str, warmup: int, iters: int) -> dict:
    """Seconds per ``train_step`` (after ``warmup``) and peak GPU memory of one trainer (run in its own process)."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    t = get_trainer_from_args(str(dataset_id), "3d_fullres", 0, trainer, "nnUNetPlans", device=torch.device(device))
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


def step_time(work: Path, a: argparse.Namespace, save=lambda part: None, deadline: float = float("inf")) -> dict:
    """Step time of every trainer vs stock; ``save(part)`` after each row; trainers not started by
    ``deadline`` (a ``time.perf_counter()`` value) are listed as skipped instead of timed."""
    runs = [(tr, False) for tr in step_trainers(a.tiny)]
    if a.device == "cuda":
        runs += [("nnUNetTrainer", True), (RECOMMENDED, True)]
    rows = []
    part = {"dataset": "realistic" if not a.tiny else "tiny", "warmup": a.warmup, "iters": a.iters,
            "da_workers": a.da_workers, "target_ratio": STEP_TARGET, "results": rows, "skipped": []}
    for trainer, compiled in runs:
        if time.perf_counter() > deadline:
            part["skipped"].append({"trainer": trainer, "compile": compiled, "why": "--budget-s reached"})
            continue
        env = _env(work, nnUNet_compile="true" if compiled else "false",
                   nnUNet_n_proc_DA=str(a.da_workers), nnUNet_results=str(work / "results_step"))
        if a.tiny:
            env["HECKTOR_NNUNET_DEBUG"] = "1"
        r = _worker(["--step-worker", trainer, "--device", a.device, "--warmup", str(a.warmup),
                     "--iters", str(a.iters)], env, work / "logs" / f"step_{trainer}_{int(compiled)}.log")
        r["compile"] = compiled
        stock = next((s for s in rows + [r] if s["trainer"] == "nnUNetTrainer" and s["compile"] == compiled), None)
        r["ratio_to_stock"] = r["s_per_iter"] / stock["s_per_iter"] if stock else None
        rows.append(r)
        save(part)
        print(f"  step {trainer:<48} compile={compiled!s:<5} {r['s_per_iter']:.3f} s/it", flush=True)
    return part


# -- part 3: inference ---------------------------------------------------------------------------
def predict_worker(release: Path, out: Path, dataset_id: int, trainer: str, folds: list[str], device: str,
                   mirroring: bool) -> dict:
    """Seconds of ``predict`` (nnU-Net's part and the rest) and peak GPU memory, in this process."""
    import torch

    import hecktor_nnunet.inference.predict as hp

    nnunet = {}
    original = hp.run_nnunet

    def timed_run_nnunet(*args, **kwargs):
        t = time.perf_counter()
        original(*args, **kwargs)
        nnunet["s"] = time.perf_counter() - t

    hp.run_nnunet = timed_run_nnunet  # this benchmark only: time the nnU-Net stage separately
    t0 = time.perf_counter()
    hp.predict(release, out, dataset=dataset_id, trainer=trainer, folds=folds, device=device, mirroring=mirroring,
               quiet=True)
    total = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None
    return {"folds": len(folds), "tta": mirroring, "seconds": total, "nnunet_seconds": nnunet["s"],
            "other_seconds": total - nnunet["s"], "peak_gpu_gib": peak}


def inference(work: Path, a: argparse.Namespace) -> dict:
    """Predict one realistic case with the step-time run's recommended checkpoint, copied to 5 folds."""
    name = _dataset_name(work, TIMING_ID)
    model = work / "results_step" / name / f"{RECOMMENDED}__nnUNetPlans__3d_fullres"
    env = _env(work, nnUNet_results=str(work / "results_step"), nnUNet_n_proc_DA=str(a.da_workers),
               nnUNet_compile="false")
    if not (model / "fold_0" / "checkpoint_final.pth").is_file():  # the step-time part did not run
        _worker(["--step-worker", RECOMMENDED, "--device", a.device, "--warmup", "1", "--iters", "1"], env,
                work / "logs" / "checkpoint.log")
    for fold in range(1, 5):
        shutil.copytree(model / "fold_0", model / f"fold_{fold}", dirs_exist_ok=True)
    case = work / "inference_case"
    if not case.exists():
        _run([BIN / "hecktor-synth", case, "-n", "1", "--size", a.timing_size, "--seed", "11", "--quiet"], env,
             work / "logs" / "inference_case.log")
    rows = []
    one, five = ["0"], ["0", "1", "2", "3", "4"]
    combos = [(one, False), (five, True)] if a.tiny else [(one, False), (one, True), (five, False), (five, True)]
    for folds, tta in combos:
        r = _worker(["--predict-worker", str(case), "--device", a.device, "--folds", *folds]
                    + (["--tta"] if tta else []), env, work / "logs" / f"predict_{len(folds)}_{int(tta)}.log")
        rows.append(r)
        print(f"  predict folds={len(folds)} tta={tta!s:<5} {r['seconds']:.1f} s", flush=True)
    return {"case": a.timing_size, "trainer": RECOMMENDED, "results": rows,
            "challenge_limits": {"gpu": "T4 16 GB", "seconds_per_case": 600}}


# -- report --------------------------------------------------------------------------------------
def markdown(r: dict) -> str:
    """The docs/benchmarks.md block of a gpu_check.json."""
    f3 = "{:.3f}".format
    lines = [f"`benchmarks/gpu_check.py` on **{r['gpu']}** ({r['date']}, Python {r['python']}, torch {r['torch']}, "
             f"{r['cpus']} CPU cores); whole check {r['seconds']['total']:.0f} s.", ""]
    if r.get("tiny"):
        lines += ["Dry run (`--tiny`): few iterations, HECKTOR trainers narrowed by tiny mode while stock keeps its "
                  "network, so no figure below measures anything; it only shows that every part runs.", ""]
    ln = r.get("learning")
    if ln:
        lines += [f"Learning: fold 0 of the 48-patient tiny synthetic release (demo grid), {ln['iterations']} "
                  f"iterations each (`{ln['length']}` epochs x iterations x validation iterations), "
                  f"{len(ln['held_out_patients'])} held-out patients, `hecktor-evaluate` on the original CT grids.", "",
                  "| trainer | GTVp Dice | GTVn DSCagg | GTVn F1agg |", "|---|---|---|---|"]
        for name, m in ln["trainers"].items():
            lines.append(f"| `{name}` | {f3(m['gtvp_dice_mean'])} | {f3(m['gtvn_dsc_agg'])} | {f3(m['gtvn_f1_agg'])} |")
        lines += ["", "Pass marks: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in ln["pass"].items()), ""]
    st = r.get("step_time")
    if st:
        lines += [f"Step time ({st['dataset']} dataset, {st['warmup']} warm-up + {st['iters']} timed iterations, "
                  f"{st['da_workers']} DA workers, each trainer in its own process; target <= {st['target_ratio']}x):", "",
                  "| trainer | compile | s/iteration | x stock | peak GiB | network |", "|---|---|---|---|---|---|"]
        for x in st["results"]:
            peak = "" if x["peak_gib"] is None else f"{x['peak_gib']:.1f}"
            ratio = "" if x["ratio_to_stock"] is None else f"{x['ratio_to_stock']:.2f}"
            lines.append(f"| `{x['trainer']}` | {'on' if x['compile'] else 'off'} | {f3(x['s_per_iter'])} | "
                         f"{ratio} | {peak} | {x['network']} |")
        if st.get("skipped"):
            lines += ["", "Not timed (the run's `--budget-s` was spent): " + ", ".join(
                f"`{x['trainer']}`" + (" (compiled)" if x["compile"] else "") for x in st["skipped"]) + "."]
        lines.append("")
    inf = r.get("inference")
    if inf:
        lines += [f"Inference (`hecktor-predict` work on one {inf['case']} synthetic case, `{inf['trainer']}`; "
                  f"challenge limit {inf['challenge_limits']['gpu']}, {inf['challenge_limits']['seconds_per_case']} s):",
                  "", "| folds | TTA | seconds | of which nnU-Net | peak GPU GiB |", "|---|---|---|---|---|"]
        for x in inf["results"]:
            peak = "" if x["peak_gpu_gib"] is None else f"{x['peak_gpu_gib']:.1f}"
            lines.append(f"| {x['folds']} | {'on' if x['tta'] else 'off'} | {x['seconds']:.1f} | "
                         f"{x['nnunet_seconds']:.1f} | {peak} |")
    return "\n".join(lines).rstrip() + "\n"


def update_docs(result: dict, doc: Path | None = None) -> None:
    """Replace the text between the gpu_check markers of ``doc`` (docs/benchmarks.md) with :func:`markdown`."""
    doc = DOCS_BENCHMARKS if doc is None else doc
    text = doc.read_text()
    if BLOCK_BEGIN not in text or BLOCK_END not in text:
        raise ValueError(f"{doc} has no {BLOCK_BEGIN} ... {BLOCK_END} block")
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    from hecktor_nnunet.io.atomic_io import write_text

    write_text(tables.render(text, {"gpu_check": markdown(result)}), doc)


# -- main ----------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true",
                    help="dry run: 12 patients, HECKTOR trainers narrowed, a few iterations, a tiny timing case")
    ap.add_argument("--parts", nargs="+", default=["learning", "step", "inference"],
                    choices=["learning", "step", "inference"])
    ap.add_argument("--length", default=None, help="learning length EPOCHSxITERATIONSxVAL (default 10x100x5)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up iterations per trainer (default 20)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per trainer (default 30)")
    ap.add_argument("--da-workers", type=int, default=None, help="DA processes for the step time (default 12)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no step-time trainer after this many seconds of the whole check (default: no limit)")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", default=str(RESULT))
    ap.add_argument("--docs", action="store_true", help="only rewrite docs/benchmarks.md's GPU block from --out")
    ap.add_argument("--readme", action="store_true",
                    help="deprecated alias of --docs (the GPU block moved from README.md to docs/benchmarks.md)")
    ap.add_argument("--step-worker", metavar="TRAINER", help=argparse.SUPPRESS)
    ap.add_argument("--predict-worker", metavar="RELEASE", help=argparse.SUPPRESS)
    ap.add_argument("--folds", nargs="+", default=["0"], help=argparse.SUPPRESS)
    ap.add_argument("--tta", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--build-timing-dataset", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    tiny = a.tiny
    a.length = a.length or ("2x2x1" if tiny else "10x100x5")
    a.warmup = a.warmup if a.warmup is not None else (2 if tiny else 20)
    a.iters = a.iters if a.iters is not None else (2 if tiny else 30)
    a.da_workers = a.da_workers if a.da_workers is not None else (1 if tiny else min(12, os.cpu_count() or 1))
    a.timing_size = "tiny" if tiny else "realistic"
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.step_worker:
        print(json.dumps(step_worker(a.step_worker, TIMING_ID, a.device, a.warmup, a.iters)))
        return 0
    if a.predict_worker:
        out = Path(tempfile.mkdtemp(prefix="gpu_check_pred_"))
        r = predict_worker(Path(a.predict_worker), out, TIMING_ID, RECOMMENDED, a.folds, a.device, a.tta)
        shutil.rmtree(out, ignore_errors=True)
        print(json.dumps(r))
        return 0
    if a.readme:
        print("gpu_check.py: --readme is deprecated, use --docs (the GPU block is in docs/benchmarks.md now)",
              file=sys.stderr)
    if a.docs or a.readme:
        update_docs(json.loads(Path(a.out).read_text()))
        return 0
    if a.build_timing_dataset:
        build_dataset(Path(a.work), TIMING_ID, a.timing_size, 3, folds=3, seed=5,
                      workers=max(1, (os.cpu_count() or 2) // 2))
        return 0
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: no CUDA GPU here (torch.cuda.is_available() is False); "
              "run `python benchmarks/gpu_check.py --device cpu --tiny` for the dry run", file=sys.stderr)
        return 1
    from hecktor_nnunet.io.atomic_io import write_json

    t_start = time.perf_counter()
    cpus = os.cpu_count() or 1
    result = {"benchmark": "gpu_check", "date": dt.date.today().isoformat(),
              "gpu": torch.cuda.get_device_name() if a.device == "cuda" else "none (CPU dry run)",
              "device": a.device, "tiny": a.tiny, "python": platform.python_version(),
              "torch": torch.__version__, "cpus": cpus, "machine": platform.machine(), "seconds": {}}
    work_ctx = tempfile.TemporaryDirectory(prefix="gpu_check_") if a.work is None else None
    work = Path(a.work) if a.work else Path(work_ctx.name)
    work.mkdir(parents=True, exist_ok=True)

    def save(**parts) -> None:
        """Write what is measured so far: a run stopped from outside keeps its finished parts."""
        result.update(parts)
        result["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
        write_json(result, a.out)

    try:
        t0 = time.perf_counter()
        n_learn = 12 if a.tiny else 48
        timing = None
        if {"step", "inference"} & set(a.parts):
            # the timing dataset is built on the CPUs while the learners train on the GPU
            timing = subprocess.Popen([sys.executable, __file__, "--build-timing-dataset", "--work", str(work)]
                                      + (["--tiny"] if a.tiny else []), env=_env(work),
                                      stdout=open(work / "timing_dataset.log", "wb"), stderr=subprocess.STDOUT)
        if "learning" in a.parts:
            build_dataset(work, LEARN_ID, "tiny", n_learn, folds=4, seed=0, workers=max(1, cpus // 2),
                          spacing=8.0 if a.tiny else None)
            result["seconds"]["learning_dataset"] = round(time.perf_counter() - t0, 1)
            print(f"learning dataset ready ({result['seconds']['learning_dataset']} s)", flush=True)
            t1 = time.perf_counter()
            result["learning"] = learning(work, a)
            result["seconds"]["learning"] = round(time.perf_counter() - t1, 1)
            save()
            for name, m in result["learning"]["trainers"].items():
                print(f"  learned {name:<46} GTVp {m['gtvp_dice_mean']:.3f}  GTVn DSCagg {m['gtvn_dsc_agg']:.3f}  "
                      f"F1agg {m['gtvn_f1_agg']:.3f}", flush=True)
        if timing is not None:
            t1 = time.perf_counter()
            if timing.wait() != 0:
                raise RuntimeError(f"building the timing dataset failed; see {work / 'timing_dataset.log'}")
            result["seconds"]["timing_dataset_wait"] = round(time.perf_counter() - t1, 1)
        save()
        if "inference" in a.parts:  # before the step time: it is short, and the step time may meet --budget-s
            t1 = time.perf_counter()
            result["inference"] = inference(work, a)
            result["seconds"]["inference"] = round(time.perf_counter() - t1, 1)
            save()
        if "step" in a.parts:
            t1 = time.perf_counter()
            deadline = t_start + a.budget_s if a.budget_s else float("inf")
            result["step_time"] = step_time(work, a, save=lambda part: save(step_time=part), deadline=deadline)
            result["seconds"]["step_time"] = round(time.perf_counter() - t1, 1)
    finally:
        save()
        if work_ctx is not None:
            work_ctx.cleanup()
    print()
    print(markdown(result))
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
