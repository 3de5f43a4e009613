"""``hecktor-predict`` reports each restored mask's connected components per label (tiny model, real nnU-Net)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hecktor_nnunet.cli import predict as predict_cli
from hecktor_nnunet.inference.components import SUMMARY_FILE
from hecktor_nnunet.io.label_maps import find_label_maps
from hecktor_nnunet.prognosis.radiomics_settings import MIN_VOLUME_ML
from hecktor_nnunet.training.registry import TINY_TRAINER

from nnunet_training_support import DATASET_ID

pytestmark = pytest.mark.slow


def test_predict_summary_counts_components_of_each_restored_mask(nnunet_dataset, trained, monkeypatch, tmp_path,
                                                                  capsys):
    assert trained[TINY_TRAINER].returncode == 0, trained[TINY_TRAINER].stderr[-3000:]
    for k, v in nnunet_dataset.env().items():
        if k.startswith("nnUNet_"):
            monkeypatch.setenv(k, v)
    ids = sorted(p.name for p in (nnunet_dataset.release / "Task 1").iterdir())[:2]
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for pid in ids:
        for key in ("CT", "PT"):
            shutil.copy(nnunet_dataset.release / "Task 1" / pid / f"{pid}__{key}.nii.gz", inputs)
    rc = predict_cli.main(["-i", str(inputs), "-o", str(out), "-d", str(DATASET_ID), "-tr", TINY_TRAINER, "-f", "0",
                           "-device", "cpu", "--no-postprocessing", "--disable_tta"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["min_volume_ml"], summary["connectivity"], summary["postprocessing"]) == (MIN_VOLUME_ML, 26, None)
    assert sorted(find_label_maps(out)) == ids  # the summary leaves the folder a masks folder for hecktor-radiomics

    # the counts, recomputed independently on each written mask (26-connectivity, volumes on the CT grid)
    small = {"GTVp": [0, 0], "GTVn": [0, 0]}
    total = 0
    for pid in ids:
        mask = sitk.ReadImage(str(out / f"{pid}.nii.gz"))
        arr, voxel_ml = sitk.GetArrayFromImage(mask), float(np.prod(mask.GetSpacing())) / 1000
        assert summary["patients"][pid]["file"] == f"{pid}.nii.gz"
        for name, value in (("GTVp", 1), ("GTVn", 2)):
            lab, n = ndimage.label(arr == value, structure=np.ones((3, 3, 3)))
            volumes = np.sort(np.bincount(lab.ravel(), minlength=n + 1)[1:] * voxel_ml)[::-1]
            record = summary["patients"][pid][name]
            below = int(np.sum(volumes < MIN_VOLUME_ML))
            assert (record["components"], record["below_min_volume"]) == (n, below), (pid, name)
            assert record["volumes_ml"] == pytest.approx(volumes, abs=1e-4)
            small[name][0] += below > 0
            small[name][1] += below
            total += n
    assert total > 0  # the tiny model's noisy masks have components to count
    for name, (patients, n) in small.items():
        line = f"{patients} patient(s) have {name} components below {MIN_VOLUME_ML:g} mL ({n} component(s))"
        assert (line in printed.out) == (n > 0)
