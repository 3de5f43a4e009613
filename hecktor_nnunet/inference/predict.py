"""Release (or plain / Grand Challenge folder) -> label maps on each patient's original CT grid.

Steps, each one function: find and check the model(s) -> convert the inputs with the settings the
training dataset was converted with -> nnU-Net's predictor (any folds, ensembled; several models
are ensembled by averaging their probabilities, :mod:`hecktor_nnunet.inference.ensemble`) ->
post-processing saved with the model -> restore onto the original CT grids -> count each mask's
connected components (``prediction_summary.json``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import SimpleITK as sitk

from hecktor_nnunet.inference.components import SUMMARY_FILE, component_report
from hecktor_nnunet.inference.ensemble import ModelSpec, average_probabilities, read_postprocessing_file
from hecktor_nnunet.inference.postprocessing import (CONNECTIVITY, POSTPROCESSING_FILE, Postprocessing,
                                                     load_postprocessing, postprocess_image)
from hecktor_nnunet.io.atomic_io import write_json
from hecktor_nnunet.io.ids import split_image_name
from hecktor_nnunet.io.image_files import LABEL_GZIP_LEVEL, write_image
from hecktor_nnunet.io.problems import ERROR, Problem, format_report
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.prognosis.radiomics_settings import MIN_VOLUME_ML
from hecktor_nnunet.training.registry import TRAINERS_DIR

if TYPE_CHECKING:
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

log = logging.getLogger(__name__)

SETTINGS_FILE = "hecktor_conversion_settings.json"
MANIFEST = "conversion_manifest.json"
GC_OUTPUT = Path("images") / "tumor-lymph-node-segmentation" / "output.mha"
#: patients predicted by every member of an ensemble before their probabilities are averaged and deleted
ENSEMBLE_CHUNK = 8


class ModelError(RuntimeError):
    """The trained model is missing, incomplete or inconsistent."""


def model_folder(dataset: str | int, trainer: str, plans: str = "nnUNetPlans",
                 configuration: str = "3d_fullres", results_dir: str | Path | None = None) -> Path:
    """``$nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIG`` of a trained model.

    Raises
    ------
    ModelError
        If ``nnUNet_results`` is unset, the dataset is unknown or the folder does not exist
        (the message lists the trained models that do exist for the dataset).
    """
    value = results_dir or os.environ.get("nnUNet_results")
    if not value or not Path(value).is_dir():
        raise ModelError("nnUNet_results is not set or not a folder; run `eval \"$(hecktor-nnunet env)\"` "
                         "or pass --results")
    results = Path(value)
    name = _dataset_folder(results, dataset)
    folder = results / name / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        existing = sorted(p.name for p in (results / name).iterdir() if p.is_dir())
        raise ModelError(f"no trained model {folder}; models for {name}: {existing or 'none'}")
    return folder


def _dataset_folder(results: Path, dataset: str | int) -> str:
    ds = str(dataset)
    if ds.startswith("Dataset") and (results / ds).is_dir():
        return ds
    if ds.isdigit():
        matches = sorted(p.name for p in results.glob(f"Dataset{int(ds):03d}_*") if p.is_dir())
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ModelError(f"several datasets with id {ds} in {results}: {matches}")
    raise ModelError(f"dataset {dataset!r} not found in {results}")


def check_model(folder: Path, folds: Sequence[int | str], checkpoint: str = "checkpoint_final.pth") -> dict:
    """Check that every fold's checkpoint exists and was trained with the folder's plans.

    Returns the model's dataset.json.

    Raises
    ------
    ModelError
        Missing ``plans.json``/``dataset.json``/checkpoint, or a checkpoint whose plans differ from
        ``plans.json`` (architecture, patch size, spacing or normalisation).
    """
    import torch

    for f in ("plans.json", "dataset.json"):
        if not (folder / f).is_file():
            raise ModelError(f"{folder / f} is missing; the model folder is incomplete")
    plans = json.loads((folder / "plans.json").read_text())
    for fold in folds:
        ckpt = folder / f"fold_{fold}" / checkpoint
        if not ckpt.is_file():
            available = sorted(p.parent.name for p in folder.glob(f"fold_*/{checkpoint}"))
            raise ModelError(f"checkpoint {ckpt} not found; folds with {checkpoint}: {available or 'none'}")
        # mmap: only init_args is needed here; nnU-Net's predictor loads the weights later
        saved = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)
        try:
            config = saved["init_args"]["configuration"]
            trained = saved["init_args"]["plans"]["configurations"].get(config, {})
        except (KeyError, TypeError) as e:
            raise ModelError(f"{ckpt} is not an nnU-Net checkpoint (no init_args/plans)") from e
        current = plans["configurations"].get(config, {})
        for key in ("architecture", "patch_size", "spacing", "normalization_schemes"):
            if trained.get(key) != current.get(key):
                raise ModelError(f"{ckpt} was trained with different plans than {folder / 'plans.json'} "
                                 f"({key!r} differs); restore the model folder's plans.json")
    return json.loads((folder / "dataset.json").read_text())


def conversion_settings(folder: Path, raw_dir: str | Path | None = None):
    """The :class:`ConversionSettings` the model's training dataset was converted with.

    Looked up in the model folder (``hecktor_conversion_settings.json``, written by
    ``hecktor-nnunet postprocess-select``) and then in ``$nnUNet_raw/<dataset>/conversion_manifest.json``.
    """
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings

    local = folder / SETTINGS_FILE
    if local.is_file():
        return ConversionSettings.from_dict(json.loads(local.read_text()))
    manifest = dataset_manifest(folder, raw_dir)
    if manifest is not None and manifest.is_file():
        return ConversionSettings.from_dict(json.loads(manifest.read_text())["settings"])
    where = manifest or f"$nnUNet_raw/{folder.parent.name}/{MANIFEST} (nnUNet_raw is not set)"
    raise ModelError(f"cannot tell how the training data were converted: neither {local} nor {where} exists. "
                     "Run `hecktor-nnunet postprocess-select` on the training machine (it stores the settings "
                     "with the model) or set nnUNet_raw")


def dataset_manifest(folder: Path, raw_dir: str | Path | None = None) -> Path | None:
    """``<raw>/<dataset>/conversion_manifest.json`` of a model folder's training dataset.

    ``raw`` is ``raw_dir`` or ``$nnUNet_raw``; None when neither is set. The file may not exist.
    """
    raw = raw_dir or os.environ.get("nnUNet_raw")
    return Path(raw) / folder.parent.name / MANIFEST if raw else None


def save_conversion_settings(folder: Path, raw_dir: str | Path | None = None) -> Path:
    """Copy the dataset's conversion settings into the model folder (self-contained deployment)."""
    settings = conversion_settings(folder, raw_dir)
    path = folder / SETTINGS_FILE
    write_json(settings.to_dict(), path)
    return path


def _check_channels(dataset_json: dict, settings, folder: Path) -> None:
    n_model = len(dataset_json["channel_names"])
    if n_model != len(settings.channels):
        raise ModelError(f"the model in {folder} expects {n_model} input channel(s) but the conversion settings "
                         f"give {len(settings.channels)} ({list(settings.channels)}); wrong model or settings")
    trained = dataset_json.get("hecktor", {}).get("channels")  # what each channel held in training
    if trained is not None and list(trained) != list(settings.channels):
        raise ModelError(f"the model in {folder} was trained on channels {list(trained)} (dataset.json "
                         f"hecktor.channels) but the conversion settings give {list(settings.channels)}; "
                         "wrong model or settings")


def _resolve_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available; use -device cpu")
    return torch.device(device)


@contextlib.contextmanager
def hecktor_trainers_findable() -> Iterator[None]:
    """Within the block, ``nnUNet_extTrainer`` includes the HECKTOR trainers folder."""
    old = os.environ.get("nnUNet_extTrainer")
    paths = [p for p in (old or "").split(os.pathsep) if p]
    if str(TRAINERS_DIR) not in paths:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join(paths + [str(TRAINERS_DIR)])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("nnUNet_extTrainer", None)
        else:
            os.environ["nnUNet_extTrainer"] = old


def run_nnunet(folder: Path, cases: dict[str, Sequence[Path]], out_dir: Path, folds: Sequence[int | str], *,
               device: str = "auto", checkpoint: str = "checkpoint_final.pth", step_size: float = 0.5,
               mirroring: bool = True, workers: int = 1, save_probabilities: bool = False,
               quiet: bool = False) -> None:
    """nnU-Net's predictor on ``cases`` (patient ID -> its channel images); ensembles ``folds``.

    Writes ``<out_dir>/<ID>`` + the dataset's file ending (``.nii.gz``), and with
    ``save_probabilities`` also ``<ID>.npz`` (softmax probabilities, classes x the input image's
    voxels) and ``<ID>.pkl`` (nnU-Net's image properties), as ``nnUNetv2_predict --save_probabilities``.
    The HECKTOR trainers folder is added to ``nnUNet_extTrainer`` while the model is loaded (nnU-Net
    rebuilds the network from the trainer class named in the checkpoint). On a GPU, ``workers`` processes
    preprocess and export around the one network; on the CPU, the cases are shared among
    ``workers`` processes, each with its own predictor and an equal share of the torch threads
    (small networks use threads poorly; the Python pre- and post-processing uses one core each).
    """
    dev = _resolve_device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"step_size": step_size, "mirroring": mirroring, "quiet": quiet}
    save = {"save_probabilities": save_probabilities, "overwrite": True}
    ids = sorted(cases)
    inputs, outputs = [[str(f) for f in cases[i]] for i in ids], [str(out_dir / i) for i in ids]
    if dev.type == "cpu" and workers > 1:
        import torch

        from hecktor_nnunet.parallel import parallel_map

        n = min(workers, len(ids))
        threads = max(1, torch.get_num_threads() // n)
        jobs = [(folder, inputs[k::n], outputs[k::n], list(folds), checkpoint, threads, options, save)
                for k in range(n)]
        for _ in parallel_map(_predict_cases, jobs, workers=n, quiet=True):
            pass
        return
    predictor = _predictor(folder, folds, checkpoint, dev, **options)
    if dev.type == "cpu":
        predictor.predict_from_files_sequential(inputs, outputs, **save)
    else:
        predictor.predict_from_files(inputs, outputs, num_processes_preprocessing=workers,
                                     num_processes_segmentation_export=workers, **save)


def _predictor(folder: Path, folds: Sequence[int | str], checkpoint: str, dev, *, step_size: float, mirroring: bool,
               quiet: bool):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=step_size, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=dev.type == "cuda", device=dev,
                                verbose=False, verbose_preprocessing=False, allow_tqdm=not quiet)
    with hecktor_trainers_findable():
        predictor.initialize_from_trained_model_folder(str(folder), [f if f == "all" else int(f) for f in folds],
                                                       checkpoint)
    return predictor


def _predict_cases(job: tuple) -> None:
    """One CPU worker of :func:`run_nnunet`: its share of the cases (lists of channel files, output names)."""
    import torch

    folder, inputs, outputs, folds, checkpoint, threads, options, save = job
    torch.set_num_threads(threads)
    predictor = _predictor(folder, folds, checkpoint, torch.device("cpu"), **options)
    predictor.predict_from_files_sequential(inputs, outputs, **save)


@dataclass(frozen=True)
class CheckedModel:
    """A model found and checked by :func:`check_models`: its folder, ``dataset.json`` and conversion settings."""

    spec: ModelSpec
    folder: Path
    dataset_json: dict
    settings: ConversionSettings


def check_models(dataset: str | int, models: Sequence[ModelSpec], *, checkpoint: str = "checkpoint_final.pth",
                 results_dir: str | Path | None = None, raw_dir: str | Path | None = None) -> list[CheckedModel]:
    """Find and check every model (:func:`check_model`, channels); several must form one ensemble.

    Raises
    ------
    ModelError
        A model is missing or inconsistent, a model is given twice, or the models of an ensemble
        differ in label set (``labels``, ``regions_class_order``) or conversion settings (the
        message names the models).
    """
    if not models:
        raise ModelError("no model given")
    twice = sorted({str(m) for m in models if list(models).count(m) > 1})
    if twice:
        raise ModelError(f"model(s) given more than once: {twice}")
    checked = []
    for spec in models:
        folder = model_folder(dataset, spec.trainer, spec.plans, spec.configuration, results_dir)
        dataset_json = check_model(folder, spec.folds, checkpoint)
        settings = conversion_settings(folder, raw_dir)
        _check_channels(dataset_json, settings, folder)
        checked.append(CheckedModel(spec, folder, dataset_json, settings))
    _check_one_task(checked)
    return checked


def _check_one_task(models: list[CheckedModel]) -> None:
    """ModelError unless every model predicts the same labels from inputs converted the same way."""
    first = models[0]
    facts = {"label set (dataset.json labels)": lambda m: m.dataset_json.get("labels"),
             "region order (dataset.json regions_class_order)": lambda m: m.dataset_json.get("regions_class_order"),
             "conversion settings": lambda m: m.settings.to_dict()}
    for what, fact in facts.items():
        differ = [m for m in models[1:] if fact(m) != fact(first)]
        if differ:
            raise ModelError(f"the models of an ensemble must share the dataset's {what}, but "
                             + "; ".join(f"{m.folder} has {fact(m)}" for m in [first, *differ]))


def choose_postprocessing(models: Sequence[CheckedModel], *, postprocess: bool = True,
                          postprocessing_file: str | Path | None = None) -> tuple[Postprocessing | None, str | None]:
    """The post-processing to apply and the file it comes from (None, None: none).

    ``postprocess=False``: none. ``postprocessing_file``: its setting (:func:`read_postprocessing_file`),
    for one model or an ensemble. Otherwise one model's saved setting (``hecktor-nnunet
    postprocess-select``; none when it has none); for an ensemble, the setting every model saved, when
    they all saved the same one (or none, an identity setting counting as none).

    Raises
    ------
    ValueError
        ``postprocess=False`` together with a file, or an unreadable file.
    ModelError
        The models of an ensemble saved different settings: the message lists them.
    """
    if postprocessing_file is not None:
        if not postprocess:
            raise ValueError("a post-processing file and no post-processing: choose one")
        return read_postprocessing_file(postprocessing_file), str(postprocessing_file)
    if not postprocess:
        return None, None
    saved = [(m, load_postprocessing(m.folder)) for m in models]
    chosen = {None if s is None or s.is_identity else s for _, s in saved}
    if len(chosen) > 1:
        listed = "; ".join(f"{m.folder}: {s.to_dict() if s is not None else 'none'}" for m, s in saved)
        raise ModelError("the models of the ensemble saved different post-processing settings (each chosen on "
                         f"its own validation folds): {listed}. Name the one to apply with --postprocessing "
                         f"FILE (e.g. one model's {POSTPROCESSING_FILE}) or apply none with --no-postprocessing")
    setting = saved[0][1]
    return setting, (str(models[0].folder / POSTPROCESSING_FILE) if setting is not None else None)


def run_ensemble(models: Sequence[CheckedModel], cases: dict[str, Sequence[Path]], out_dir: Path, work: Path, *,
                 chunk: int = ENSEMBLE_CHUNK, workers: int = 1, quiet: bool = False, **options) -> None:
    """Label maps of ``cases`` from the models' averaged probabilities, ``chunk`` patients at a time.

    For each chunk, every model's predictor (:func:`run_nnunet` with ``save_probabilities``) writes
    its probabilities to ``<work>/member<k>_<model>/``; they are averaged per patient and argmaxed
    (:func:`~hecktor_nnunet.inference.ensemble.average_probabilities`) into ``<out_dir>/<ID>.nii.gz``
    and deleted. ``options`` go to :func:`run_nnunet` (device, checkpoint, step size, mirroring).
    """
    if chunk < 1:
        raise ValueError(f"the ensemble chunk must be at least 1 patient, got {chunk}")
    if work.exists():  # a reused --keep-work folder
        shutil.rmtree(work)
    dirs = [work / f"member{k}_{m.folder.name}" for k, m in enumerate(models, start=1)]
    ids = sorted(cases)
    for start in range(0, len(ids), chunk):
        part = {pid: cases[pid] for pid in ids[start:start + chunk]}
        for m, d in zip(models, dirs):
            log.info("ensemble: %s folds %s on patients %d-%d of %d", m.folder.name, list(m.spec.folds), start + 1,
                     start + len(part), len(ids))
            run_nnunet(m.folder, part, d, m.spec.folds, workers=workers, save_probabilities=True, quiet=quiet,
                       **options)
        average_probabilities(dirs, list(part), out_dir, workers=workers, quiet=quiet)


def postprocess_folder(pred_dir: Path, out_dir: Path, setting: Postprocessing) -> None:
    """Apply ``setting`` to every ``*.nii.gz`` label map of ``pred_dir`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(pred_dir.glob("*.nii.gz")):
        write_image(postprocess_image(sitk.ReadImage(str(p)), setting), out_dir / p.name, gzip_level=LABEL_GZIP_LEVEL)


def predict(input_dir: str | Path, output_dir: str | Path, *, dataset: str | int, trainer: str | None = None,
            plans: str = "nnUNetPlans", configuration: str = "3d_fullres", folds: Sequence[int | str] = (0,),
            models: Sequence[ModelSpec] | None = None, device: str = "auto",
            checkpoint: str = "checkpoint_final.pth", fmt: str = "nii.gz", layout: str | None = None,
            postprocess: bool = True, postprocessing_file: str | Path | None = None, gc_output: bool = False,
            step_size: float = 0.5, mirroring: bool = True, workers: int = 1, ensemble_chunk: int = ENSEMBLE_CHUNK,
            results_dir: str | Path | None = None, raw_dir: str | Path | None = None,
            keep_work: str | Path | None = None, quiet: bool = False) -> list[Path]:
    """Segment every case of ``input_dir`` and write label maps on each patient's original CT grid.

    Parameters
    ----------
    input_dir : path
        A release (2025/2022 layout), a folder of ``<ID>__CT.nii.gz``/``<ID>__PT.nii.gz``, or a
        Grand Challenge ``[input/]images/{ct,pet}/*.mha`` folder.
    output_dir : path
        Receives ``<PatientID>.<fmt>`` (0 background, 1 GTVp, 2 GTVn), or with ``gc_output``
        ``images/tumor-lymph-node-segmentation/output.mha`` (one case only).
    dataset, trainer, plans, configuration, folds, checkpoint
        Which trained model (``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG/fold_F``); several
        folds are ensembled by nnU-Net's predictor (fold logits averaged).
    models : sequence of ModelSpec, optional
        Instead of ``trainer``/``plans``/``configuration``/``folds``: the models of ``dataset`` to
        ensemble (each with its folds); their softmax probabilities are averaged before the argmax,
        as ``nnUNetv2_ensemble`` does (:func:`run_ensemble`). One model here is the same as ``trainer``.
    device : {"auto", "cpu", "cuda"}
    fmt : {"nii.gz", "mha"}
    postprocess, postprocessing_file
        Which post-processing to apply (:func:`choose_postprocessing`): by default the one saved with
        the model (``hecktor-nnunet postprocess-select``), for an ensemble the one all models saved.
    ensemble_chunk : int
        Patients predicted by every model of an ensemble before their probabilities are averaged and
        deleted (bounds the work folder's size).
    keep_work : path, optional
        Keep the converted images (uncompressed ``.nii``) and raw predictions there (default: a
        temporary folder). A folder reused for other inputs is brought to these cases (converted
        images of unchanged cases are reused, the others removed; predictions are always redone).

    Returns
    -------
    list of Path
        The written label maps. Next to them (not with ``gc_output``), ``prediction_summary.json``
        records the model(s) and, per patient, the connected components of each label and how many are
        below the radiomics tiny size (:mod:`hecktor_nnunet.inference.components`).

    Raises
    ------
    ValueError
        Both or neither of ``trainer`` and ``models``; unusable inputs.
    ModelError
        A missing or inconsistent model, or models that cannot form one ensemble.
    """
    from hecktor_nnunet.dataset_conversion.cases import convert_images

    t0 = time.perf_counter()
    if (trainer is None) == (models is None):
        raise ValueError("give either trainer (one model) or models (an ensemble), not both or neither")
    specs = list(models) if models is not None else [ModelSpec(trainer, plans, configuration, tuple(folds))]
    checked = check_models(dataset, specs, checkpoint=checkpoint, results_dir=results_dir, raw_dir=raw_dir)
    setting, setting_file = choose_postprocessing(checked, postprocess=postprocess,
                                                  postprocessing_file=postprocessing_file)
    release = _read_inputs(input_dir, layout, gc_output)

    work_ctx = tempfile.TemporaryDirectory(prefix="hecktor_predict_") if keep_work is None else None
    work = Path(keep_work) if keep_work is not None else Path(work_ctx.name)
    try:
        images, raw_pred, pp_pred = work / "images", work / "pred_converted", work / "pred_postprocessed"
        manifest = convert_images(release.cases, images, checked[0].settings, workers=workers, quiet=quiet)
        for stale in [*raw_pred.glob("*.nii.gz"), *pp_pred.glob("*.nii.gz")]:  # a reused --keep-work folder
            stale.unlink()
        if manifest["failed"]:
            failed = [Problem(**p) for problems in manifest["failed"].values() for p in problems]
            raise ValueError(f"conversion failed for {sorted(manifest['failed'])}:\n{format_report(failed)}")
        cases = {pid: [images / f for f in record["files"]] for pid, record in manifest["cases"].items()}
        options = dict(device=device, checkpoint=checkpoint, step_size=step_size, mirroring=mirroring)
        if len(checked) == 1:
            run_nnunet(checked[0].folder, cases, raw_pred, checked[0].spec.folds, workers=workers, quiet=quiet,
                       **options)
        else:
            run_ensemble(checked, cases, raw_pred, work / "probabilities", chunk=ensemble_chunk, workers=workers,
                         quiet=quiet, **options)
        if setting is not None and not setting.is_identity:
            postprocess_folder(raw_pred, pp_pred, setting)
        else:
            pp_pred = raw_pred
        written = _restore(pp_pred, manifest, Path(output_dir), gc_output=gc_output, fmt=fmt, workers=workers,
                           quiet=quiet)
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    if not gc_output:
        _write_summary(written, Path(output_dir), checked, setting, setting_file, workers=workers, quiet=quiet)
    log.info("predicted %d case(s) with %s in %.1f s (post-processing: %s)", len(written),
             " + ".join(f"{m.folder.name} folds {list(m.spec.folds)}" for m in checked), time.perf_counter() - t0,
             setting)
    return written


def _write_summary(written: list[Path], output_dir: Path, models: Sequence[CheckedModel],
                   setting: Postprocessing | None, setting_file: str | None, *, workers: int, quiet: bool) -> None:
    """``prediction_summary.json``: the model(s), and each written mask's connected components per label."""
    report = component_report({split_image_name(p)[0]: p for p in written}, workers=workers, quiet=quiet)
    write_json({"models": [{"model": str(m.folder), "folds": list(m.spec.folds)} for m in models],
                "postprocessing": setting.to_dict() if setting is not None else None,
                "postprocessing_file": setting_file,
                "connectivity": CONNECTIVITY, "min_volume_ml": MIN_VOLUME_ML, "patients": report},
               output_dir / SUMMARY_FILE)


def _read_inputs(input_dir: str | Path, layout: str | None, gc_output: bool):
    """The release to predict; ValueError when it has errors, no case, or several cases for ``gc_output``."""
    release = read_release(input_dir, layout)
    errors = [p for p in release.problems if p.severity == ERROR]
    if errors:
        raise ValueError(f"cannot predict {input_dir}:\n{format_report(errors)}")
    if not release.cases:
        raise ValueError(f"no cases (CT + PET) found in {input_dir} (layout {release.layout})")
    if gc_output and len(release.cases) != 1:
        raise ValueError(f"--gc-output writes one output.mha, but {input_dir} holds {len(release.cases)} cases")
    return release


def _restore(pred_dir: Path, manifest: dict, out_dir: Path, *, gc_output: bool, fmt: str, workers: int,
             quiet: bool) -> list[Path]:
    """The converted-space predictions back on each original CT grid (one ``output.mha`` for ``gc_output``)."""
    from hecktor_nnunet.dataset_conversion.restore import restore_image, restore_predictions

    if not gc_output:
        return restore_predictions(pred_dir, manifest, out_dir, fmt=fmt, workers=workers, quiet=quiet)
    record = next(iter(manifest["cases"].values()))
    pred = pred_dir / f"{record['patient_id']}.nii.gz"
    target = out_dir / GC_OUTPUT
    write_image(restore_image(sitk.ReadImage(str(pred)), record), target)
    return [target]
