"""The whole pipeline on a synthetic release, step by step, resumable, ending in a report.

Every step runs the real console scripts as subprocesses, exactly as a user would type them
(``hecktor-synth``, ``hecktor-convert``, ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``,
``hecktor-predict``, ``hecktor-evaluate``, ``hecktor-radiomics``, ``hecktor-prognosis``,
``hecktor-report``); the commands, their durations and the environment they ran with are recorded
in ``<workdir>/.demo/<step>.json`` (the done-marker that makes a re-run skip the step) and listed
in the report.

Honesty of the estimates: the conversion writes centre-stratified folds; the segmentation network
(:data:`DEMO_TRAINER`, a real nnU-Net training sized for 2 CPU cores) is trained on fold 0's
training patients only, and fold 0's validation patients are held out from everything that learns.
The prognosis models are trained on the other labelled patients and most image-only patients (all
segmented by the network); the held-out set of the prognosis adds a centre-stratified share of the
image-only patients to the segmentation's held-out patients. RFS and HPV are scored there from the
predicted masks, from the true masks (written outside the release by ``hecktor-synth
--oracle-labels``), from clinical variables alone, and by the oracle (the planted risk), side by side.
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

from hecktor_nnunet.io.atomic_io import write_json, write_table


DEMO_TRAINER = "nnUNetTrainerHecktorDemoCPU"
TINY_TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"
DATASET_ID = 501
DATASET_NAME = "HECKTORDEMO"
CONFIGURATION = "3d_fullres"
FOLD = 0
MARKERS = ".demo"
#: Pass marks on the held-out patients (issue 14): the demo says whether each is met.
PASS_MARKS = {"gtvp_dice_mean": 0.60, "gtvn_dsc_agg": 0.30, "rfs_c_index_predicted": 0.65,
              "rfs_c_index_gap_to_true": 0.05, "hpv_balanced_accuracy_predicted": 0.65}
#: Where the prognosis features come from, in the order of the comparison table.
MASK_SOURCES = ("predicted", "true", "clinical", "oracle")
NOT_A_MODEL = ("The segmentation network of this run stays below the demo's pass mark on its held-out patients "
               "(GTVp Dice < {mark:.2f}): it is NOT a real model, and its numbers show that the pipeline runs "
               "end to end, not what nnU-Net achieves on HECKTOR.")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo generates and how it runs.

    Attributes
    ----------
    cases : int
        Labelled synthetic patients (tiny size: CT 48x48x48 voxels at 4.2x4.2x6 mm).
    unlabelled : int
        Further patients with images and outcomes but no segmentation label (like the release's
        Task 2/3-only patients): segmented by the network and used by the prognosis models.
    folds : int
        Centre-stratified folds written by the conversion; fold 0 is trained, its validation
        patients are the held-out test set of the segmentation (and part of the prognosis's).
    prognosis_holdout : float
        Share of the image-only patients held out (with the segmentation's held-out patients) to
        score the prognosis models; the rest trains them.
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
    unlabelled: int = 120
    folds: int = 4
    prognosis_holdout: float = 0.4
    prognosis_folds: int = 5
    seed: int = 0
    workers: int = 2
    n_boot: int = 1000
    trainer: str = DEMO_TRAINER


#: The smallest demo that still exercises every step (used by the test suite): the tiny trainer,
#: which shows the plumbing only.
SMALLEST = DemoSettings(cases=16, unlabelled=16, folds=2, prognosis_holdout=0.5, prognosis_folds=3, n_boot=100,
                        trainer=TINY_TRAINER)


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
    def oracle_labels(self) -> Path:
        """True label maps of every patient (image-only ones included), outside the release."""
        return self.root / "release_oracle_labels"

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
        """Radiomics of the predicted masks."""
        return self.root / "radiomics" / "features.parquet"

    @property
    def features_true(self) -> Path:
        """Radiomics of the true masks."""
        return self.root / "radiomics_true" / "features.parquet"

    @property
    def prognosis(self) -> Path:
        """Models from the predicted masks (``rfs/``, ``hpv/``); the other sources in ``prognosis_<source>/``."""
        return self.root / "prognosis"

    def prognosis_of(self, source: str) -> Path:
        return self.prognosis if source == "predicted" else self.root / f"prognosis_{source}"

    def eval(self, task: str) -> Path:
        return self.root / "eval" / task

    def eval_of(self, task: str, source: str) -> Path:
        """``hecktor-evaluate`` folder of one task and mask source (``eval/rfs`` is the predicted masks')."""
        return self.eval(task if source == "predicted" else f"{task}_{source}")

    @property
    def comparison(self) -> Path:
        """Held-out RFS / HPV figures of every source of prognosis features (:func:`prognosis_comparison`)."""
        return self.root / "eval" / "prognosis_comparison.json"

    def progress(self, trainer: str) -> Path:
        """nnU-Net's learning curve (``progress.png``) of the trained fold."""
        return self.results / self.dataset_folder / f"{trainer}__nnUNetPlans__{CONFIGURATION}" / f"fold_{FOLD}" \
            / "progress.png"

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
              "--seed", s.seed, "--oracle", r.paths.oracle, "--oracle-labels", r.paths.oracle_labels,
              log_name="generate")


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


def prognosis_split(clinical: pd.DataFrame, segmentation_heldout: list[str], labelled: set[str], share: float,
                    seed: int) -> tuple[list[str], list[str]]:
    """Training and held-out patients of the prognosis models.

    Held out: the segmentation's held-out patients plus a centre- and relapse-stratified ``share`` of
    the image-only patients (in tenths, via :func:`~hecktor_nnunet.dataset_conversion.splits.make_splits`).
    Trained on: everyone else.
    """
    from hecktor_nnunet.dataset_conversion.splits import make_splits

    image_only = clinical[~clinical["PatientID"].isin(labelled)]
    held = set(segmentation_heldout)
    tenths = int(round(10 * share))
    if tenths and len(image_only) >= 10:
        for fold in make_splits(image_only, "centre-stratified", n_folds=10, seed=seed)[:tenths]:
            held.update(fold["val"])
    ids = clinical["PatientID"].astype(str)
    return sorted(set(ids) - held), sorted(held)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def _holdout(r: DemoRun) -> None:
    """Held-out patients: their true labels and predictions (links), the clinical tables of both splits."""
    from hecktor_nnunet.io.label_maps import find_label_maps
    from hecktor_nnunet.io.release import read_release

    seg_train, seg_val = heldout_split(r.paths)
    release = read_release(r.paths.release)
    preds = find_label_maps(r.paths.predictions)
    for pid in seg_val:
        label = release.case(pid).label
        _link(label, r.paths.heldout / "labels" / f"{pid}.nii.gz")
        _link(preds[pid], r.paths.heldout / "predictions" / preds[pid].name)
    clinical = pd.read_csv(r.paths.dataset / "clinical.csv")
    labelled = {c.patient_id for c in release.cases if c.label is not None}
    train, held = prognosis_split(clinical, seg_val, labelled, r.settings.prognosis_holdout, r.settings.seed)
    write_table(clinical[clinical["PatientID"].isin(train)], r.paths.train_clinical)
    held_table = clinical[clinical["PatientID"].isin(held)]
    write_table(held_table, r.paths.heldout / "clinical.csv")
    # what the models are given at prediction time: no outcome columns
    write_table(held_table.drop(columns=[c for c in ("Relapse", "RFS") if c in held_table.columns]),
                r.paths.heldout / "clinical_inputs.csv")
    write_json({"segmentation_train": seg_train, "segmentation_heldout": seg_val, "prognosis_train": train,
                "prognosis_heldout": held}, r.paths.heldout / "patients.json")
    text = (f"fold {FOLD}: network trained on {len(seg_train)} patient(s), {len(seg_val)} held out: "
            f"{', '.join(seg_val)}; prognosis models trained on {len(train)} patient(s) (labelled and image-only), "
            f"{len(held)} held out (the {len(seg_val)} above and {len(held) - len(seg_val)} image-only)")
    r.note(text)
    r.records.append({"command": f"# {text} (from {r.paths.dataset / 'splits_final.json'})", "seconds": None,
                      "returncode": 0})


def _evaluate_seg(r: DemoRun) -> None:
    h = r.paths.heldout
    r.command("hecktor-evaluate", "seg", "--truth", h / "labels", "--pred", h / "predictions",
              "-o", r.paths.eval("seg"), "-np", r.settings.workers, "--n-boot", r.settings.n_boot,
              log_name="evaluate_seg")


def write_demo_params(folder: Path) -> dict[str, Path]:
    """PyRadiomics params files for the demo: the shipped ones reduced to first-order features at 4 mm.

    The demo extracts features of ~170 patients twice (predicted and true masks) on 2 cores; texture
    features would triple the time and add nothing to the planted signal (volume, SUV, nodes). The
    shape class is left out too: the volumes are in the PET and lesion descriptors (``MTV_ml``,
    ``MASK_GTVn_total_ml``), and PyRadiomics' shape diameters cost O(vertices^2), minutes per patient on
    the fragmented masks of a model that has not learned (``--smallest``). Everything else (binning,
    resegmentation, regions, PET descriptors) is as shipped.
    """
    import yaml

    from hecktor_nnunet.io.atomic_io import write_text
    from hecktor_nnunet.prognosis.radiomics import DEFAULT_PARAMS

    out = {}
    for modality, shipped in DEFAULT_PARAMS.items():
        params = yaml.safe_load(shipped.read_text())
        params["featureClass"] = {"firstorder": None}
        params["setting"]["resampledPixelSpacing"] = [4, 4, 4]
        path = folder / f"demo_{modality.lower()}.yaml"
        write_text(f"# hecktor-demo: {shipped.name} reduced to first-order features at 4 mm (fast enough for\n"
                   "# ~340 extractions on 2 cores); use the shipped params files on real data\n"
                   + yaml.safe_dump(params, sort_keys=False), path)
        out[modality] = path
    return out


def _radiomics(r: DemoRun) -> None:
    for masks, features in ((r.paths.predictions, r.paths.features), (r.paths.oracle_labels, r.paths.features_true)):
        params = write_demo_params(features.parent)
        r.command("hecktor-radiomics", "--release", r.paths.release, "--masks", masks, "-o", features,
                  "--params-pet", params["PET"], "--params-ct", params["CT"], "-np", r.settings.workers,
                  "--cache", features.parent / "cache", log_name="radiomics")


def _prognosis(r: DemoRun) -> None:
    s = r.settings
    quiet = ["--quiet"] if r.quiet else []
    sources = {"predicted": r.paths.features, "true": r.paths.features_true, "clinical": None}
    for source, features in sources.items():
        inputs = ["--features", features] if features else []
        for task in ("rfs", "hpv"):
            out = r.paths.prognosis_of(source) / task
            common = [*(inputs or ["--no-radiomics"]), "--clinical", r.paths.train_clinical, "--seed", s.seed, "--bootstrap", s.n_boot]
            if source == "predicted":  # the cross-validation report of the model the demo is about
                r.command("hecktor-prognosis", *quiet, "cv", task, *common, "-o", out / "cv", "--repeats", 1,
                          "--folds", s.prognosis_folds, log_name="prognosis", quiet_flag=None)
            r.command("hecktor-prognosis", *quiet, "train", task, *common, "-o", out / "model", "--no-cv",
                      log_name="prognosis", quiet_flag=None)
            r.command("hecktor-prognosis", *quiet, "predict", "--model", out / "model", *inputs,
                      "--clinical", r.paths.heldout / "clinical_inputs.csv", "-o", out / "heldout_predictions.csv",
                      log_name="prognosis", quiet_flag=None)


def _oracle_predictions(paths: DemoPaths, held: list[str]) -> None:
    """The planted risk and HPV probability (>= 0.5: positive) of the held-out patients, as prediction files."""
    oracle = pd.read_csv(paths.oracle).set_index("PatientID").loc[held]
    folder = paths.prognosis_of("oracle")
    rfs = pd.DataFrame({"PatientID": held, "Prediction": oracle["true_risk"].to_numpy()})
    hpv = pd.DataFrame({"PatientID": held, "Prediction": (oracle["hpv_prob"] >= 0.5).astype(int).to_numpy(),
                        "Probability": oracle["hpv_prob"].to_numpy()})
    write_table(rfs, folder / "rfs" / "heldout_predictions.csv")
    write_table(hpv, folder / "hpv" / "heldout_predictions.csv")


def _evaluate_prognosis(r: DemoRun) -> None:
    held = json.loads((r.paths.heldout / "patients.json").read_text())["prognosis_heldout"]
    _oracle_predictions(r.paths, held)
    for source in MASK_SOURCES:
        for task in ("rfs", "hpv"):
            r.command("hecktor-evaluate", task, "--truth", r.paths.heldout / "clinical.csv",
                      "--pred", r.paths.prognosis_of(source) / task / "heldout_predictions.csv",
                      "-o", r.paths.eval_of(task, source), "--n-boot", r.settings.n_boot,
                      log_name="evaluate_prognosis")
    write_json(prognosis_comparison(r.paths), r.paths.comparison)


def prognosis_comparison(paths: DemoPaths) -> dict:
    """Held-out RFS C-index and HPV balanced accuracy of every mask source (``eval/prognosis_comparison.json``)."""
    rows = []
    for source in MASK_SOURCES:
        rfs = json.loads((paths.eval_of("rfs", source) / "summary.json").read_text())
        hpv = json.loads((paths.eval_of("hpv", source) / "summary.json").read_text())
        rows.append({"source": source, "rfs_c_index": rfs["c_index"], "rfs_c_index_ci": rfs.get("c_index_ci"),
                     "hpv_balanced_accuracy": hpv["balanced_accuracy"],
                     "hpv_balanced_accuracy_ci": hpv.get("balanced_accuracy_ci"), "hpv_auc": hpv.get("auc"),
                     "n_patients": rfs["n_patients"], "n_events": rfs.get("n_events"),
                     "n_hpv_positive": hpv.get("n_positive")})
    return {"held_out_patients": rows[0]["n_patients"], "rows": rows}


def pass_marks(seg_summary: dict | None, comparison: dict | None) -> list[dict]:
    """Each of :data:`PASS_MARKS` with the held-out value and whether it is met (None: not measured)."""
    by = {row["source"]: row for row in (comparison or {}).get("rows", [])}
    pred, true = by.get("predicted", {}), by.get("true", {})
    gap = (abs(pred["rfs_c_index"] - true["rfs_c_index"])
           if pred.get("rfs_c_index") is not None and true.get("rfs_c_index") is not None else None)
    values = {"gtvp_dice_mean": (seg_summary or {}).get("gtvp_dice_mean"),
              "gtvn_dsc_agg": (seg_summary or {}).get("gtvn_dsc_agg"),
              "rfs_c_index_predicted": pred.get("rfs_c_index"), "rfs_c_index_gap_to_true": gap,
              "hpv_balanced_accuracy_predicted": pred.get("hpv_balanced_accuracy")}
    out = []
    for name, mark in PASS_MARKS.items():
        v = values[name]
        met = None if v is None else (v <= mark if name == "rfs_c_index_gap_to_true" else v >= mark)
        out.append({"metric": name, "value": v, "mark": mark, "rule": "<=" if name.endswith("gap_to_true") else ">=",
                    "met": met})
    return out


def _report(r: DemoRun) -> None:
    r.command("hecktor-report", "--workdir", r.paths.root, log_name="report")


STEPS: tuple[Step, ...] = (
    Step("generate", "synthetic release (hecktor-synth), its oracle table and true masks outside it", _generate,
         lambda p: [p.release, p.oracle, p.oracle_labels]),
    Step("convert", "release -> nnU-Net raw dataset, centre-stratified folds (hecktor-convert)", _convert,
         lambda p: [p.dataset]),
    Step("plan", "nnU-Net fingerprint, plans and preprocessing (nnUNetv2_plan_and_preprocess)", _plan,
         lambda p: [p.preprocessed / p.dataset_folder]),
    Step("train", f"train fold {FOLD} on the CPU (nnUNetv2_train)", _train, lambda p: [p.results / p.dataset_folder]),
    Step("predict", "segment every patient, restore onto the original CT grids (hecktor-predict)", _predict,
         lambda p: [p.predictions]),
    Step("holdout", f"held-out patients: fold {FOLD}'s validation set, and image-only patients for the prognosis",
         _holdout, lambda p: [p.heldout, p.train_clinical]),
    Step("evaluate_seg", "segmentation metrics on the held-out patients (hecktor-evaluate seg)", _evaluate_seg,
         lambda p: [p.eval("seg")]),
    Step("radiomics", "PET/CT radiomics of the predicted and of the true masks (hecktor-radiomics, demo params)",
         _radiomics, lambda p: [p.features.parent, p.features_true.parent]),
    Step("prognosis", "RFS and HPV models from predicted masks, true masks and clinical data alone (hecktor-prognosis)",
         _prognosis, lambda p: [p.prognosis_of(s) for s in MASK_SOURCES]),
    Step("evaluate_prognosis", "RFS C-index and HPV balanced accuracy on the held-out patients (hecktor-evaluate)",
         _evaluate_prognosis, lambda p: [p.eval_of(t, s) for s in MASK_SOURCES for t in ("rfs", "hpv")]
         + [p.comparison]),
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


def demo_report_inputs(workdir: str | Path):
    """:class:`~hecktor_nnunet.report.ReportInputs` of a demo folder (what ``hecktor-report --workdir`` reads)."""
    from hecktor_nnunet.report import ReportInputs

    p = DemoPaths(Path(workdir).resolve())
    if not (p.markers / "settings.json").is_file():
        raise FileNotFoundError(f"{p.root} is not a hecktor-demo folder (no {MARKERS}/settings.json); "
                                "give the folders explicitly (hecktor-report --help)")
    settings = DemoSettings(**json.loads((p.markers / "settings.json").read_text()))

    def present(path: Path) -> Path | None:
        return path if path.exists() else None

    seg_summary = (json.loads((p.eval("seg") / "summary.json").read_text())
                   if (p.eval("seg") / "summary.json").is_file() else None)
    comparison = json.loads(p.comparison.read_text()) if p.comparison.is_file() else None
    marks = pass_marks(seg_summary, comparison)
    gtvp = seg_summary.get("gtvp_dice_mean") if seg_summary else None
    notes = [] if gtvp is not None and gtvp >= PASS_MARKS["gtvp_dice_mean"] else [
        NOT_A_MODEL.format(mark=PASS_MARKS["gtvp_dice_mean"])]
    return ReportInputs(
        dataset=present(p.dataset), seg_eval=present(p.eval("seg")), rfs_eval=present(p.eval("rfs")),
        hpv_eval=present(p.eval("hpv")), prognosis_dir=present(p.prognosis), features=present(p.features),
        release=present(p.release), pred=present(p.heldout / "predictions"),
        training_progress=present(p.progress(settings.trainer)), prognosis_comparison=comparison,
        pass_marks=marks, commands=recorded_commands(p.root), notes=notes,
        title="HECKTOR pipeline demo (synthetic data)")
