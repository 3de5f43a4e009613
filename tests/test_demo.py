"""``hecktor-demo`` end to end at the smallest size (real nnU-Net, PyRadiomics, xgboost), resume, and its guards."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from hecktor_nnunet.cli.demo import main as demo_main
from hecktor_nnunet.demo.marks import PASS_MARKS, pass_marks
from hecktor_nnunet.demo.runner import _check_settings, _remove, run_demo
from hecktor_nnunet.demo.settings import MASK_SOURCES, SMALLEST, DemoPaths
from hecktor_nnunet.demo.steps import STEP_NAMES, prognosis_split
from hecktor_nnunet.reporting.demo_folder import demo_report_inputs, recorded_commands


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The smallest demo (tiny trainer), run once for the module (a few minutes on 2 idle cores)."""
    workdir = tmp_path_factory.mktemp("demo") / "work"
    return {"workdir": workdir, "data": run_demo(workdir, SMALLEST, quiet=True)}


@pytest.mark.slow
def test_demo_runs_every_step_and_reports_the_held_out_patients(demo):
    p = DemoPaths(demo["workdir"])
    assert p.report.is_file() and p.report.with_suffix(".json").is_file()
    data = json.loads(p.report.with_suffix(".json").read_text())
    assert data == demo["data"]
    for key in ("conversion", "segmentation", "overlays", "radiomics", "rfs", "hpv", "prognosis", "commands",
                "versions", "figures"):
        assert data[key], key
    assert data["missing"] == []
    splits = json.loads((p.dataset / "splits_final.json").read_text())
    held_out = sorted(splits[0]["val"])
    patients = json.loads((p.heldout / "patients.json").read_text())
    assert patients["segmentation_heldout"] == held_out
    # every segmentation score is computed on fold 0's validation patients only
    assert [r["patient_id"] for r in data["segmentation"]["per_patient"]] == held_out
    # the prognosis is scored on those and on held-out image-only patients, never seen by any model
    prog_held = patients["prognosis_heldout"]
    assert set(held_out) < set(prog_held)
    assert data["rfs"]["n_patients"] == len(prog_held)
    # patients whose HPV status is unknown (as in the release) are left out of the HPV score, by name
    hpv = json.loads((p.eval("hpv") / "summary.json").read_text())
    assert data["hpv"]["n_patients"] + hpv["n_excluded_missing_truth"] == len(prog_held)
    assert set(hpv["excluded_missing_truth"]) < set(prog_held)
    train = [line.split(",")[0] for line in p.train_clinical.read_text().splitlines()[1:]]
    assert not set(train) & set(prog_held)
    assert sorted(train) == patients["prognosis_train"]
    assert data["conversion"]["n_converted"] == SMALLEST.cases + SMALLEST.unlabelled
    assert data["conversion"]["splits"] == {"mode": "centre-stratified", "n_folds": SMALLEST.folds, "seed": 0}
    assert {o["patient_id"] for o in data["overlays"]} <= set(held_out)
    assert {"rfs", "hpv"} <= set(data["prognosis"])
    # every model family compared on the same folds, the default (auto) first, with its figure
    for task in ("rfs", "hpv"):
        rows = data["prognosis"][task]["comparison"]["rows"]
        assert rows[0]["model"] == "auto (default)" and len(rows) >= 6
        assert f"{task}_comparison" in data["figures"]
    # predicted masks, true masks (every patient's, outside the release), clinical only and the oracle, side by side
    comparison = data["prognosis_comparison"]
    assert [r["source"] for r in comparison["rows"]] == list(MASK_SOURCES)
    assert comparison["held_out_patients"] == len(prog_held)
    assert len(list(p.oracle_labels.glob("*.nii.gz"))) == SMALLEST.cases + SMALLEST.unlabelled
    assert not (p.heldout / "release").exists()  # truth labels linked, not the images
    assert "training_progress" in data["figures"]
    # every step ran a real command, recorded with its duration
    steps = [c["step"] for c in data["commands"]]
    for name in STEP_NAMES[:-1]:
        assert name in steps, name
    commands = "\n".join(c["command"] for c in data["commands"])
    for tool in ("hecktor-synth", "--oracle-labels", "hecktor-convert", "nnUNetv2_plan_and_preprocess",
                 "nnUNetv2_train", "hecktor-predict", "hecktor-evaluate seg", "hecktor-radiomics",
                 "hecktor-prognosis compare rfs", "hecktor-prognosis train hpv", "--no-radiomics",
                 "hecktor-prognosis predict --model-dir", "hecktor-evaluate rfs", "hecktor-evaluate hpv",
                 "nnUNet_extTrainer="):
        assert tool in commands, tool
    assert f"-tr {SMALLEST.trainer}" in commands
    # the tiny trainer is below the pass mark: the banner says so, the pass marks say which failed
    marks = {m["metric"]: m for m in data["pass_marks"]}
    assert set(marks) == set(PASS_MARKS)
    assert marks["gtvp_dice_mean"]["met"] is False
    assert "NOT a real model" in data["notes"][0]


@pytest.mark.slow
def test_demo_rerun_skips_finished_steps(demo, capsys):
    p = DemoPaths(demo["workdir"])
    before = {n: (p.markers / f"{n}.json").stat().st_mtime for n in STEP_NAMES}
    assert demo_main(["--workdir", str(p.root), "--smallest"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == len(STEP_NAMES)
    assert "pass marks:" in out and "FAIL" in out
    assert before == {n: (p.markers / f"{n}.json").stat().st_mtime for n in STEP_NAMES}
    # --from-step re-runs that step and the later ones only
    assert demo_main(["--workdir", str(p.root), "--smallest", "--from-step", "report", "--quiet"]) == 0
    after = {n: (p.markers / f"{n}.json").stat().st_mtime for n in STEP_NAMES}
    assert [n for n in STEP_NAMES if after[n] != before[n]] == ["report"]


def test_workdir_made_with_other_settings_is_refused(tmp_path):
    paths = DemoPaths(tmp_path)
    _check_settings(paths, SMALLEST)
    assert json.loads((paths.markers / "settings.json").read_text()) == asdict(SMALLEST)
    _check_settings(paths, SMALLEST)  # same settings: fine
    with pytest.raises(ValueError, match=r"other settings \{'cases': \(16, 17\)\}"):
        _check_settings(paths, replace(SMALLEST, cases=17))
    assert demo_main(["--workdir", str(tmp_path), "--smallest", "--cases", "17"]) == 1


def test_unknown_step_and_removal_outside_the_workdir_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        run_demo(tmp_path, SMALLEST, from_step="nope")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    with pytest.raises(ValueError, match="outside the demo folder"):
        _remove(outside, tmp_path / "work")
    assert outside.read_text() == "keep me"


def test_recorded_commands_in_step_order(tmp_path):
    p = DemoPaths(tmp_path)
    p.markers.mkdir()
    (p.markers / "environment.json").write_text(json.dumps({"nnUNet_raw": "/x y"}))
    for name in ("train", "generate"):  # written out of order
        (p.markers / f"{name}.json").write_text(json.dumps(
            {"commands": [{"command": f"cmd-{name}", "seconds": 1.0, "returncode": 0}]}))
    cmds = recorded_commands(tmp_path)
    assert [c["step"] for c in cmds] == ["environment", "generate", "train"]
    assert cmds[0]["command"] == "export nnUNet_raw='/x y'"


def test_pass_marks_judge_each_figure_and_say_when_unmeasured():
    seg = {"gtvp_dice_mean": 0.71, "gtvn_dsc_agg": 0.29}
    comparison = {"rows": [{"source": "predicted", "rfs_c_index": 0.70, "hpv_balanced_accuracy": 0.66},
                           {"source": "true", "rfs_c_index": 0.76, "hpv_balanced_accuracy": 0.70}]}
    marks = {m["metric"]: m for m in pass_marks(seg, comparison)}
    assert marks["gtvp_dice_mean"]["met"] is True and marks["gtvn_dsc_agg"]["met"] is False
    assert marks["rfs_c_index_predicted"]["met"] is True
    assert marks["rfs_c_index_gap_to_true"]["value"] == pytest.approx(0.06)
    assert marks["rfs_c_index_gap_to_true"]["met"] is False  # 0.06 > 0.05
    assert marks["hpv_balanced_accuracy_predicted"]["met"] is True
    assert all(m["met"] is None for m in pass_marks(None, None))


def test_prognosis_split_holds_out_segmentation_patients_and_a_share_of_image_only_ones():
    import pandas as pd

    ids = [f"{c}-{i:03d}" for c in ("CHUM", "CHUS", "MDA") for i in range(1, 21)]
    clinical = pd.DataFrame({"PatientID": ids, "Centre": [i.split("-")[0] for i in ids],
                             "Relapse": [i % 2 for i in range(len(ids))]})
    labelled = set(ids[::3])
    seg_held = sorted(ids[::3][:4])
    train, held = prognosis_split(clinical, seg_held, labelled, share=0.4, seed=0)
    assert set(seg_held) <= set(held) and not set(train) & set(held) and set(train) | set(held) == set(ids)
    image_only_held = set(held) - labelled
    assert len(image_only_held) == 16  # 40 % of the 40 image-only patients
    assert {i.split("-")[0] for i in image_only_held} == {"CHUM", "CHUS", "MDA"}  # every centre
    assert prognosis_split(clinical, seg_held, labelled, share=0.4, seed=0) == (train, held)


@pytest.mark.parametrize("gtvp, banner", [(0.72, False), (0.31, True), (None, True)])
def test_not_a_model_banner_only_below_the_pass_mark(tmp_path, gtvp, banner):
    paths = DemoPaths(tmp_path)
    _check_settings(paths, SMALLEST)
    if gtvp is not None:
        (paths.eval("seg")).mkdir(parents=True)
        (paths.eval("seg") / "summary.json").write_text(json.dumps({"gtvp_dice_mean": gtvp, "gtvn_dsc_agg": 0.4}))
    inputs = demo_report_inputs(tmp_path)
    assert bool(inputs.notes) is banner
    assert (not banner) or "NOT a real model" in inputs.notes[0]
    marks = {m["metric"]: m["met"] for m in inputs.pass_marks}
    assert marks["gtvp_dice_mean"] is (None if gtvp is None else gtvp >= PASS_MARKS["gtvp_dice_mean"])
