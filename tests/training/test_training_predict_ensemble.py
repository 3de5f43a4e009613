"""hecktor-predict with an ensemble of two tiny models (real nnU-Net): equal to their probabilities averaged by hand.

The reference runs nnU-Net's predictor on each model itself (``save_probabilities``), averages the
two ``.npz`` probability maps with numpy, takes the argmax and restores it onto each CT grid with
the project's ``restore_image``: nothing of ``hecktor_nnunet.inference`` takes part in it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli import predict as predict_cli
from hecktor_nnunet.dataset_conversion.cases import convert_images
from hecktor_nnunet.dataset_conversion.restore import restore_image
from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
from hecktor_nnunet.inference.components import SUMMARY_FILE
from hecktor_nnunet.inference.ensemble import ModelSpec
from hecktor_nnunet.inference.postprocessing import POSTPROCESSING_FILE, Postprocessing, apply_postprocessing
from hecktor_nnunet.inference.predict import ModelError, check_models, choose_postprocessing, predict
from hecktor_nnunet.io.geometry import Grid
from hecktor_nnunet.io.release import read_release
from hecktor_nnunet.training.registry import TINY_TRAINER

from nnunet_training_support import DATASET_ID, DATASET_NAME

pytestmark = pytest.mark.slow

#: a U-Net and a SegResNet, both trained on fold 0 by the session fixture
MEMBERS = (TINY_TRAINER, "nnUNetTrainerHecktorSegResNet")


@pytest.fixture()
def env(nnunet_dataset, trained, monkeypatch):
    for name in MEMBERS:
        assert trained[name].returncode == 0, trained[name].stderr[-3000:]
    for k, v in nnunet_dataset.env().items():
        if k.startswith("nnUNet_"):
            monkeypatch.setenv(k, v)  # nnUNet_extTrainer too: the reference predictor loads the trainers
    return nnunet_dataset


def _flat_inputs(release: Path, out: Path, ids: list[str]) -> Path:
    out.mkdir()
    for pid in ids:
        for key in ("CT", "PT"):
            shutil.copy(release / "Task 1" / pid / f"{pid}__{key}.nii.gz", out / f"{pid}__{key}.nii.gz")
    return out


def _reference_probabilities(env, inputs: Path, work: Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The inputs converted with the dataset's settings, and each member's probabilities from nnU-Net itself."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    manifest_file = env.raw / DATASET_NAME / "conversion_manifest.json"
    settings = ConversionSettings.from_dict(json.loads(manifest_file.read_text())["settings"])
    manifest = convert_images(read_release(inputs).cases, work / "images", settings, quiet=True)
    ids = sorted(manifest["cases"])
    files = [[str(work / "images" / f) for f in manifest["cases"][pid]["files"]] for pid in ids]
    probabilities = {pid: [] for pid in ids}
    for name in MEMBERS:
        out = work / name
        out.mkdir()
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(env.model_dir(name)), (0,), "checkpoint_final.pth")
        predictor.predict_from_files_sequential(files, [str(out / pid) for pid in ids], save_probabilities=True,
                                                overwrite=True)
        for pid in ids:
            p = np.load(out / f"{pid}.npz")["probabilities"]
            # the probabilities are in the converted image's (z, y, x) array order: nnU-Net's own label map agrees
            own = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{pid}.nii.gz")))
            assert np.array_equal(p.argmax(0), own), (name, pid)
            probabilities[pid].append(p)
    return manifest, probabilities


def _restored(label: np.ndarray, manifest: dict, pid: str, work: Path) -> np.ndarray:
    """A converted-space label array on the patient's CT grid (the project's restore)."""
    image = sitk.GetImageFromArray(label.astype(np.uint8))
    image.CopyInformation(sitk.ReadImage(str(work / "images" / manifest["cases"][pid]["files"][0])))
    return sitk.GetArrayFromImage(restore_image(image, manifest["cases"][pid]))


def test_ensemble_equals_probabilities_averaged_by_hand(env, tmp_path, capsys):
    ids = sorted(p.name for p in (env.release / "Task 1").iterdir())[:3]
    inputs = _flat_inputs(env.release, tmp_path / "in", ids)
    pp_file = tmp_path / "pp.json"
    pp_file.write_text(json.dumps({"keep_largest_gtvp": True, "min_gtvn_ml": 2.0}))
    common = ["-i", str(inputs), "-d", str(DATASET_ID), "-m", TINY_TRAINER, "-m", f"{MEMBERS[1]}:nnUNetPlans::0",
              "-f", "0", "-device", "cpu", "--disable_tta", "--ensemble-chunk", "2", "--quiet"]
    rc = predict_cli.main(common + ["-o", str(tmp_path / "raw"), "--no-postprocessing",
                                    "--keep-work", str(tmp_path / "work")])
    assert rc == 0, capsys.readouterr().err
    rc = predict_cli.main(common + ["-o", str(tmp_path / "pp"), "--postprocessing", str(pp_file)])
    assert rc == 0, capsys.readouterr().err

    manifest, probabilities = _reference_probabilities(env, inputs, tmp_path / "ref")
    differs = [False, False]  # the ensemble differs from each member's own argmax somewhere
    pp_changed = False  # and the post-processing changes it somewhere
    for pid in ids:
        members = [p.argmax(0) for p in probabilities[pid]]
        label = (np.sum(probabilities[pid], axis=0) / len(MEMBERS)).argmax(0)
        differs = [d or bool(np.any(label != m)) for d, m in zip(differs, members)]
        spacing = Grid.from_dict(manifest["cases"][pid]["output_grid"]).spacing
        expected = {"raw": _restored(label, manifest, pid, tmp_path / "ref"),
                    "pp": _restored(apply_postprocessing(label, spacing, Postprocessing(True, 2.0)), manifest, pid,
                                    tmp_path / "ref")}
        ct = sitk.ReadImage(str(inputs / f"{pid}__CT.nii.gz"))
        for out, want in expected.items():
            got = sitk.ReadImage(str(tmp_path / out / f"{pid}.nii.gz"))
            assert Grid.of(got).same_as(Grid.of(ct)), (out, pid)
            assert np.array_equal(sitk.GetArrayFromImage(got), want), (out, pid)
        pp_changed = pp_changed or not np.array_equal(expected["raw"], expected["pp"])
    assert differs == [True, True] and pp_changed  # so the test tells the ensemble from either member alone

    summary = json.loads((tmp_path / "raw" / SUMMARY_FILE).read_text())
    assert [(Path(m["model"]).name, m["folds"]) for m in summary["models"]] == [
        (env.model_dir(name).name, ["0"]) for name in MEMBERS]
    pp_summary = json.loads((tmp_path / "pp" / SUMMARY_FILE).read_text())
    assert (pp_summary["postprocessing"], pp_summary["postprocessing_file"]) == (
        {"keep_largest_gtvp": True, "min_gtvn_ml": 2.0}, str(pp_file))
    # the members' probabilities are deleted once averaged (the work folder keeps the ensembled label maps)
    assert not list((tmp_path / "work" / "probabilities").rglob("*.npz"))
    assert sorted(p.name for p in (tmp_path / "work" / "pred_converted").glob("*.nii.gz")) == [
        f"{pid}.nii.gz" for pid in ids]


def _copy_models(env, results: Path) -> list[Path]:
    """Copies of the two members' model folders (with the dataset's conversion settings) under ``results``."""
    settings = json.loads((env.raw / DATASET_NAME / "conversion_manifest.json").read_text())["settings"]
    copies = []
    for name in MEMBERS:
        src = env.model_dir(name)
        dst = results / DATASET_NAME / src.name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("validation", "*.png", "*.txt"))
        (dst / "hecktor_conversion_settings.json").write_text(json.dumps(settings))
        (dst / POSTPROCESSING_FILE).unlink(missing_ok=True)
        copies.append(dst)
    return copies


def test_ensemble_refuses_models_of_other_labels_or_conversion(env, tmp_path, capsys):
    results = tmp_path / "results"
    a, b = _copy_models(env, results)
    specs = [ModelSpec(name) for name in MEMBERS]
    inputs = _flat_inputs(env.release, tmp_path / "in", sorted(p.name for p in (env.release / "Task 1").iterdir())[:1])
    common = dict(dataset=DATASET_ID, models=specs, device="cpu", results_dir=results, quiet=True)
    assert len(check_models(DATASET_ID, specs, results_dir=results)) == 2

    ds = json.loads((b / "dataset.json").read_text())
    (b / "dataset.json").write_text(json.dumps({**ds, "labels": {**ds["labels"], "GTVn": 3}}))
    with pytest.raises(ModelError, match=f"label set.*{a.name}.*{b.name}"):
        predict(inputs, tmp_path / "o", **common)
    (b / "dataset.json").write_text(json.dumps(ds))

    settings = json.loads((b / "hecktor_conversion_settings.json").read_text())
    (b / "hecktor_conversion_settings.json").write_text(json.dumps({**settings, "spacing": [4.0, 4.0, 4.0]}))
    with pytest.raises(ModelError, match=f"conversion settings.*{a.name}.*{b.name}"):
        predict(inputs, tmp_path / "o", **common)
    (b / "hecktor_conversion_settings.json").write_text(json.dumps(settings))

    with pytest.raises(ModelError, match=f"more than once.*{MEMBERS[0]}"):
        predict(inputs, tmp_path / "o", **{**common, "models": [specs[0], specs[1], specs[0]]})
    with pytest.raises(ValueError, match="either trainer"):
        predict(inputs, tmp_path / "o", trainer=MEMBERS[0], **common)
    assert not (tmp_path / "o").exists()

    argv = ["-i", str(inputs), "-o", str(tmp_path / "o"), "-d", str(DATASET_ID), "-f", "0", "-device", "cpu"]
    with pytest.raises(SystemExit):
        predict_cli.main(argv + ["-tr", MEMBERS[0], "-m", MEMBERS[1]])
    assert "with -m, give every member's trainer" in capsys.readouterr().err


def test_ensemble_postprocessing_rule(env, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    a, b = _copy_models(env, results)
    models = check_models(DATASET_ID, [ModelSpec(name) for name in MEMBERS], results_dir=results)

    def save(folder: Path, setting: Postprocessing) -> None:
        (folder / POSTPROCESSING_FILE).write_text(json.dumps({"setting": setting.to_dict(), "scores": []}))

    assert choose_postprocessing(models) == (None, None)  # none saved anywhere
    save(a, Postprocessing())  # an identity setting counts as none
    assert choose_postprocessing(models) == (Postprocessing(), str(a / POSTPROCESSING_FILE))
    save(a, Postprocessing(True, 0.5))
    save(b, Postprocessing(True, 0.5))
    assert choose_postprocessing(models) == (Postprocessing(True, 0.5), str(a / POSTPROCESSING_FILE))
    save(b, Postprocessing(False, 1.0))
    with pytest.raises(ModelError, match=f"different post-processing.*{a.name}.*{b.name}.*--postprocessing FILE"):
        choose_postprocessing(models)
    assert choose_postprocessing(models, postprocess=False) == (None, None)
    assert choose_postprocessing(models, postprocessing_file=b / POSTPROCESSING_FILE) == (
        Postprocessing(False, 1.0), str(b / POSTPROCESSING_FILE))
    with pytest.raises(ValueError, match="post-processing file .*nope.json not found"):
        choose_postprocessing(models, postprocessing_file=tmp_path / "nope.json")

    # the command line says the same, before converting or predicting anything
    argv = ["-i", str(tmp_path / "absent"), "-o", str(tmp_path / "o"), "-d", str(DATASET_ID), "-m", MEMBERS[0],
            "-m", MEMBERS[1], "-f", "0", "-device", "cpu"]
    monkeypatch.setenv("nnUNet_results", str(results))
    assert predict_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "different post-processing" in err and a.name in err and b.name in err and "--no-postprocessing" in err
