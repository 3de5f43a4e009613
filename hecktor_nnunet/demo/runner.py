"""Runs the demo's steps in a working folder: resumable, each command logged, timed and recorded.

The step runner is one of the two places that print (the other is ``cli/``): the commands' output
streams through, and the narration goes through :meth:`DemoRun.note` (both silent under ``quiet``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from hecktor_nnunet.demo.settings import FOLD, DemoPaths, DemoSettings
from hecktor_nnunet.demo.steps import STEP_NAMES, STEPS
from hecktor_nnunet.io.atomic_io import write_json


#: the variables of the tools' environment a demo folder records (``.demo/environment.json``)
RECORDED_ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", "nnUNet_def_n_proc",
                "nnUNet_n_proc_DA")


def console_script(name: str) -> str:
    """Absolute path of a console script: next to this Python first, then on ``PATH``."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"command {name!r} not found next to {sys.executable} nor on PATH; "
                                "install the project (make install)")
    return found


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m {s:02d}s" if m else f"{seconds:.1f}s"


class DemoRun:
    """Runs the steps in a working folder and records what ran (see the module docstring)."""

    def __init__(self, workdir: str | Path, settings: DemoSettings, quiet: bool = False):
        self.paths = DemoPaths(Path(workdir).resolve())
        self.settings = settings
        self.quiet = quiet
        self.records: list[dict] = []
        self.env = dict(os.environ)
        self.env.update({
            "nnUNet_raw": str(self.paths.raw), "nnUNet_preprocessed": str(self.paths.preprocessed),
            "nnUNet_results": str(self.paths.results),
            # nnU-Net spawns 8 export / 12 augmentation processes by default: far too many on 2 cores
            "nnUNet_def_n_proc": str(settings.workers), "nnUNet_n_proc_DA": str(settings.workers),
            "MPLBACKEND": "Agg",
        })

    # -- running commands -------------------------------------------------------------------
    def command(self, name: str, *args: str | Path, log_name: str, quiet_flag: str | None = "--quiet") -> None:
        """Run one console script; stream its output (progress bars included) and keep a log.

        Raises
        ------
        RuntimeError
            On a non-zero exit status (the message names the command and the log; under ``quiet``
            the log's tail is printed).
        """
        argv = [console_script(name), *map(str, args)]
        if self.quiet and quiet_flag:
            argv.append(quiet_flag)
        shown = shlex.join([name, *argv[1:]])
        if not self.quiet:
            print(f"$ {shown}", flush=True)
        log_path = self.paths.logs / f"{log_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(log_path, "ab") as log_file:
            log_file.write(f"$ {shown}\n".encode())
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                    cwd=self.paths.root)
            assert proc.stdout is not None
            while chunk := os.read(proc.stdout.fileno(), 65536):
                log_file.write(chunk)
                if not self.quiet:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
            code = proc.wait()
        seconds = time.perf_counter() - t0
        self.records.append({"command": shown, "seconds": round(seconds, 1), "returncode": code})
        if code != 0:
            if self.quiet:
                tail = log_path.read_text(errors="replace").splitlines()[-40:]
                print("\n".join(tail), file=sys.stderr)
            raise RuntimeError(f"`{shown}` failed with exit status {code} after {_duration(seconds)}; "
                               f"full output in {log_path}")

    def note(self, text: str) -> None:
        """Print a line of the demo's own narration (suppressed by ``quiet``)."""
        if not self.quiet:
            print(text, flush=True)

    def record(self, text: str) -> None:
        """Add a decision (not a command) to the running step's record, as a ``# comment`` line."""
        self.records.append({"command": f"# {text}", "seconds": None, "returncode": 0})

    def run_step(self, step, header: str, t_start: float) -> None:
        """Clear ``step``'s outputs and done-marker, run it, and write the marker with its commands and time."""
        marker = self.paths.markers / f"{step.name}.json"
        marker.unlink(missing_ok=True)
        for o in step.outputs(self.paths):
            _remove(o, self.paths.root)
        self.note(f"\n{'=' * 100}\n{header}\n{'=' * 100}")
        self.records = []
        t0 = time.perf_counter()
        step.run(self)
        seconds = time.perf_counter() - t0
        write_json({"step": step.name, "seconds": round(seconds, 1), "commands": self.records,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, marker)
        self.note(f"--- {step.name} done in {_duration(seconds)} (total {_duration(time.perf_counter() - t_start)})")

    # -- steps ---------------------------------------------------------------------------------
    def nnunet_env(self) -> dict[str, str]:
        """``nnUNet_extTrainer`` from ``hecktor-nnunet env`` (parsed), merged into the command environment."""
        out = subprocess.run([console_script("hecktor-nnunet"), "env"], env=self.env, capture_output=True,
                             text=True, check=True).stdout
        found = {}
        for line in out.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                key, value = words[1].split("=", 1)
                found[key] = value
        if "nnUNet_extTrainer" not in found:
            raise RuntimeError(f"`hecktor-nnunet env` printed no nnUNet_extTrainer line:\n{out}")
        self.env.update(found)
        return found


def _remove(path: Path, root: Path) -> None:
    if root not in path.resolve().parents and path.resolve() != root:
        raise ValueError(f"refusing to remove {path}: outside the demo folder {root}")
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _check_settings(paths: DemoPaths, settings: DemoSettings) -> None:
    path = paths.markers / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != asdict(settings):
            diff = {k: (before.get(k), v) for k, v in asdict(settings).items() if before.get(k) != v}
            raise ValueError(f"{paths.root} holds a demo made with other settings {diff} (was, now); "
                             "use another --workdir or delete this one")
    else:
        write_json(asdict(settings), path)


def run_demo(workdir: str | Path, settings: DemoSettings = DemoSettings(), *, quiet: bool = False,
             from_step: str | None = None) -> dict:
    """Run (or resume) the demo in ``workdir``; returns the report data (``report.json``).

    Parameters
    ----------
    workdir : path
        Working folder (created). Finished steps (done-markers in ``<workdir>/.demo``) are skipped.
    settings : DemoSettings
        Size and seeds; a folder made with other settings is refused.
    quiet : bool
        No tool output and no narration, only errors (each step's output is in ``<workdir>/logs``).
    from_step : str, optional
        Re-run this step and all later ones even if they finished.

    Raises
    ------
    ValueError
        Unknown ``from_step`` or a folder made with other settings.
    RuntimeError
        A step's command failed (the message names it and its log).
    """
    if from_step is not None and from_step not in STEP_NAMES:
        raise ValueError(f"unknown step {from_step!r}; steps: {', '.join(STEP_NAMES)}")
    run = DemoRun(workdir, settings, quiet)
    paths = run.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    _check_settings(paths, settings)
    run.nnunet_env()
    write_json({k: run.env[k] for k in RECORDED_ENV}, paths.markers / "environment.json")
    t_start = time.perf_counter()
    rerun = False
    for i, step in enumerate(STEPS, start=1):
        marker = paths.markers / f"{step.name}.json"
        rerun = rerun or step.name == from_step
        outputs = step.outputs(paths)
        header = f"[{i}/{len(STEPS)}] {step.name}: {step.title}"
        if not rerun and marker.is_file() and all(o.exists() for o in outputs):
            took = json.loads(marker.read_text())["seconds"]
            run.note(f"{header}\n    done earlier in {_duration(took)}: skipped")
            continue
        rerun = True  # every later step consumes this one's outputs
        run.run_step(step, header, t_start)
    data = json.loads(paths.report.with_suffix(".json").read_text())
    if not quiet:
        print(summary_text(data, paths, time.perf_counter() - t_start))
    return data


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def summary_text(data: dict, paths: DemoPaths, seconds: float) -> str:
    """The closing summary of a demo run: held-out metrics, the pass marks, and where the report is."""
    lines = [f"\nDemo finished in {_duration(seconds)} (this run). Held-out patients:"]
    seg = data.get("segmentation")
    if seg:
        m = seg["metrics"]
        lines.append(f"  segmentation (fold {FOLD} validation, {seg['n_patients']} patients): "
                     f"GTVp Dice {_f(m['gtvp_dice_mean']['value'])}, GTVn DSCagg {_f(m['gtvn_dsc_agg']['value'])}, "
                     f"GTVn F1agg {_f(m['gtvn_f1_agg']['value'])}")
    comp = data.get("prognosis_comparison")
    if comp:
        lines.append(f"  prognosis ({comp['held_out_patients']} patients):  {'features from':<16} "
                     f"{'RFS C-index':>11}  {'HPV bal. acc.':>13}  {'HPV AUC':>7}")
        for row in comp["rows"]:
            lines.append(f"  {'':<30}{row['source']:<16} {_f(row['rfs_c_index']):>11}  "
                         f"{_f(row['hpv_balanced_accuracy']):>13}  {_f(row['hpv_auc']):>7}")
    marks = data.get("pass_marks") or []
    if marks:
        lines.append("  pass marks: " + "; ".join(
            f"{m['metric']} {_f(m['value'])} {m['rule']} {m['mark']:.2f} "
            f"{'PASS' if m['met'] else ('not measured' if m['met'] is None else 'FAIL')}" for m in marks))
    for note in data.get("notes", []):
        lines.append(f"  NOTE: {note}")
    lines.append(f"Report: {paths.report}  (open it in a browser; data in {paths.report.with_suffix('.json')})")
    return "\n".join(lines)
