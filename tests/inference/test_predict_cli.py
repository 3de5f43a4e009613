"""hecktor-predict's options: ensemble members, nnU-Net's spellings, the retired ones, the post-processing file.

Only parsing here; the ensemble's prediction is tested on trained models in
``tests/training/test_training_predict_ensemble.py``.
"""

from __future__ import annotations

import json

import pytest

from hecktor_nnunet.cli.predict import build_parser, parse_args
from hecktor_nnunet.inference.ensemble import ModelSpec, parse_model_spec, read_postprocessing_file
from hecktor_nnunet.inference.postprocessing import Postprocessing
from hecktor_nnunet.training.registry import RECOMMENDED

BASE = ["-i", "in", "-o", "out", "-d", "500"]


def test_member_spec_fields_and_their_defaults():
    defaults = dict(plans="P0", configuration="C0", folds=["1", "2"])
    assert parse_model_spec("A:P:C:0,1,2", **defaults) == ModelSpec("A", "P", "C", ("0", "1", "2"))
    assert parse_model_spec("A", **defaults) == ModelSpec("A", "P0", "C0", ("1", "2"))
    assert parse_model_spec("A::3d_lowres", **defaults) == ModelSpec("A", "P0", "3d_lowres", ("1", "2"))
    assert parse_model_spec(" A : P ::all", **defaults) == ModelSpec("A", "P", "C0", ("all",))
    spec = parse_model_spec("A:P:C:0, 4")
    assert (spec.name, str(spec)) == ("A__P__C", "A:P:C:0,4")


@pytest.mark.parametrize("text,message", [
    ("", "model '': expected TRAINER"), (":P:C:0", "model ':P:C:0': expected TRAINER"),
    ("A:P:C:0:extra", "model 'A:P:C:0:extra': expected TRAINER"),
    ("A:P:C:0,x", r"model A__P__C: folds must be .*\['0', 'x'\]"), ("A:P:C:0,,1", r"model A__P__C: folds must be"),
    ("A:P:C:-1", "model A__P__C: folds must be")])
def test_member_spec_errors_name_the_spec(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_spec(text)


def test_one_model_or_members():
    a = parse_args(BASE)
    assert (a.trainer, a.models, a.folds, a.device, a.step_size, a.disable_tta) == (
        RECOMMENDED, None, ["0", "1", "2", "3", "4"], "auto", 0.5, False)
    a = parse_args(BASE + ["-tr", "T", "-p", "P", "-c", "C", "-f", "0", "1", "-device", "cpu", "-step_size", "0.25",
                           "--disable_tta", "-np", "3"])
    assert (a.trainer, a.plans, a.configuration, a.folds, a.device, a.step_size, a.disable_tta, a.workers) == (
        "T", "P", "C", ["0", "1"], "cpu", 0.25, True, 3)
    a = parse_args(BASE + ["-m", "A", "-m", "B:nnUNetResEncUNetMPlans:3d_fullres:all", "-f", "0"])
    assert a.trainer is None
    assert a.models == [ModelSpec("A", "nnUNetPlans", "3d_fullres", ("0",)),
                        ModelSpec("B", "nnUNetResEncUNetMPlans", "3d_fullres", ("all",))]


@pytest.mark.parametrize("argv,message", [
    (BASE + ["-tr", "A", "-m", "B"], "with -m, give every member's trainer"),
    (BASE + ["-m", "A:P:C:x"], "folds must be"),
    (["-i", "in", "-d", "500"], "required: -o/--out"),
    (["-i", "in", "-o", "out"], "required: -d/--dataset-id"),
    (BASE + ["--no-postprocessing", "--postprocessing", "f.json"], "not allowed with argument"),
    (BASE + ["--ensemble-chunk", "0"], "at least 1"),
])
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_retired_spellings_still_work_and_warn(capsys):
    a = parse_args(["-i", "in", "--output", "out", "--dataset", "500", "--device", "cpu", "--step-size", "0.25",
                    "--disable-tta"])
    assert (a.out, a.dataset_id, a.device, a.step_size, a.disable_tta) == ("out", "500", "cpu", 0.25, True)
    err = capsys.readouterr().err
    for old, new in (("--output", "-o/--out"), ("--dataset", "-d/--dataset-id"), ("--device", "-device"),
                     ("--step-size", "-step_size"), ("--disable-tta", "--disable_tta")):
        assert f"{old} is now {new}" in err
    assert parse_args(BASE + ["-device", "cpu"]) and capsys.readouterr().err == ""  # the new ones do not warn


def test_help_shows_nnunet_spellings_and_defaults_not_retired_ones():
    text = " ".join(build_parser().format_help().split())
    for shown in ("-device", "-step_size", "--disable_tta", "-np", "-tr", "-m", "(default: auto)",
                  "(default: 0.5)", "(default: 8)", "(default: checkpoint_final.pth)", f"(default: {RECOMMENDED})"):
        assert shown in text, shown
    for hidden in ("--device", "--step-size", "--disable-tta", "--output", "--dataset "):
        assert hidden not in text, hidden


def test_postprocessing_file_as_saved_or_bare(tmp_path):
    saved, bare = tmp_path / "saved.json", tmp_path / "bare.json"
    saved.write_text(json.dumps({"setting": {"keep_largest_gtvp": True, "min_gtvn_ml": 0.5}, "candidates": []}))
    bare.write_text(json.dumps({"keep_largest_gtvp": False, "min_gtvn_ml": 1}))
    assert read_postprocessing_file(saved) == Postprocessing(True, 0.5)
    assert read_postprocessing_file(bare) == Postprocessing(False, 1.0)
    for name, text in (("notjson.json", "{"), ("nokeys.json", '{"setting": {"min_gtvn_ml": 1}}'),
                       ("list.json", "[1]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name} holds no setting"):
            read_postprocessing_file(tmp_path / name)
    with pytest.raises(ValueError, match="absent.json not found"):
        read_postprocessing_file(tmp_path / "absent.json")
