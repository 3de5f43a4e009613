"""What the GPU check's parts share: options, nnU-Net folders, commands and processes, datasets, the results file.

Nothing here imports torch or nnU-Net at module level: a part's function that runs in its own process
(:func:`in_own_process`) sets that process's environment first, and nnU-Net reads its folders from the
environment when it is imported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "benchmarks" / "results" / "gpu_check.json"
#: the fixed-length copies of the compared trainers (``nnUNet_extTrainer`` of the learning part only)
CHECK_TRAINERS_DIR = Path(__file__).resolve().parent / "trainers"
BIN = Path(sys.executable).parent
LEARN_ID, TIMING_ID = 520, 521
DRY_RUN = "--device cpu --tiny"


@dataclass(frozen=True)
class Check:
    """Where and how a part runs.

    Attributes
    ----------
    work : Path
        Working folder (datasets, models, logs); a folder already used is reused (a re-run resumes).
    device : {"cuda", "cpu"}
    tiny : bool
        The dry run: small datasets, HECKTOR trainers narrowed by tiny mode, a few iterations.
    out : Path
        The results file.
    """

    work: Path
    device: str
    tiny: bool
    out: Path

    @property
    def cpus(self) -> int:
        return os.cpu_count() or 1


def parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The command line of a part (``module``: its ``__spec__.name``), with the options every part takes."""
    ap = argparse.ArgumentParser(prog=f"python -m {module.removesuffix('.__main__')}", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_check_arguments(ap)
    return ap


def add_check_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every part takes (``--device``, ``--tiny``, ``--work``, ``--out``)."""
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true",
                    help="dry run: small datasets, HECKTOR trainers narrowed, a few iterations (measures nothing)")
    ap.add_argument("--work", default=None, help="working folder, reused by a re-run (default: a temporary one)")
    ap.add_argument("--out", default=str(RESULT), help=f"results file (default {RESULT.relative_to(ROOT)})")


def missing_device(device: str) -> str | None:
    """Why ``device`` cannot run here (no CUDA GPU), or None."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return (f"no CUDA GPU here (torch.cuda.is_available() is False); the CPU dry run is `{DRY_RUN}`")
    return None


def run_check(a: argparse.Namespace, part: Callable[[Check], Any]) -> int:
    """Run ``part`` with the options of ``a`` in its working folder (a temporary one unless ``--work``).

    Returns 1, saying why on stderr, when the device is missing; 0 otherwise.
    """
    why = missing_device(a.device)
    if why:
        print(f"GPU check: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        part(Check(work, a.device, a.tiny, Path(a.out)))
    return 0


def nnunet_env(work: Path, *, check_trainers: bool = False, tiny: bool = False, **more: str) -> dict[str, str]:
    """Environment for nnU-Net in ``work``: its folders, the HECKTOR trainers (and the check's), tiny mode."""
    from hecktor_nnunet.training.base_trainer import DEBUG_ENV
    from hecktor_nnunet.training.registry import TRAINERS_DIR

    ext = [str(TRAINERS_DIR)] + ([str(CHECK_TRAINERS_DIR)] if check_trainers else [])
    env = {**os.environ, "nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results"), "nnUNet_extTrainer": os.pathsep.join(ext),
           "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.pop(DEBUG_ENV, None)
    if tiny:
        env[DEBUG_ENV] = "1"  # HECKTOR trainers narrowed; stock nnU-Net keeps its network
    env.update(more)
    return env


def run(cmd: list, env: dict[str, str], log: Path) -> None:
    """Run a command, its output appended to ``log``.

    Raises
    ------
    RuntimeError
        When it fails, with the log's last 30 lines.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        p = subprocess.run([str(c) for c in cmd], env=env, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise RuntimeError(f"{Path(str(cmd[0])).name} failed (exit {p.returncode}); log {log}:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _child(func: Callable, args: tuple, env: dict[str, str], log: str, conn) -> None:
    """The body of :func:`in_own_process`'s process: output to ``log``, ``env`` set, ``func`` run."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.clear()
    os.environ.update(env)
    try:
        conn.send(("ok", func(*args)))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, named
        traceback.print_exc()
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


class OwnProcess:
    """``func(*args)`` started in a fresh Python process (spawned: nothing of this one's state is shared)."""

    def __init__(self, func: Callable, *args, env: dict[str, str], log: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.what, self.log = f"{func.__name__}{args}", log
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_child, args=(func, args, env, str(log), send))
        self._process.start()
        send.close()

    def result(self) -> Any:
        """Wait for the process; its function's return value.

        Raises
        ------
        RuntimeError
            When the function raised or the process died, with the log's last 30 lines.
        """
        try:
            status, value = self._receive.recv()
        except EOFError:
            status, value = "error", "the process ended without a result"
        self._process.join()
        if status != "ok":
            raise RuntimeError(f"{self.what} failed: {value}; log {self.log}:\n{tail(self.log)}")
        return value


def in_own_process(func: Callable, *args, env: dict[str, str], log: Path) -> Any:
    """``func(*args)`` in a fresh process with environment ``env`` and output in ``log``; its return value."""
    return OwnProcess(func, *args, env=env, log=log).result()


def build_dataset(work: Path, dataset_id: int, size: str, cases: int, *, folds: int, seed: int,
                  spacing: float | None = None) -> bool:
    """hecktor-synth -> hecktor-convert (centre-stratified folds) -> nnUNetv2_plan_and_preprocess.

    The release is ``work/release_<dataset_id>``. A dataset already planned in ``work`` is reused (a
    re-run with ``--work`` resumes): False then, True when it was built.
    """
    workers = max(1, (os.cpu_count() or 2) // 2)
    env = nnunet_env(work, nnUNet_n_proc_DA=str(workers), nnUNet_def_n_proc=str(workers))
    release = work / f"release_{dataset_id}"
    if list((work / "preprocessed").glob(f"Dataset{dataset_id:03d}_*/nnUNetPlans.json")):
        return False
    for stale in [release, *(work / "raw").glob(f"Dataset{dataset_id:03d}_*"),
                  *(work / "preprocessed").glob(f"Dataset{dataset_id:03d}_*")]:
        shutil.rmtree(stale, ignore_errors=True)
    log = work / "logs" / f"dataset_{dataset_id}.log"
    run([BIN / "hecktor-synth", release, "-n", cases, "--size", size, "--seed", seed, "--quiet"], env, log)
    convert = [BIN / "hecktor-convert", release, "-d", dataset_id, "--name", f"GpuCheck{size.title()}",
               "-o", work / "raw", "-np", workers, "--quiet"]
    if folds > 1:
        convert += ["--splits", "centre-stratified", "--folds", folds, "--seed", seed]
    if spacing:
        convert += ["--spacing", spacing, spacing, spacing]
    run(convert, env, log)
    run([BIN / "nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "3d_fullres", "-np", workers,
         "-npfp", workers], env, log)
    return True


def build_timing_dataset(work: Path, tiny: bool) -> bool:
    """The step-time and inference dataset: 3 ``realistic`` cases (CT 512 x 512 x 150; ``tiny`` in the dry run).

    True when it was built, False when ``work`` already held it.
    """
    return build_dataset(work, TIMING_ID, timing_size(tiny), 3, folds=3, seed=5)


def timing_size(tiny: bool) -> str:
    return "tiny" if tiny else "realistic"


def dataset_name(work: Path, dataset_id: int) -> str:
    return next(p.name for p in (work / "raw").glob(f"Dataset{dataset_id:03d}_*"))


def _header(check: Check) -> dict:
    import torch

    return {"benchmark": "gpu_check", "date": dt.date.today().isoformat(),
            "gpu": torch.cuda.get_device_name() if check.device == "cuda" else "none (CPU dry run)",
            "device": check.device, "tiny": check.tiny, "python": platform.python_version(),
            "torch": torch.__version__, "cpus": check.cpus, "machine": platform.machine(), "seconds": {}}


def record(check: Check, seconds: dict[str, float] | None = None, **parts: dict) -> dict:
    """Write ``parts`` (and the ``seconds`` they took) into the results file; the file's new content.

    The file's other parts are kept when it comes from the same GPU, device and mode (so the parts can
    run one at a time); otherwise it starts afresh. ``seconds["total"]`` is the sum of the others.
    """
    from hecktor_nnunet.io.atomic_io import write_json

    fresh = _header(check)
    old = json.loads(check.out.read_text()) if check.out.is_file() else {}
    same = all(old.get(k) == fresh[k] for k in ("benchmark", "gpu", "device", "tiny"))
    result = {**old, "date": fresh["date"]} if same else fresh
    result.update(parts)
    result["seconds"] = {k: v for k, v in {**result["seconds"], **(seconds or {})}.items() if k != "total"}
    result["seconds"]["total"] = round(sum(result["seconds"].values()), 1)
    write_json(result, check.out)
    return result
