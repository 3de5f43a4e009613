"""Session fixtures: one tiny planned + preprocessed HECKTOR dataset, every trainer trained on it once.

See ``nnunet_training_support.py`` for how the dataset is built and trainers are run.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from hecktor_nnunet.training.registry import TINY_TRAINER, trainer_names

from nnunet_training_support import BIN, DATASET_ID, DATASET_NAME, NNUNetFolders, run, train


@pytest.fixture(scope="session")
def nnunet_dataset(tmp_path_factory) -> NNUNetFolders:
    """The planned and preprocessed tiny dataset."""
    from hecktor_nnunet.dataset_conversion.convert import convert_release
    from hecktor_nnunet.dataset_conversion.settings import ConversionSettings
    from hecktor_nnunet.demo.synth import generate_release

    base = tmp_path_factory.mktemp("nnunet_training")
    f = NNUNetFolders(base / "release", base / "raw", base / "preprocessed", base / "results")
    generate_release(f.release, 8, size="tiny", seed=3)
    convert_release(f.release, DATASET_ID, name="TinyTrain", raw_dir=f.raw,
                    settings=ConversionSettings(spacing=(8.0, 8.0, 8.0)), quiet=True)
    # nnU-Net's planner sets torch threads from nnUNet_n_proc_DA, which must be >= 1 there
    p = run([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1"],
            f.env(nnUNet_n_proc_DA="1"))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    ids = sorted(json.loads((f.raw / DATASET_NAME / "conversion_manifest.json").read_text())["cases"])
    (f.preprocessed / DATASET_NAME / "splits_final.json").write_text(
        json.dumps([{"train": ids[1:], "val": ids[:1]}]))
    return f


@pytest.fixture(scope="session")
def trained(nnunet_dataset) -> dict[str, subprocess.CompletedProcess]:
    """Every advertised trainer trained once (tiny mode), two processes at a time."""
    def one(name: str) -> subprocess.CompletedProcess:
        return train(nnunet_dataset, name, debug=name != TINY_TRAINER)

    names = trainer_names()
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(names, pool.map(one, names)))
