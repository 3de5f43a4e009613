"""The whole pipeline on a synthetic release, step by step, resumable, ending in a report.

Every step runs the real console scripts as subprocesses, exactly as a user would type them
(``hecktor-synth``, ``hecktor-convert``, ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``,
``hecktor-predict``, ``hecktor-evaluate``, ``hecktor-radiomics``, ``hecktor-prognosis``,
``hecktor-report``); the commands, their durations and the environment they ran with are recorded
in ``<workdir>/.demo/<step>.json`` (the done-marker that makes a re-run skip the step) and listed
in the report.

Honesty of the estimates: the conversion writes centre-stratified folds; the segmentation network
is trained on fold 0's training patients only, and fold 0's validation patients are held out from
everything that learns (network, radiomics feature selection, prognosis models). Segmentation, RFS
and HPV are scored on those held-out patients; the prognosis models are also cross-validated on the
training patients. The tiny CPU trainer (2 epochs x 2 iterations) is NOT a real model: the demo
shows the plumbing, not the accuracy.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from hecktor_nnunet.atomic_io import write_json, write_table


DEMO_TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"
DATASET_ID = 501
DATASET_NAME = "HECKTORDEMO"
CONFIGURATION = "3d_fullres"
FOLD = 0
MARKERS = ".demo"
NOT_A_MODEL = ("This report comes from `hecktor-demo`: a synthetic release and the tiny CPU trainer "
               f"{DEMO_TRAINER} (2 epochs x 2 iterations). It is NOT a real model: the numbers show that the "
               "pipeline runs end to end, not what nnU-Net achieves on HECKTOR.")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo generates and how it runs.

    Attributes
    ----------
    cases : int
        Labelled synthetic patients (tiny size: CT 48x48x48 voxels at 4.2x4.2x6 mm).
    unlabelled : int
        Further patients with images and outcomes but no segmentation label (like the release's
        Task 2/3-only patients): segmented by the network and used to train the prognosis models.
    folds : int
        Centre-stratified folds written by the conversion; fold 0 is trained, its validation
        patients are the held-out test set of the whole demo.
    prognosis_folds : int
        Folds of the prognosis cross-validation on the training patients.
    seed : int
        Seed of the synthetic release, the splits and the prognosis models.
    workers : int
        Processes given to each tool (``-np``) and to nnU-Net (``nnUNet_def_n_proc``, ``nnUNet_n_proc_DA``).
    n_boot : int
        Bootstrap resamples of the 95% intervals.
    trainer : str
        nnU-Net trainer (``-tr``).
    """

    cases: int = 48
    unlabelled: int = 24
    folds: int = 4
    prognosis_folds: int = 5
    seed: int = 0
    workers: int = 2
    n_boot: int = 1000
    trainer: str = DEMO_TRAINER


#: The smallest demo that still exercises every step (used by the test suite).
SMALLEST = DemoSettings(cases=16, unlabelled=8, folds=2, prognosis_folds=3, n_boot=100)


@dataclass(frozen=True)
class DemoPaths:
    """Every path of a demo working folder, computed once."""

    root: Path

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def oracle(self) -> Path:
        return self.root / "release_oracle.csv"

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    @property
    def dataset_folder(self) -> str:
        return f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"

    @property
    def dataset(self) -> Path:
        return self.raw / self.dataset_folder

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def heldout(self) -> Path:
        return self.root / "heldout"

    @property
    def train_clinical(self) -> Path:
        return self.root / "train_clinical.csv"

    @property
    def features(self) -> Path:
        return self.root / "radiomics" / "features.parquet"

    @property
    def prognosis(self) -> Path:
        return self.root / "prognosis"

    def eval(self, task: str) -> Path:
        return self.root / "eval" / task

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def markers(self) -> Path:
        return self.root / MARKERS

    @property
    def report(self) -> Path:
        return self.root / "report.html"


@dataclass(frozen=True)
class Step:
    """One demo step: a name (``--from-step``), what it does, its function and the outputs it owns."""

    name: str
    title: str
    run: Callable[["DemoRun"], None]
    outputs: Callable[[DemoPaths], list[Path]]


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


def _generate(r: DemoRun) -> None:
    s = r.settings
    r.command("hecktor-synth", r.paths.release, "-n", s.cases, "--unlabelled", s.unlabelled, "--size", "tiny",
              "--seed", s.seed, "--oracle", r.paths.oracle, log_name="generate")


def _convert(r: DemoRun) -> None:
    s = r.settings
    r.command("hecktor-convert", r.paths.release, "-d", DATASET_ID, "--name", DATASET_NAME, "-o", r.paths.raw,
              "--splits", "centre-stratified", "--folds", s.folds, "--seed", s.seed, "-np", s.workers,
              log_name="convert")


def _plan(r: DemoRun) -> None:
    w = r.settings.workers
    r.command("nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", CONFIGURATION, "--verify_dataset_integrity",
              "-np", w, "-npfp", w, log_name="plan", quiet_flag=None)


def _train(r: DemoRun) -> None:
    r.command("nnUNetv2_train", DATASET_ID, CONFIGURATION, FOLD, "-tr", r.settings.trainer, "-device", "cpu",
              log_name="train", quiet_flag=None)


def _predict(r: DemoRun) -> None:
    r.command("hecktor-predict", "-i", r.paths.release, "-o", r.paths.predictions, "-d", DATASET_ID,
              "-tr", r.settings.trainer, "-c", CONFIGURATION, "-f", FOLD, "--device", "cpu",
              "-np", r.settings.workers, "--disable-tta", log_name="predict")


def heldout_split(paths: DemoPaths) -> tuple[list[str], list[str]]:
    """Fold 0's training and validation (held-out) patients from the dataset's ``splits_final.json``."""
    splits = json.loads((paths.dataset / "splits_final.json").read_text())
    return sorted(splits[FOLD]["train"]), sorted(splits[FOLD]["val"])


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def _holdout(r: DemoRun) -> None:
    """The held-out patients as a flat release (links to CT, PET, label), their predictions and clinical tables."""
    from hecktor_nnunet.evaluate import find_predictions
    from hecktor_nnunet.release import read_release

    train, val = heldout_split(r.paths)
    release = read_release(r.paths.release)
    preds = find_predictions(r.paths.predictions)
    for pid in val:
        case = release.case(pid)
        for source, name in ((case.ct, f"{pid}__CT"), (case.pet, f"{pid}__PT"), (case.label, pid)):
            suffix = ".nii.gz" if source.name.endswith(".nii.gz") else source.suffix
            _link(source, r.paths.heldout / "release" / f"{name}{suffix}")
        _link(preds[pid], r.paths.heldout / "predictions" / preds[pid].name)
    clinical = pd.read_csv(r.paths.dataset / "clinical.csv")
    # the prognosis models learn from everyone but the held-out patients (incl. the unlabelled ones)
    prognosis_train = clinical[~clinical["PatientID"].isin(val)]
    write_table(prognosis_train, r.paths.train_clinical)
    held = clinical[clinical["PatientID"].isin(val)]
    write_table(held, r.paths.heldout / "clinical.csv")
    # what the models are given at prediction time: no outcome columns
    write_table(held.drop(columns=[c for c in ("Relapse", "RFS") if c in held.columns]),
                r.paths.heldout / "clinical_inputs.csv")
    text = (f"fold {FOLD}: network trained on {len(train)} patient(s); prognosis models on {len(prognosis_train)} "
            f"(incl. unlabelled); {len(val)} held-out patient(s): {', '.join(val)}")
    r.note(text)
    r.records.append({"command": f"# {text} (from {r.paths.dataset / 'splits_final.json'})", "seconds": None,
                      "returncode": 0})


def _evaluate_seg(r: DemoRun) -> None:
    h = r.paths.heldout
    r.command("hecktor-evaluate", "seg", "--truth", h / "release", "--pred", h / "predictions",
              "-o", r.paths.eval("seg"), "-np", r.settings.workers, "--n-boot", r.settings.n_boot,
              log_name="evaluate_seg")


def write_demo_params(folder: Path) -> dict[str, Path]:
    """PyRadiomics params files for the demo: the shipped ones reduced to first-order features at 4 mm.

    The tiny trainer's masks cover most of each image; texture and shape features (PyRadiomics'
    maximum diameters are quadratic in the surface size) would take minutes per patient on them.
    Everything else (binning, resegmentation, regions, PET descriptors) is as shipped.
    """
    import yaml

    from hecktor_nnunet.atomic_io import write_text
    from hecktor_nnunet.prognosis.radiomics import DEFAULT_PARAMS

    out = {}
    for modality, shipped in DEFAULT_PARAMS.items():
        params = yaml.safe_load(shipped.read_text())
        params["featureClass"] = {"firstorder": None}
        params["setting"]["resampledPixelSpacing"] = [4, 4, 4]
        path = folder / f"demo_{modality.lower()}.yaml"
        write_text(f"# hecktor-demo: {shipped.name} reduced to first-order features at 4 mm (fast on the tiny\n"
                   "# trainer's very large masks); use the shipped params files on real data\n"
                   + yaml.safe_dump(params, sort_keys=False), path)
        out[modality] = path
    return out


def _radiomics(r: DemoRun) -> None:
    params = write_demo_params(r.paths.root / "radiomics")
    r.command("hecktor-radiomics", "--release", r.paths.release, "--masks", r.paths.predictions,
              "-o", r.paths.features, "--params-pet", params["PET"], "--params-ct", params["CT"],
              "-np", r.settings.workers, "--cache", r.paths.root / "radiomics" / "cache", log_name="radiomics")


def _prognosis(r: DemoRun) -> None:
    s = r.settings
    quiet = ["--quiet"] if r.quiet else []
    for task in ("rfs", "hpv"):
        out = r.paths.prognosis / task
        common = ["--features", r.paths.features, "--clinical", r.paths.train_clinical, "--seed", s.seed,
                  "--bootstrap", s.n_boot]
        r.command("hecktor-prognosis", *quiet, "cv", task, *common, "-o", out / "cv", "--repeats", 1,
                  "--folds", s.prognosis_folds, log_name="prognosis", quiet_flag=None)
        r.command("hecktor-prognosis", *quiet, "train", task, *common, "-o", out / "model", "--no-cv",
                  log_name="prognosis", quiet_flag=None)
        r.command("hecktor-prognosis", *quiet, "predict", "--model", out / "model", "--features", r.paths.features,
                  "--clinical", r.paths.heldout / "clinical_inputs.csv", "-o", out / "heldout_predictions.csv",
                  log_name="prognosis", quiet_flag=None)


def _evaluate_prognosis(r: DemoRun) -> None:
    for task in ("rfs", "hpv"):
        r.command("hecktor-evaluate", task, "--truth", r.paths.heldout / "clinical.csv",
                  "--pred", r.paths.prognosis / task / "heldout_predictions.csv", "-o", r.paths.eval(task),
                  "--n-boot", r.settings.n_boot, log_name="evaluate_prognosis")


def _report(r: DemoRun) -> None:
    r.command("hecktor-report", "--workdir", r.paths.root, log_name="report")


STEPS: tuple[Step, ...] = (
    Step("generate", "synthetic release (hecktor-synth)", _generate, lambda p: [p.release, p.oracle]),
    Step("convert", "release -> nnU-Net raw dataset, centre-stratified folds (hecktor-convert)", _convert,
         lambda p: [p.dataset]),
    Step("plan", "nnU-Net fingerprint, plans and preprocessing (nnUNetv2_plan_and_preprocess)", _plan,
         lambda p: [p.preprocessed / p.dataset_folder]),
    Step("train", f"train fold {FOLD} on the CPU (nnUNetv2_train)", _train, lambda p: [p.results / p.dataset_folder]),
    Step("predict", "segment every patient, restore onto the original CT grids (hecktor-predict)", _predict,
         lambda p: [p.predictions]),
    Step("holdout", f"held-out patients = fold {FOLD}'s validation set", _holdout,
         lambda p: [p.heldout, p.train_clinical]),
    Step("evaluate_seg", "segmentation metrics on the held-out patients (hecktor-evaluate seg)", _evaluate_seg,
         lambda p: [p.eval("seg")]),
    Step("radiomics", "PET/CT radiomics of the predicted masks (hecktor-radiomics, demo params)", _radiomics,
         lambda p: [p.features.parent]),
    Step("prognosis", "RFS and HPV models: cross-validate, train, predict the held-out patients (hecktor-prognosis)",
         _prognosis, lambda p: [p.prognosis]),
    Step("evaluate_prognosis", "RFS C-index and HPV balanced accuracy on the held-out patients (hecktor-evaluate)",
         _evaluate_prognosis, lambda p: [p.eval("rfs"), p.eval("hpv")]),
    Step("report", "report.html and report.json (hecktor-report)", _report,
         lambda p: [p.report, p.report.with_suffix(".json")]),
)
STEP_NAMES = tuple(s.name for s in STEPS)


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


def recorded_commands(workdir: str | Path) -> list[dict]:
    """The commands of every finished step, in order (``step``, ``command``, ``seconds``)."""
    paths = DemoPaths(Path(workdir))
    out = []
    env_file = paths.markers / "environment.json"
    if env_file.is_file():
        env = json.loads(env_file.read_text())
        out.append({"step": "environment", "command": "\n".join(f"export {k}={shlex.quote(v)}"
                                                                 for k, v in env.items()), "seconds": None})
    for name in STEP_NAMES:
        marker = paths.markers / f"{name}.json"
        if marker.is_file():
            for rec in json.loads(marker.read_text())["commands"]:
                out.append({"step": name, "command": rec["command"], "seconds": rec["seconds"]})
    return out


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
    env = {"nnUNet_raw": str(paths.raw), "nnUNet_preprocessed": str(paths.preprocessed),
           "nnUNet_results": str(paths.results), **run.nnunet_env(),
           "nnUNet_def_n_proc": str(settings.workers), "nnUNet_n_proc_DA": str(settings.workers)}
    write_json(env, paths.markers / "environment.json")
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
        marker.unlink(missing_ok=True)
        for o in outputs:
            _remove(o, paths.root)
        run.note(f"\n{'=' * 100}\n{header}\n{'=' * 100}")
        run.records = []
        t0 = time.perf_counter()
        step.run(run)
        seconds = time.perf_counter() - t0
        write_json({"step": step.name, "seconds": round(seconds, 1), "commands": run.records,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, marker)
        run.note(f"--- {step.name} done in {_duration(seconds)} (total {_duration(time.perf_counter() - t_start)})")
    data = json.loads(paths.report.with_suffix(".json").read_text())
    if not quiet:
        print(summary_text(data, paths, time.perf_counter() - t_start))
    return data


def summary_text(data: dict, paths: DemoPaths, seconds: float) -> str:
    """The closing summary of a demo run: held-out metrics and where the report is."""
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = [f"\nDemo finished in {_duration(seconds)} (this run). Held-out patients (fold {FOLD} validation):"]
    seg = data.get("segmentation")
    if seg:
        m = seg["metrics"]
        lines.append(f"  segmentation ({seg['n_patients']} patients): GTVp Dice {f(m['gtvp_dice_mean']['value'])}, "
                     f"GTVn DSCagg {f(m['gtvn_dsc_agg']['value'])}, GTVn F1agg {f(m['gtvn_f1_agg']['value'])}")
    if data.get("rfs"):
        r = data["rfs"]
        lo, hi = r["c_index_ci"] or (None, None)
        lines.append(f"  RFS: C-index {f(r['c_index'])} (95% CI {f(lo)}-{f(hi)}), {r['n_patients']} patients, "
                     f"{r['n_events']} relapses")
    if data.get("hpv"):
        h = data["hpv"]
        lo, hi = h["balanced_accuracy_ci"] or (None, None)
        lines.append(f"  HPV: balanced accuracy {f(h['balanced_accuracy'])} (95% CI {f(lo)}-{f(hi)}), "
                     f"AUC {f(h['auc'])}, {h['n_patients']} patients")
    lines.append(f"  (tiny CPU trainer: NOT a real model; these numbers only show that the pipeline runs)")
    lines.append(f"Report: {paths.report}  (open it in a browser; data in {paths.report.with_suffix('.json')})")
    return "\n".join(lines)


def demo_report_inputs(workdir: str | Path):
    """:class:`~hecktor_nnunet.report.ReportInputs` of a demo folder (what ``hecktor-report --workdir`` reads)."""
    from hecktor_nnunet.report import ReportInputs

    p = DemoPaths(Path(workdir).resolve())
    if not (p.markers / "settings.json").is_file():
        raise FileNotFoundError(f"{p.root} is not a hecktor-demo folder (no {MARKERS}/settings.json); "
                                "give the folders explicitly (hecktor-report --help)")

    def present(path: Path) -> Path | None:
        return path if path.exists() else None

    return ReportInputs(
        dataset=present(p.dataset), seg_eval=present(p.eval("seg")), rfs_eval=present(p.eval("rfs")),
        hpv_eval=present(p.eval("hpv")), prognosis_dir=present(p.prognosis), features=present(p.features),
        release=present(p.heldout / "release"), pred=present(p.heldout / "predictions"),
        commands=recorded_commands(p.root), notes=[NOT_A_MODEL], title="HECKTOR pipeline demo (synthetic data)")
