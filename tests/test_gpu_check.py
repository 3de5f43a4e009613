"""``benchmarks/gpu_check.py``: its CPU dry run end to end (real nnU-Net training, step timing, prediction) and its block in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("gpu_check")
    out = work / "gpu_check.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--work", str(work / "w"),
                        "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return {"result": json.loads(out.read_text()), "stdout": p.stdout, "work": work / "w"}


@pytest.mark.slow
def test_dry_run_learns_times_and_predicts_with_the_real_tools(dry_run):
    r = dry_run["result"]
    assert r["device"] == "cpu" and r["tiny"] is True
    learning = r["learning"]
    gpu_check = _module()
    assert set(learning["trainers"]) == set(gpu_check.LEARNERS)
    for m in learning["trainers"].values():  # scored by hecktor-evaluate on the held-out patients
        assert 0.0 <= m["gtvp_dice_mean"] <= 1.0 and 0.0 <= m["gtvn_dsc_agg"] <= 1.0
    assert learning["iterations"] == 4 and len(learning["held_out_patients"]) == 3
    assert set(learning["pass"]) == {"gtvp_dice_ge_0.70", "gtvp_dice_ge_stock_minus_0.02"}
    # every learner really trained: nnU-Net wrote its final checkpoint and validation predictions
    for trainer in gpu_check.LEARNERS:
        model = next((dry_run["work"] / "results").glob(f"Dataset520_*/{trainer}_GpuCheck__nnUNetPlans__3d_fullres"))
        assert (model / "fold_0" / "checkpoint_final.pth").is_file()
        assert len(list((model / "fold_0" / "validation").glob("*.nii.gz"))) == 3
    rows = r["step_time"]["results"]
    assert [x["trainer"] for x in rows] == ["nnUNetTrainer", gpu_check.RECOMMENDED]
    assert all(x["s_per_iter"] > 0 and x["compile"] is False for x in rows)
    assert rows[0]["ratio_to_stock"] == 1.0
    inference = r["inference"]["results"]
    assert [(x["folds"], x["tta"]) for x in inference] == [(1, False), (5, True)]
    assert all(0 < x["nnunet_seconds"] <= x["seconds"] for x in inference)
    assert "| trainer | GTVp Dice |" in dry_run["stdout"] and "Dry run" in dry_run["stdout"]


_RESULT = {"gpu": "NVIDIA X", "date": "2026-01-01", "python": "3.12.3", "torch": "2.11", "cpus": 16,
           "tiny": False, "seconds": {"total": 420.0},
           "learning": {"iterations": 1000, "length": "10x100x5", "held_out_patients": ["A-001"] * 12,
                        "trainers": {"nnUNetTrainer": {"gtvp_dice_mean": 0.75, "gtvn_dsc_agg": 0.1,
                                                       "gtvn_f1_agg": 0.2}},
                        "pass": {"gtvp_dice_ge_0.70": True}},
           "step_time": None, "inference": None}


def test_docs_block_is_rewritten_from_the_json(tmp_path):
    gpu_check = _module()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# t\nbefore\n{gpu_check.BLOCK_BEGIN}\nold table\n{gpu_check.BLOCK_END}\nafter\n")
    gpu_check.update_docs(_RESULT, doc)
    text = doc.read_text()
    assert "old table" not in text and text.startswith("# t\nbefore\n") and text.endswith("after\n")
    assert "**NVIDIA X** (2026-01-01" in text and "| `nnUNetTrainer` | 0.750 | 0.100 | 0.200 |" in text
    doc.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- table:gpu_check:begin -->"):
        gpu_check.update_docs(_RESULT, doc)


def test_the_shipped_docs_hold_the_block():
    gpu_check = _module()
    text = gpu_check.DOCS_BENCHMARKS.read_text()
    assert gpu_check.BLOCK_BEGIN in text and gpu_check.BLOCK_END in text


@pytest.mark.parametrize("option", ["--docs", "--readme"])
def test_docs_option_and_its_deprecated_readme_alias(tmp_path, monkeypatch, capsys, option):
    gpu_check = _module()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"{gpu_check.BLOCK_BEGIN}\nold\n{gpu_check.BLOCK_END}\n")
    result = tmp_path / "gpu_check.json"
    result.write_text(json.dumps(_RESULT))
    monkeypatch.setattr(gpu_check, "DOCS_BENCHMARKS", doc)
    assert gpu_check.main([option, "--out", str(result)]) == 0
    assert "**NVIDIA X**" in doc.read_text()
    assert ("deprecated" in capsys.readouterr().err) == (option == "--readme")


def test_without_a_gpu_the_real_check_says_how_to_dry_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    p = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "--device cpu --tiny" in p.stderr
    assert not (tmp_path / "o.json").exists()


def test_step_time_past_its_budget_times_nothing_and_says_so(tmp_path):
    gpu_check = _module()
    a = gpu_check.parse(["--device", "cpu", "--tiny"])
    saved = []
    part = gpu_check.step_time(tmp_path, a, save=saved.append, deadline=0.0)  # already past: no worker starts
    assert part["results"] == [] and saved == []
    assert [x["trainer"] for x in part["skipped"]] == ["nnUNetTrainer", gpu_check.RECOMMENDED]
    text = gpu_check.markdown({**_RESULT, "step_time": part})
    assert "Not timed (the run's `--budget-s` was spent): `nnUNetTrainer`, `nnUNetTrainerHecktorFocalPETAug`." in text
