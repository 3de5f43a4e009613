"""Convert a tiny release, run the real nnUNetv2_plan_and_preprocess --verify_dataset_integrity, restore."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hecktor_nnunet.cli.convert import main as convert_main
from hecktor_nnunet.cli.restore import main as restore_main
from hecktor_nnunet.io.release import read_release


@pytest.mark.slow
@pytest.mark.parametrize("extra,dataset_id", [([], 520), (["--region-based", "--spacing", "3", "3", "3",
                                                             "--crop", "headneck"], 521)])
def test_convert_plan_preprocess_restore(tiny_release, tmp_path, extra, dataset_id):
    env = dict(os.environ, nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"))
    args = [str(tiny_release), "-d", str(dataset_id), "-o", env["nnUNet_raw"], "--splits", "centre-stratified",
            "--n-folds", "2", "-np", "2", "--quiet"] + extra
    assert convert_main(args) == 0
    exe = Path(os.sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    proc = subprocess.run([str(exe), "-d", str(dataset_id), "--verify_dataset_integrity", "-c", "3d_fullres",
                           "-np", "1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pre = next((tmp_path / "pre").glob(f"Dataset{dataset_id}_*"))
    assert (pre / "nnUNetPlans.json").is_file()
    # nnU-Net's planner copied our centre-stratified splits next to the preprocessed data
    splits = json.loads((pre / "splits_final.json").read_text())
    assert len(splits) == 2
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    norm = plans["configurations"]["3d_fullres"]["normalization_schemes"]
    assert norm == ["CTNormalization", "ZScoreNormalization"]
    raw = next((tmp_path / "raw").glob(f"Dataset{dataset_id}_*"))
    assert restore_main([str(raw / "labelsTr"), "--manifest", str(raw / "conversion_manifest.json"),
                         "-o", str(tmp_path / "restored"), "--format", "mha", "--quiet"]) == 0
    for case in read_release(tiny_release).cases:
        if case.labelled:
            restored = sitk.ReadImage(str(tmp_path / "restored" / f"{case.patient_id}.mha"))
            assert restored.GetSize() == sitk.ReadImage(str(case.label)).GetSize()
