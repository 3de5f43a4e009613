"""The GPU check (``benchmarks/gpu/``): its CPU dry run end to end (real nnU-Net training, step timing, prediction),
a part run alone, and its block in docs/benchmarks.md."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu():
    """The ``benchmarks.gpu`` package, imported from the checkout (as ``python -m benchmarks.gpu`` does)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        yield importlib.import_module("benchmarks.gpu")


def _check(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """``python -m benchmarks.gpu...`` from the repository root, as ``make gpu-check`` runs it."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("gpu_check")
    out = work / "gpu_check.json"
    p = _check("benchmarks.gpu", "--device", "cpu", "--tiny", "--work", str(work / "w"), "--out", str(out))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return {"result": json.loads(out.read_text()), "stdout": p.stdout, "work": work / "w", "out": out}


@pytest.mark.slow
def test_dry_run_learns_times_and_predicts_with_the_real_tools(dry_run, gpu):
    from benchmarks.gpu import learning
    from hecktor_nnunet.training.registry import RECOMMENDED, trainers

    r = dry_run["result"]
    assert r["device"] == "cpu" and r["tiny"] is True
    compared = ["nnUNetTrainer"] + [t.name for t in trainers() if t.axis == "combined"]
    assert learning.compared_trainers() == compared and RECOMMENDED in compared
    part = r["learning"]
    assert list(part["trainers"]) == compared
    for m in part["trainers"].values():  # scored by hecktor-evaluate on the held-out patients
        assert 0.0 <= m["gtvp_dice_mean"] <= 1.0 and 0.0 <= m["gtvn_dsc_agg"] <= 1.0
    assert part["iterations"] == 4 and part["patients"] == 12 and len(part["held_out_patients"]) == 3
    assert set(part["pass"]) == {"gtvp_dice_ge_0.70", "gtvp_dice_ge_stock_minus_0.02"}
    # every compared trainer really trained, for the check's length: nnU-Net's final checkpoint and validation
    for trainer in compared:
        model = next((dry_run["work"] / "results").glob(f"Dataset520_*/{trainer}_GpuCheck__nnUNetPlans__3d_fullres"))
        assert (model / "fold_0" / "checkpoint_final.pth").is_file()
        assert len(list((model / "fold_0" / "validation").glob("*.nii.gz"))) == 3
        log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
        assert "Epoch 1" in log and "Epoch 2" not in log
    rows = r["step_time"]["results"]
    assert [x["trainer"] for x in rows] == ["nnUNetTrainer", RECOMMENDED]
    assert all(x["s_per_iter"] > 0 and x["compile"] is False for x in rows)
    assert rows[0]["ratio_to_stock"] == 1.0
    inference = r["inference"]["results"]
    assert [(x["folds"], x["tta"]) for x in inference] == [(1, False), (5, True)]
    assert all(x["seconds"] > 0 and x["nnunet_seconds"] > 0 for x in inference)
    assert set(r["seconds"]) >= {"learning_dataset", "learning", "timing_dataset_wait", "inference", "step_time"}
    assert r["seconds"]["total"] == pytest.approx(sum(v for k, v in r["seconds"].items() if k != "total"), abs=0.2)
    assert "| trainer | GTVp Dice |" in dry_run["stdout"] and "Dry run" in dry_run["stdout"]


@pytest.mark.slow
def test_a_part_runs_alone_and_keeps_the_other_parts(dry_run, tmp_path):
    out = tmp_path / "gpu_check.json"
    out.write_text(dry_run["out"].read_text())
    before = json.loads(out.read_text())
    p = _check("benchmarks.gpu.inference", "--device", "cpu", "--tiny", "--work", str(dry_run["work"]),
               "--out", str(out))   # reuses the dry run's dataset and checkpoint
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    after = json.loads(out.read_text())
    assert after["learning"] == before["learning"] and after["step_time"] == before["step_time"]
    assert [(x["folds"], x["tta"]) for x in after["inference"]["results"]] == [(1, False), (5, True)]
    assert after["inference"]["results"] != before["inference"]["results"]   # measured again
    assert "timing_dataset" not in after["seconds"]   # the dataset was reused, not built


_RESULT = {"benchmark": "gpu_check", "gpu": "NVIDIA X", "date": "2026-01-01", "python": "3.12.3", "torch": "2.11",
           "cpus": 16, "device": "cuda", "tiny": False, "seconds": {"total": 420.0},
           "learning": {"patients": 48, "iterations": 1000, "length": "10x100x5", "held_out_patients": ["A-001"] * 12,
                        "trainers": {"nnUNetTrainer": {"gtvp_dice_mean": 0.75, "gtvn_dsc_agg": 0.1,
                                                       "gtvn_f1_agg": 0.2}},
                        "pass": {"gtvp_dice_ge_0.70": True}}}


def test_the_docs_block_is_made_from_the_results_file(gpu):
    from benchmarks.gpu.report import markdown

    text = markdown(_RESULT)
    assert "**NVIDIA X** (2026-01-01" in text and "420 s in all" in text
    assert "48-patient tiny synthetic release" in text and "| `nnUNetTrainer` | 0.750 | 0.100 | 0.200 |" in text
    assert "Step time" not in text and "Inference" not in text and "Dry run" not in text   # parts not run


@pytest.mark.parametrize("part", ["benchmarks.gpu", "benchmarks.gpu.learning", "benchmarks.gpu.inference",
                                  "benchmarks.gpu.step_time"])
def test_without_a_gpu_each_part_says_how_to_dry_run(part, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    p = _check(part, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o.json"), timeout=300)
    assert p.returncode == 1 and "--device cpu --tiny" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "w").exists()


def test_step_time_past_its_budget_times_nothing_and_says_so(gpu, tmp_path):
    from benchmarks.gpu.common import Check
    from benchmarks.gpu.report import markdown
    from benchmarks.gpu.step_time import STOCK, step_time
    from hecktor_nnunet.training.registry import RECOMMENDED

    check = Check(tmp_path, "cpu", True, tmp_path / "gpu_check.json")
    part = step_time(check, 2, 2, 1, deadline=0.0)  # already past: no process starts, nothing is written
    assert part["results"] == [] and not check.out.exists()
    assert [x["trainer"] for x in part["skipped"]] == [STOCK, RECOMMENDED]
    text = markdown({**_RESULT, "step_time": part})
    assert "Not timed (the run's `--budget-s` was spent): `nnUNetTrainer`, `nnUNetTrainerHecktorFocalPETAug`." in text


def test_the_results_file_keeps_parts_of_the_same_machine_only(gpu, tmp_path):
    from benchmarks.gpu.common import Check, record

    check = Check(tmp_path, "cpu", True, tmp_path / "gpu_check.json")
    record(check, {"learning": 10.0}, learning={"a": 1})
    r = record(check, {"inference": 5.0}, inference={"b": 2})
    assert (r["learning"], r["inference"], r["seconds"]) == ({"a": 1}, {"b": 2},
                                                             {"learning": 10.0, "inference": 5.0, "total": 15.0})
    other = record(Check(tmp_path, "cpu", False, check.out), {"step_time": 1.0}, step_time={"c": 3})
    assert "learning" not in other and other["seconds"] == {"step_time": 1.0, "total": 1.0}   # another mode


def test_the_check_trainers_are_the_compared_ones_for_the_given_length(gpu, monkeypatch):
    from benchmarks.gpu.trainers import hecktor_gpu_check_trainers as t

    names = [c.__name__ + t.SUFFIX for c in t.COMPARED]
    assert all(isinstance(getattr(t, n), type) and issubclass(getattr(t, n), c) for n, c in zip(names, t.COMPARED))
    monkeypatch.setenv(t.LENGTH_ENV, "3x7x2")
    assert t.length_from_env() == (3, 7, 2)
    for bad in ("3x7", "3x0x2", "ax7x2"):
        monkeypatch.setenv(t.LENGTH_ENV, bad)
        with pytest.raises(ValueError, match="EPOCHSxITERATIONSxVALIDATION_ITERATIONS"):
            t.length_from_env()
