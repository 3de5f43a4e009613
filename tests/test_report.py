"""The report builder on small hand-made runs: every section read back exactly, overlays, errors, browser check."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli.report import main as report_main
from hecktor_nnunet.reporting.collect import collect_report
from hecktor_nnunet.reporting.figures import overlay_png
from hecktor_nnunet.reporting.inputs import ReportError, ReportInputs
from hecktor_nnunet.reporting.render import build_report, render_html
from hecktor_nnunet.reporting.figures import _pick_patients

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _strict_json(path: Path) -> dict:
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def _tiny_png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A small run: 6 synthetic patients converted, predictions = truth shifted by one voxel (one empty),
    RFS risks = -RFS (perfectly concordant), HPV predictions = truth, a hand-written prognosis folder."""
    from hecktor_nnunet.dataset_conversion.convert import convert_release
    from hecktor_nnunet.evaluation.outcomes import evaluate_hpv, evaluate_rfs
    from hecktor_nnunet.evaluation.segmentation import evaluate_segmentation
    from hecktor_nnunet.demo.synth import generate_release

    base = tmp_path_factory.mktemp("report_run")
    release = base / "release"
    generate_release(release, 6, size="tiny", seed=5)
    result = convert_release(release, 520, name="REPORTTEST", raw_dir=base / "raw", quiet=True)
    pred = base / "pred"
    pred.mkdir()
    labels = sorted((release / "Task 1").glob("*/*.nii.gz"))
    labels = [p for p in labels if "__" not in p.name]
    for i, path in enumerate(labels):
        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img)
        arr = np.zeros_like(arr) if i == 0 else np.roll(arr, 1, axis=2)
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(pred / path.name))
    seg = evaluate_segmentation(release, pred, base / "eval_seg", n_boot=20, quiet=True)
    clinical = pd.read_csv(result.dataset_dir / "clinical.csv")
    pd.DataFrame({"PatientID": clinical["PatientID"], "Prediction": -clinical["RFS"]}).to_csv(
        base / "rfs.csv", index=False)
    pd.DataFrame({"PatientID": clinical["PatientID"], "Prediction": clinical["HPV Status"],
                  "Probability": 0.2 + 0.6 * clinical["HPV Status"]}).to_csv(base / "hpv.csv", index=False)
    clinical_csv = result.dataset_dir / "clinical.csv"
    rfs = evaluate_rfs(clinical_csv, base / "rfs.csv", base / "eval_rfs", n_boot=20)
    hpv = evaluate_hpv(clinical_csv, base / "hpv.csv", base / "eval_hpv", n_boot=20)
    model = base / "prognosis" / "rfs" / "model"
    cv = base / "prognosis" / "rfs" / "cv"
    model.mkdir(parents=True)
    cv.mkdir(parents=True)
    (model / "prognosis.json").write_text(json.dumps({
        "task": "rfs", "model": "xgb", "best_params": {"max_depth": 2}, "feature_names_in": ["CLIN_Age", "PET_x"],
        "selected_features": ["CLIN_Age"], "threshold": None, "params_hash": "abc", "versions": {"xgboost": "9.9"}}))
    pd.DataFrame({"feature": ["CLIN_Age"], "gain": [3.5], "mean_abs_shap": [0.25]}).to_csv(
        model / "feature_importance.csv", index=False)
    _tiny_png(model / "feature_importance.png")
    (cv / "cv_report.json").write_text(json.dumps({
        "task": "rfs", "cv": "centre-stratified", "n_splits": 3, "repeats": 1, "n_patients": 6, "n_events": 2,
        "c_index": 0.61, "c_index_ci95": [0.4, 0.8], "c_index_fold_sd": 0.1, "model": "xgb"}))
    _tiny_png(cv / "km_risk_groups.png")
    return {"base": base, "release": release, "dataset": result.dataset_dir, "pred": pred, "seg": seg, "rfs": rfs,
            "hpv": hpv, "labels": labels}


def _inputs(run: dict, **kw) -> ReportInputs:
    b = run["base"]
    args = dict(dataset=run["dataset"], seg_eval=b / "eval_seg", rfs_eval=b / "eval_rfs", hpv_eval=b / "eval_hpv",
                prognosis_dir=b / "prognosis", release=run["release"], pred=run["pred"],
                commands=[{"step": "convert", "command": "hecktor-convert release -d 520", "seconds": 1.5}],
                notes=["hand-made test run"])
    args.update(kw)
    return ReportInputs(**args)


def test_report_reads_every_section_back_exactly(run, tmp_path):
    out = tmp_path / "r" / "report.html"
    data = build_report(_inputs(run), out)
    saved = _strict_json(out.with_suffix(".json"))  # NaN written as null, never as NaN
    assert saved["title"] == data["title"]
    assert saved["conversion"]["n_converted"] == 6 and saved["conversion"]["n_failed"] == 0
    assert saved["conversion"]["kept_fraction_min"] == pytest.approx(1.0)  # exact crop on the CT grid
    assert len(saved["conversion"]["label_volumes"]) == 12  # 6 patients x (GTVp, GTVn)
    seg = saved["segmentation"]
    assert seg["n_patients"] == 6
    assert seg["metrics"]["gtvp_dice_mean"]["value"] == pytest.approx(run["seg"]["gtvp_dice_mean"])
    assert seg["metrics"]["gtvn_dsc_agg"]["ci95"] == pytest.approx(run["seg"]["ci"]["gtvn_dsc_agg"])
    assert [r["patient_id"] for r in seg["per_patient"]] == sorted(p.name[:-7] for p in run["labels"])
    assert set(seg["per_centre"]) == set(run["seg"]["per_centre"])
    # the patient with an empty prediction scores 0; the worst Dice is among the overlays
    empty = run["labels"][0].name[:-7]
    assert next(r for r in seg["per_patient"] if r["patient_id"] == empty)["gtvp_dice"] == 0.0
    assert len(saved["overlays"]) == 3 and empty in [o["patient_id"] for o in saved["overlays"]]
    assert saved["rfs"]["c_index"] == pytest.approx(1.0)  # risk = -RFS: every comparable pair concordant
    assert saved["rfs"]["n_patients"] == 6
    assert saved["hpv"]["balanced_accuracy"] == pytest.approx(1.0)
    assert saved["prognosis"]["rfs"]["cv"]["c_index"] == 0.61
    assert saved["prognosis"]["rfs"]["feature_importance"][0]["feature"] == "CLIN_Age"
    assert "hpv" not in saved["prognosis"]
    assert saved["commands"][0]["command"] == "hecktor-convert release -d 520"
    assert saved["versions"]["recorded"]["prognosis_rfs"] == {"xgboost": "9.9"}
    assert saved["versions"]["environment"]["nnunetv2"] == "2.8.1"
    assert saved["missing"] == ["radiomics"]
    expected = {"seg_dice_per_centre", "rfs_km", "hpv_roc", "rfs_cv_plot", "rfs_importance",
                *(f"overlay_{o['patient_id']}" for o in saved["overlays"])}
    assert set(saved["figures"]) == expected

    page = out.read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == len(expected) == page.count("<img ")
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert "hand-made test run" in page and "hecktor-convert release -d 520" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from outside the file


def test_overlay_picks_the_slices_with_most_labelled_voxels():
    size = (20, 16, 12)  # x, y, z
    ct = sitk.Image(size, sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 3.0))
    pet = sitk.Image((10, 8, 6), sitk.sitkFloat32)
    pet.SetSpacing((4.0, 4.0, 6.0))
    arr = np.zeros(size[::-1], np.uint8)  # z, y, x
    arr[7, 3:6, 4:9] = 1  # largest axial section at z = 7
    arr[5:9, 11, 14] = 2  # coronal counts: y=11 has 4 voxels, y=3..5 have 5 each (z=7 row) -> argmax y = 3
    truth = sitk.GetImageFromArray(arr)
    truth.CopyInformation(ct)
    png, where = overlay_png(ct, pet, truth, None, "phantom")
    assert png.startswith(PNG_MAGIC)
    assert where == {"axial_index": 7, "coronal_index": 3}
    png, where = overlay_png(ct, pet, None, None)  # nothing labelled: the middle slices
    assert where == {"axial_index": 6, "coronal_index": 8}


def test_overlay_refuses_a_label_map_on_another_grid():
    ct = sitk.Image((8, 8, 8), sitk.sitkInt16)
    other = sitk.Image((8, 8, 4), sitk.sitkUInt8)
    with pytest.raises(ReportError, match="differs from the CT"):
        overlay_png(ct, ct, other)


def test_pick_patients_best_median_worst_first():
    rows = [{"patient_id": f"P-{i}", "gtvp_dice": d} for i, d in enumerate([0.5, 0.9, 0.1, None, 0.7])]
    ids = [r["patient_id"] for r in rows]
    assert _pick_patients(rows, ids, 3) == ["P-1", "P-0", "P-2"]
    assert _pick_patients(rows, ids, 10) == ["P-1", "P-0", "P-2", "P-3", "P-4"]
    assert _pick_patients([], ["B-1", "A-1"], 1) == ["A-1"]


def test_missing_inputs_are_listed_and_bad_inputs_named(run, tmp_path):
    data, figures = collect_report(ReportInputs(rfs_eval=run["base"] / "eval_rfs"))
    assert data["rfs"]["c_index"] == pytest.approx(1.0) and set(figures) == {"rfs_km"}
    assert data["missing"] == ["conversion", "segmentation", "overlays", "radiomics", "hpv", "prognosis"]
    assert "Not part of this report" in render_html(data, figures)
    with pytest.raises(ReportError, match="nothing to report"):
        collect_report(ReportInputs())
    with pytest.raises(ReportError, match="conversion_manifest.json"):
        collect_report(ReportInputs(dataset=tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "summary.json").write_text(json.dumps({"runs": {}, "ranking": []}))
    with pytest.raises(ReportError, match="several runs"):
        collect_report(ReportInputs(seg_eval=runs))
    with pytest.raises(ReportError, match="no rfs/ or hpv/"):
        collect_report(ReportInputs(prognosis_dir=tmp_path))


def test_cli_explicit_folders_and_commands_file(run, tmp_path, capsys):
    b = run["base"]
    cmds = tmp_path / "commands.sh"
    cmds.write_text("# how it was made\nhecktor-convert /data -d 500\n\nnnUNetv2_train 500 3d_fullres 0\n")
    out = tmp_path / "real.html"
    code = report_main(["--dataset-dir", str(run["dataset"]), "--seg-eval", str(b / "eval_seg"), "--release",
                        str(run["release"]), "--pred", str(run["pred"]), "--overlays", "1", "--commands", str(cmds),
                        "-o", str(out), "--title", "Real run"])
    assert code == 0
    data = _strict_json(out.with_suffix(".json"))
    assert data["title"] == "Real run" and len(data["overlays"]) == 1
    assert [c["command"] for c in data["commands"]] == ["hecktor-convert /data -d 500",
                                                        "nnUNetv2_train 500 3d_fullres 0"]
    assert report_main(["--workdir", str(tmp_path), "--dataset-dir", str(run["dataset"])]) == 2
    assert report_main(["--workdir", str(tmp_path)]) == 2  # not a demo folder
    assert "not a hecktor-demo folder" in capsys.readouterr().err


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM of ``page`` after its load event, from headless Chromium."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs Debian's chromium; "
                                               "apt-get install -y chromium)")
def test_report_figures_load_in_headless_chromium(run, tmp_path):
    out = tmp_path / "report.html"
    data = build_report(_inputs(run), out)
    dom = render_in_chromium(out, tmp_path)
    assert f'data-image-count="{len(data["figures"])}"' in dom
    assert 'data-images="ok"' in dom
    # the check can fail: a page with a corrupt image is reported broken
    broken = tmp_path / "broken.html"
    broken.write_text(out.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert 'data-images="broken"' in render_in_chromium(broken, tmp_path)
