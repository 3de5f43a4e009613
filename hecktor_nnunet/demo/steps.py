"""The demo's steps: each runs real console scripts through its :class:`StepContext`.

A step is a function of the run (its paths, settings, command runner and record) and the outputs it
owns; :data:`STEPS` is their order. See :mod:`hecktor_nnunet.demo` for what the steps add up to;
:mod:`hecktor_nnunet.demo.runner` runs them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import pandas as pd

from hecktor_nnunet.demo.settings import (CONFIGURATION, DATASET_ID, DATASET_NAME, FOLD, MASK_SOURCES, DemoPaths,
                                          DemoSettings)
from hecktor_nnunet.io.atomic_io import write_json, write_table
from hecktor_nnunet.reporting.render import tables_folder


class StepContext(Protocol):
    """What a step is given: where things are, how the demo is sized, and how to run and record."""

    paths: DemoPaths
    settings: DemoSettings
    quiet: bool

    def command(self, name: str, *args: str | Path, log_name: str, quiet_flag: str | None = "--quiet") -> None:
        """Run one console script (output streamed and logged; a failure raises)."""

    def note(self, text: str) -> None:
        """Say something to the user (silent under ``quiet``)."""

    def record(self, text: str) -> None:
        """Add a line to the step's record of what ran (a decision, not a command)."""


@dataclass(frozen=True)
class Step:
    """One demo step: a name (``--from-step``), what it does, its function and the outputs it owns."""

    name: str
    title: str
    run: Callable[[StepContext], None]
    outputs: Callable[[DemoPaths], list[Path]]


def _generate(r: StepContext) -> None:
    s = r.settings
    r.command("hecktor-synth", r.paths.release, "-n", s.cases, "--unlabelled", s.unlabelled, "--size", "tiny",
              "--seed", s.seed, "--oracle", r.paths.oracle, "--oracle-labels", r.paths.oracle_labels,
              log_name="generate")


def _convert(r: StepContext) -> None:
    s = r.settings
    r.command("hecktor-convert", r.paths.release, "-d", DATASET_ID, "--name", DATASET_NAME, "-o", r.paths.raw,
              "--splits", "centre-stratified", "--n-folds", s.folds, "--seed", s.seed, "-np", s.workers,
              log_name="convert")


def _plan(r: StepContext) -> None:
    w = r.settings.workers
    r.command("nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", CONFIGURATION, "--verify_dataset_integrity",
              "-np", w, "-npfp", w, log_name="plan", quiet_flag=None)


def _train(r: StepContext) -> None:
    r.command("nnUNetv2_train", DATASET_ID, CONFIGURATION, FOLD, "-tr", r.settings.trainer, "-device", "cpu",
              log_name="train", quiet_flag=None)


def _predict(r: StepContext) -> None:
    r.command("hecktor-predict", "-i", r.paths.release, "-o", r.paths.predictions, "-d", DATASET_ID,
              "-tr", r.settings.trainer, "-c", CONFIGURATION, "-f", FOLD, "-device", "cpu",
              "-np", r.settings.workers, "--disable_tta", log_name="predict")


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


def _holdout(r: StepContext) -> None:
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
    r.record(f"{text} (from {r.paths.dataset / 'splits_final.json'})")


def _evaluate_seg(r: StepContext) -> None:
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
    from hecktor_nnunet.prognosis.radiomics_settings import DEFAULT_PARAMS

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


def _radiomics(r: StepContext) -> None:
    for masks, features in ((r.paths.predictions, r.paths.features), (r.paths.oracle_labels, r.paths.features_true)):
        params = write_demo_params(features.parent)
        r.command("hecktor-radiomics", "--release", r.paths.release, "--masks", masks, "-o", features,
                  "--params-pet", params["PET"], "--params-ct", params["CT"], "-np", r.settings.workers,
                  "--cache", features.parent / "cache", log_name="radiomics")


def _prognosis(r: StepContext) -> None:
    s = r.settings
    sources = {"predicted": r.paths.features, "true": r.paths.features_true, "clinical": None}
    for source, features in sources.items():
        inputs = ["--features", features] if features else []
        for task in ("rfs", "hpv"):
            out = r.paths.prognosis_of(source) / task
            selection = [] if features else ["--no-radiomics"]
            common = [*inputs, "--clinical", r.paths.train_clinical, "--seed", s.seed, "--n-boot", s.n_boot,
                      "-np", s.workers]
            if source == "predicted":  # every model family on the same folds: the evidence behind the default
                r.command("hecktor-prognosis", "compare", task, *common, "-o", out / "compare",
                          "--n-folds", s.prognosis_folds, log_name="prognosis")
            r.command("hecktor-prognosis", "train", task, *common, *selection, "-o", out / "model",
                      "--no-cv", log_name="prognosis")
            r.command("hecktor-prognosis", "predict", "--model-dir", out / "model", *inputs,
                      "--clinical", r.paths.heldout / "clinical_inputs.csv", "-o", out / "heldout_predictions.csv",
                      log_name="prognosis")
    _deep_prognosis(r)


def _deep_prognosis(r: StepContext) -> None:
    """The image network on the predicted masks (crops cached once for both tasks), scored on the same patients."""
    s, folder = r.settings, r.paths.prognosis_of("deep")
    images = ["--release", r.paths.release, "--masks", r.paths.predictions, "--cache", folder / "crops",
              "-np", s.workers]
    for task in ("rfs", "hpv"):
        out = folder / task
        # an empty predicted mask is cropped at the image centre (recorded in the model), so every patient is scored
        r.command("hecktor-prognosis", "train", task, "--model", "deep", *images, "--clinical", r.paths.train_clinical,
                  "--empty-mask", "centre", "--seed", s.seed, "--no-cv", "-o", out / "model", log_name="prognosis")
        r.command("hecktor-prognosis", "predict", "--model-dir", out / "model", *images,
                  "--clinical", r.paths.heldout / "clinical_inputs.csv", "-o", out / "heldout_predictions.csv",
                  log_name="prognosis")


def _oracle_predictions(paths: DemoPaths, held: list[str]) -> None:
    """The planted risk and HPV probability (>= 0.5: positive) of the held-out patients, as prediction files."""
    oracle = pd.read_csv(paths.oracle).set_index("PatientID").loc[held]
    folder = paths.prognosis_of("oracle")
    rfs = pd.DataFrame({"PatientID": held, "Prediction": oracle["true_risk"].to_numpy()})
    hpv = pd.DataFrame({"PatientID": held, "Prediction": (oracle["hpv_prob"] >= 0.5).astype(int).to_numpy(),
                        "Probability": oracle["hpv_prob"].to_numpy()})
    write_table(rfs, folder / "rfs" / "heldout_predictions.csv")
    write_table(hpv, folder / "hpv" / "heldout_predictions.csv")


def _evaluate_prognosis(r: StepContext) -> None:
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


def _report(r: StepContext) -> None:
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
    Step("prognosis", "RFS and HPV: every model family compared on the predicted masks' features, then models "
         "from predicted masks, true masks, clinical data alone and a network on the PET/CT crops (hecktor-prognosis)",
         _prognosis, lambda p: [p.prognosis_of(s) for s in MASK_SOURCES]),
    Step("evaluate_prognosis", "RFS C-index and HPV balanced accuracy on the held-out patients (hecktor-evaluate)",
         _evaluate_prognosis, lambda p: [p.eval_of(t, s) for s in MASK_SOURCES for t in ("rfs", "hpv")]
         + [p.comparison]),
    Step("report", "report.html, report.json and the tables as CSV (hecktor-report)", _report,
         lambda p: [p.report, p.report.with_suffix(".json"), tables_folder(p.report)]),
)
STEP_NAMES = tuple(s.name for s in STEPS)
