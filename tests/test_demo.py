"""``hecktor-demo`` end to end at the smallest size (real nnU-Net, PyRadiomics, xgboost), resume, and its guards."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace

import pytest

from hecktor_nnunet.cli.demo import main as demo_main
from hecktor_nnunet.demo import SMALLEST, STEP_NAMES, DemoPaths, _check_settings, _remove, recorded_commands, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The smallest demo, run once for the module (about 2 minutes on 2 idle cores)."""
    workdir = tmp_path_factory.mktemp("demo") / "work"
    t0 = time.perf_counter()
    data = run_demo(workdir, SMALLEST, quiet=True)
    return {"workdir": workdir, "data": data, "seconds": time.perf_counter() - t0}


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
    # every score is computed on fold 0's validation patients only
    assert [r["patient_id"] for r in data["segmentation"]["per_patient"]] == held_out
    assert data["rfs"]["n_patients"] <= len(held_out) and data["hpv"]["n_patients"] <= len(held_out)
    assert data["conversion"]["n_converted"] == SMALLEST.cases + SMALLEST.unlabelled
    assert data["conversion"]["splits"] == {"mode": "centre-stratified", "n_folds": SMALLEST.folds, "seed": 0}
    assert {o["patient_id"] for o in data["overlays"]} <= set(held_out)
    assert {"rfs", "hpv"} <= set(data["prognosis"])
    # the prognosis models never saw a held-out patient
    train = [line.split(",")[0] for line in p.train_clinical.read_text().splitlines()[1:]]
    assert not set(train) & set(held_out)
    # every step ran a real command, recorded with its duration
    steps = [c["step"] for c in data["commands"]]
    for name in STEP_NAMES[:-1]:
        assert name in steps, name
    commands = "\n".join(c["command"] for c in data["commands"])
    for tool in ("hecktor-synth", "hecktor-convert", "nnUNetv2_plan_and_preprocess", "nnUNetv2_train",
                 "hecktor-predict", "hecktor-evaluate seg", "hecktor-radiomics", "hecktor-prognosis --quiet cv rfs",
                 "hecktor-prognosis --quiet train hpv", "hecktor-prognosis --quiet predict --model",
                 "hecktor-evaluate rfs", "hecktor-evaluate hpv", "nnUNet_extTrainer="):
        assert tool in commands, tool
    assert f"-tr {SMALLEST.trainer}" in commands
    assert "NOT a real model" in data["notes"][0]


@pytest.mark.slow
def test_demo_rerun_skips_finished_steps(demo, capsys):
    p = DemoPaths(demo["workdir"])
    before = {n: (p.markers / f"{n}.json").stat().st_mtime for n in STEP_NAMES}
    t0 = time.perf_counter()
    assert demo_main(["--workdir", str(p.root), "--smallest"]) == 0
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert out.count("skipped") == len(STEP_NAMES)
    assert seconds < 15 and seconds < demo["seconds"] / 5
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
    assert demo_main(["--workdir", str(tmp_path), "--cases", "17", "--unlabelled", "8", "--folds", "2"]) == 1


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
