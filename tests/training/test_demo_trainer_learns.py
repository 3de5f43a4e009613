"""The CPU demo trainer's design learns: a third of its schedule already segments GTVp on held-out patients.

Real ``hecktor-synth`` -> ``hecktor-convert`` -> ``nnUNetv2_plan_and_preprocess`` ->
``nnUNetv2_train ... -device cpu`` with ``nnUNetTrainerHecktorDemoCPU`` shortened to 8 x 25
iterations (everything else as in ``make demo``), scored by nnU-Net's own validation of fold 0.
A few minutes on 2 cores; the full demo (600 iterations, GTVn too) is ``make demo``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hecktor_nnunet.training.registry import DEMO_TRAINER, TRAINERS_DIR

from nnunet_training_support import BIN, run

DATASET_ID = 578
SHORT = f"{DEMO_TRAINER}_200its"
SHORT_DIR = Path(__file__).resolve().parent / "short_trainers"


@pytest.mark.slow
def test_demo_trainer_segments_gtvp_on_held_out_patients_after_200_iterations(tmp_path):
    from hecktor_nnunet.dataset_conversion.convert import convert_release
    from hecktor_nnunet.demo.synth import generate_release

    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre),
           "nnUNet_results": str(res), "nnUNet_extTrainer": os.pathsep.join([str(TRAINERS_DIR), str(SHORT_DIR)]),
           "nnUNet_n_proc_DA": "2", "nnUNet_def_n_proc": "2", "nnUNet_compile": "false"}
    env.pop("HECKTOR_NNUNET_DEBUG", None)
    env.pop("OMP_NUM_THREADS", None)  # the demo trains with every core
    generate_release(tmp_path / "release", 24, size="tiny", seed=0)
    convert_release(tmp_path / "release", DATASET_ID, name="DemoLearns", raw_dir=raw, splits="centre-stratified",
                    n_folds=4, quiet=True)
    p = run([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "2"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    p = run([str(BIN / "nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "0", "-tr", SHORT, "-device", "cpu"], env,
            timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    fold = res / f"Dataset{DATASET_ID}_DemoLearns" / f"{SHORT}__nnUNetPlans__3d_fullres" / "fold_0"
    plans = json.loads((fold.parent / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert plans["patch_size"] == [32, 32, 32]  # the demo design is what was trained
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    n_val = len(json.loads((raw / f"Dataset{DATASET_ID}_DemoLearns" / "splits_final.json").read_text())[0]["val"])
    assert len(summary["metric_per_case"]) == n_val == 6
    gtvp = summary["mean"]["1"]["Dice"]
    assert gtvp >= 0.5, f"GTVp Dice {gtvp:.3f} on {n_val} held-out patients after 200 iterations"
