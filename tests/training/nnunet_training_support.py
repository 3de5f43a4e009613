"""Helpers of the training tests: the tiny dataset's folders and the nnU-Net commands.

The dataset: 8 synthetic patients (tiny preset), converted with ``hecktor-convert``'s
``convert_release`` at 8 mm isotropic spacing (images ~35 x 25 x 25 voxels, so CPU training is
seconds), planned and preprocessed by the real ``nnUNetv2_plan_and_preprocess``; fold 0 is 7
training / 1 validation case. Trainers run through the real ``nnUNetv2_train ... -device cpu``
console script, two at a time (2-core CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hecktor_nnunet.training.base_trainer import DEBUG_ENV
from hecktor_nnunet.training.registry import TRAINERS_DIR

DATASET_ID = 577
DATASET_NAME = f"Dataset{DATASET_ID}_TinyTrain"
BIN = Path(sys.executable).parent


@dataclass
class NNUNetFolders:
    release: Path
    raw: Path
    preprocessed: Path
    results: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for nnU-Net subprocesses: these folders, the trainers folder, 1 thread, no DA workers."""
        env = dict(os.environ)
        env.update(nnUNet_raw=str(self.raw), nnUNet_preprocessed=str(self.preprocessed),
                   nnUNet_results=str(self.results), nnUNet_extTrainer=str(TRAINERS_DIR),
                   nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", nnUNet_compile="false",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop(DEBUG_ENV, None)
        env.update(extra)
        return env

    def model_dir(self, trainer: str, plans: str = "nnUNetPlans") -> Path:
        return self.results / DATASET_NAME / f"{trainer}__{plans}__3d_fullres"


def run(cmd: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def train(folders: NNUNetFolders, trainer: str, plans: str = "nnUNetPlans", debug: bool = True
          ) -> subprocess.CompletedProcess:
    """``nnUNetv2_train DATASET 3d_fullres 0 -tr TRAINER -p PLANS -device cpu`` (tiny mode via the env var)."""
    env = folders.env(**({DEBUG_ENV: "1"} if debug else {}))
    return run([str(BIN / "nnUNetv2_train"), str(DATASET_ID), "3d_fullres", "0", "-tr", trainer, "-p", plans,
                "-device", "cpu"], env)


