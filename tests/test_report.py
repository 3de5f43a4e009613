"""The report builder on small hand-made runs: every section read back exactly, a report fit for a paper
(readable labels, relative paths, CSV tables equal to the JSON, cohort table), overlays, errors, browser check."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import hecktor_nnunet
from hecktor_nnunet.demo.marks import PASS_MARKS, pass_marks
from hecktor_nnunet.cli.report import main as report_main
from hecktor_nnunet.evaluation.labels import format_p, label
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS
from hecktor_nnunet.reporting.cohort import cohort_section, format_cell, median_follow_up
from hecktor_nnunet.reporting.collect import PER_PATIENT_COLUMNS, collect_report, tidy_numbers
from hecktor_nnunet.reporting.figures import _pick_patients, overlay_png
from hecktor_nnunet.reporting.inputs import ReportError, ReportInputs
from hecktor_nnunet.reporting.provenance import relative_paths
from hecktor_nnunet.reporting.render import build_report, render_html
from hecktor_nnunet.reporting.tables import FEW_EXPLAINED, FEW_NOTE

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
    (base / "prognosis" / "rfs" / "compare").mkdir()
    row = {"model": "auto", "label": "auto (default)", "n_patients": 6, "score": 0.7, "ci": [0.6, 0.8],
           "diff_vs_default": None, "diff_ci": None, "p_value": None, "error": None, "chosen": {"xgb (k=2)": 3}}
    worse = {**row, "model": "cox", "label": "Cox (penalised)", "score": 0.55, "ci": [0.45, 0.65],
             "diff_vs_default": -0.15, "diff_ci": [-0.2, -0.1], "p_value": 0.0004}
    worse.pop("chosen")
    (base / "prognosis" / "rfs" / "compare" / "comparison.json").write_text(json.dumps({
        "task": "rfs", "metric": "c_index", "cv": "centre-stratified", "n_splits": 3, "repeats": 1, "seed": 0,
        "n_boot": 100, "n_patients": 6, "default": "auto", "rows": [row, worse]}))
    return {"base": base, "release": release, "dataset": result.dataset_dir, "pred": pred, "seg": seg, "rfs": rfs,
            "hpv": hpv, "labels": labels}


def _inputs(run: dict, **kw) -> ReportInputs:
    b = run["base"]
    args = dict(dataset=run["dataset"], seg_eval=b / "eval_seg", rfs_eval=b / "eval_rfs", hpv_eval=b / "eval_hpv",
                prognosis_dir=b / "prognosis", release=run["release"], pred=run["pred"],
                commands=[{"step": "convert", "command": "hecktor-convert release -d 520", "seconds": 1.5}],
                notes=["hand-made test run"], n_boot=40)
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
    models = [r["model"] for r in saved["prognosis"]["rfs"]["comparison"]["rows"]]
    assert models == ["auto (default)", "Cox (penalised)"]
    assert saved["cohort"]["columns"] == {"all patients": 6}
    expected = {"seg_dice_per_centre", "rfs_km", "hpv_roc", "rfs_cv_plot", "rfs_importance",
                *(f"overlay_{o['patient_id']}" for o in saved["overlays"])}
    assert set(saved["figures"]) == expected

    page = out.read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == len(expected) == page.count("<img ")
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert "hand-made test run" in page and "hecktor-convert release -d 520" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from outside the file


def visible_text(page: str) -> str:
    """What a reader sees of a page: no script, style, tags or image data; entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv")


def test_a_demo_like_report_is_fit_for_a_paper(run):
    """Readable labels, no absolute path, tables as CSV equal to the JSON, cohort groups, small-centre warnings."""
    base = run["base"]
    ids = sorted(pd.read_csv(run["dataset"] / "clinical.csv")["PatientID"])
    groups = {"prognosis training": ids[:4], "held out": ids[4:]}
    comparison = {"held_out_patients": 2, "rows": [
        {"source": source, "rfs_c_index": c, "rfs_c_index_ci": [c - 0.1, c + 0.1], "hpv_balanced_accuracy": 0.6,
         "hpv_balanced_accuracy_ci": [0.5, 0.7], "hpv_auc": 0.65}
        for source, c in (("predicted", 0.7), ("true", 0.72))]}
    seg_summary = json.loads((base / "eval_seg" / "summary.json").read_text())
    out = base / "report.html"
    data = build_report(_inputs(run, workdir=base, cohort_groups=groups, prognosis_comparison=comparison,
                                pass_marks=pass_marks(seg_summary, comparison)), out)
    saved = _strict_json(out.with_suffix(".json"))
    assert saved == data
    text = visible_text(out.read_text())

    # no raw key as a label: the metric keys and the per-patient columns of the evaluation tables
    per_patient_columns = set()
    for task in ("seg", *OUTCOME_TASKS):
        per_patient_columns |= set(pd.read_csv(base / f"eval_{task}" / "per_patient.csv", nrows=0).columns)
    keys = {*SEG_METRICS, *(t.metric for t in OUTCOME_TASKS.values()), *per_patient_columns, *PER_PATIENT_COLUMNS,
            *PASS_MARKS}
    raw = [k for k in sorted(keys) if ("_" in k or k == "PatientID") and re.search(rf"(?<![\w-]){k}(?![\w-])", text)]
    assert raw == []
    for readable in ("GTVp Dice (mean)", "GTVp HD95 (median, mm)", "GTVn aggregated Dice", "GTVp true volume (mL)",
                     "Uno's C", "log-rank p (median split)", "RFS Harrell's C-index (gap to true masks)"):
        assert readable in text, readable

    # no absolute path, in the page or anywhere in report.json; paths relative to the work folder
    for form in {str(base), str(base.resolve())}:
        assert form not in text
        assert not [s for s in _strings(saved) if form in s]
    assert saved["paths"] == {"relative_to": "the work folder", "folder_name": base.name}
    assert saved["segmentation"]["folder"] == "eval_seg"
    assert saved["overlays"][0]["ct"].startswith("release/")

    # numbers tidied: float32 spacing noise (4.199999809265137 mm) is gone from the JSON
    assert saved["segmentation"]["metrics"]["gtvp_hd95_median"]["value"] == 4.2
    assert "4.1999998" not in out.with_suffix(".json").read_text()

    # every table is a CSV beside the page, named in it, with the values of report.json
    folder = base / "report_tables"
    assert saved["tables"]["folder"] == "report_tables"
    assert sorted(p.name for p in folder.glob("*.csv")) == sorted(saved["tables"]["files"])
    assert "report_tables/" in text and "report_tables/cohort.csv" in text
    metrics = _csv(folder, "segmentation_metrics").set_index("measure")
    assert len(metrics) == len(SEG_METRICS)
    for key in SEG_METRICS:
        m = saved["segmentation"]["metrics"][key]
        row = metrics.loc[label(key)]
        assert [row["value"], row["95% CI low"], row["95% CI high"]] == [m["value"], *m["ci95"]]
    patients = _csv(folder, "segmentation_per_patient")
    assert patients["GTVp Dice"].tolist() == [r["gtvp_dice"] for r in saved["segmentation"]["per_patient"]]
    volumes = _csv(folder, "label_volumes")
    assert len(volumes) == 12 and volumes["volume before conversion (mL)"].tolist() == [
        v["original_ml"] for v in saved["conversion"]["label_volumes"]]
    by_region = _csv(folder, "label_volumes_by_region").set_index("region")
    gtvp = [v["original_ml"] for v in saved["conversion"]["label_volumes"] if v["region"] == "GTVp"]
    assert by_region.loc["GTVp", "patients"] == 6
    assert by_region.loc["GTVp", "volume before conversion (median, mL)"] == pytest.approx(float(np.median(gtvp)))
    assert "label_volumes.csv (12 rows)" in text and "CSV: report_tables/label_volumes.csv" not in text
    rfs = _csv(folder, "rfs_metrics").set_index("measure")
    assert rfs.loc["Uno's C", "value"] == saved["rfs"]["uno_c"]
    assert [rfs.loc["Uno's C", "95% CI low"], rfs.loc["Uno's C", "95% CI high"]] == saved["rfs"]["uno_c_ci"]
    assert rfs.loc["time-dependent AUC at 730 days", "95% CI low"] == saved["rfs"]["td_auc_ci"]["730"][0]

    # numbers at risk under the Kaplan-Meier plot, as a table too: risk = -RFS, so the 3 shortest RFS are high risk
    at_risk = saved["rfs"]["numbers_at_risk"]
    rfs_days = sorted(pd.read_csv(run["dataset"] / "clinical.csv")["RFS"])
    for i, tick in enumerate(at_risk["time_days"]):
        assert at_risk["high risk"][i] == sum(t >= tick for t in rfs_days[:3])
        assert at_risk["low risk"][i] == sum(t >= tick for t in rfs_days[3:])
    assert _csv(folder, "rfs_numbers_at_risk").set_index("risk group").loc["high risk"].tolist() == at_risk["high risk"]

    # the comparison's p-value below 0.001 is shown as such (the CSV keeps the value)
    comparison = _csv(folder, "rfs_model_comparison").set_index("model")
    assert comparison.loc["Cox (penalised)", "p"] == 0.0004
    assert re.search(r"Cox \(penalised\)</td>(<td[^>]*>[^<]*</td>)*<td[^>]*>&lt; 0\.001</td>", out.read_text())

    sources = _csv(folder, "prognosis_comparison")
    assert sources["RFS 95% CI low"].tolist() == [r["rfs_c_index_ci"][0] for r in saved["prognosis_comparison"]["rows"]]
    assert sources["HPV 95% CI high"].tolist() == [0.7, 0.7]
    marks = _csv(folder, "pass_marks").set_index("measure")
    assert marks.loc["RFS Harrell's C-index (gap to true masks)", "value"] == pytest.approx(0.02)

    # every centre has 1 patient: each per-centre row is marked, the box plot has no box
    for name in ("segmentation_per_centre", "rfs_per_centre", "hpv_per_centre"):
        assert set(_csv(folder, name)["note"]) == {FEW_NOTE}
    assert text.count(FEW_EXPLAINED) == 3

    # the cohort table: one column per group after all patients
    cohort = _csv(folder, "cohort")
    assert list(cohort.columns) == ["characteristic", "category", "all patients (n = 6)",
                                    "prognosis training (n = 4)", "held out (n = 2)"]
    assert saved["cohort"]["columns"] == {"all patients": 6, "prognosis training": 4, "held out": 2}

    # provenance: this checkout's commit, or "installed package"
    source = saved["versions"]["hecktor_nnunet"]
    root = Path(hecktor_nnunet.__file__).resolve().parent.parent
    if (root / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert source["commit"] == head.strip() and source["commit"] in text
    else:
        assert source["source"] == "installed package" and "installed package" in text


def test_cohort_table_counts_a_hand_made_clinical_table(tmp_path):
    table = tmp_path / "clinical.csv"
    pd.DataFrame({
        "PatientID": ["A-001", "A-002", "A-003", "B-001", "B-002"],
        "Age": [50, 60, 70, 80, None],
        "Gender": ["M", "F", "M", "M", ""],
        "HPV Status": ["positive", "negative", "", "positive", "unknown"],
        "T-stage": ["T2", "T4", "T1", "T2", ""],
        "N-stage": ["N0", "N1", "N2", "N0", "N0"],
        "M-stage": ["M0", "M0", "M0", "M1", "M0"],
        "Relapse": [1, 0, 1, 0, 0],
        "RFS": [100, 200, 300, 400, 500],
    }).to_csv(table, index=False)
    c = cohort_section(table, {"B": ["B-001", "B-002", "C-009"]})
    assert c["columns"] == {"all patients": 5, "B": 2}
    assert c["not_in_table"] == {"B": ["C-009"]}
    cells = {(r["characteristic"], r["category"]): r["values"] for r in c["rows"]}
    n = {k: {g: v.get("n") for g, v in cells[k].items()} for k in cells}
    assert n[("Patients", "")] == {"all patients": 5, "B": 2}
    assert n[("Sex", "male")] == {"all patients": 3, "B": 1} and n[("Sex", "female")] == {"all patients": 1, "B": 0}
    assert n[("Sex", "unknown")] == {"all patients": 1, "B": 1}
    assert n[("HPV status", "positive")] == {"all patients": 2, "B": 1}
    assert n[("HPV status", "negative")] == {"all patients": 1, "B": 0}
    assert n[("HPV status", "unknown")] == {"all patients": 2, "B": 1}
    assert [k[1] for k in cells if k[0] == "T stage"] == ["T1", "T2", "T4", "unknown"]
    assert n[("T stage", "T2")] == {"all patients": 2, "B": 1}
    assert n[("N stage", "N0")] == {"all patients": 3, "B": 2} and ("N stage", "unknown") not in cells
    assert n[("M stage", "M1")] == {"all patients": 1, "B": 1}
    assert n[("Outcome", "relapse")] == {"all patients": 2, "B": 0}
    age = cells[("Age (years)", "median [IQR]")]
    assert (age["all patients"]["median"], age["all patients"]["q1"], age["all patients"]["q3"]) == (65.0, 57.5, 72.5)
    assert format_cell(age["all patients"]) == "65 [57.5–72.5]" and format_cell(age["B"]) == "80 [80–80]"
    assert format_cell(cells[("Sex", "male")]["all patients"]) == "3 (60%)"
    # reverse Kaplan-Meier: censorings at 200, 400, 500 are its events, relapses at 100, 300 censor it:
    # S(200) = 3/4, S(400) = 3/4 * 1/2 = 3/8 <= 0.5, so the median follow-up is 400 days (the plain median is 300)
    follow_up = cells[("Follow-up (days)", "median (reverse Kaplan-Meier)")]
    assert follow_up["all patients"]["median"] == 400.0
    assert median_follow_up([1, 2, 3, 4, 5], [1, 0, 1, 0, 0]) == 4.0
    assert median_follow_up([10, 20], [1, 1]) is None  # nobody censored: never reached
    assert format_cell({"median": None}) == "not reached"


def test_p_values_numbers_and_paths_as_a_paper_shows_them():
    assert [format_p(p) for p in (0.0004, 1e-12, 0.001, 0.0312, None, float("nan"))] == [
        "< 0.001", "< 0.001", "0.001", "0.031", "–", "–"]
    assert tidy_numbers({"hd95": [4.199999809265137, 1.2345678901e-12], "n": 3}) == {
        "hd95": [4.2, 1.234568e-12], "n": 3}
    base = Path("/data/runs/work")
    data = {"folder": "/data/runs/work/eval/seg", "root": "/data/runs/work",
            "cmd": "hecktor-report --workdir /data/runs/work", "other": "/data/runs/work2/x", "outside": "/srv/release", "n": 1}
    assert relative_paths(data, base) == {"folder": "eval/seg", "root": ".", "cmd": "hecktor-report --workdir .",
                                          "other": "/data/runs/work2/x", "outside": "/srv/release", "n": 1}


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
    data, figures = collect_report(ReportInputs(rfs_eval=run["base"] / "eval_rfs", n_boot=40))
    assert data["rfs"]["c_index"] == pytest.approx(1.0) and set(figures) == {"rfs_km"}
    assert data["missing"] == ["cohort", "conversion", "segmentation", "overlays", "radiomics", "hpv", "prognosis"]
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
