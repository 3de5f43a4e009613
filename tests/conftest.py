"""Shared fixtures: small synthetic releases generated once per session, nnU-Net folders in tmp."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# nnU-Net reads its folders from the environment when first imported: point them at a throwaway
# folder before any test imports nnunetv2, and keep its workers and threads low for 2-core CI.
_NNUNET_TMP = Path(tempfile.mkdtemp(prefix="hecktor_nnunet_tests_"))
for _var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ.setdefault(_var, str(_NNUNET_TMP / _var))
os.environ.setdefault("nnUNet_n_proc_DA", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    """A tiny 2025-layout release: 8 labelled patients over 7 centres plus 1 unlabelled."""
    from hecktor_nnunet.demo.synth import generate_release

    root = tmp_path_factory.mktemp("synth") / "hecktor2025_training"
    generate_release(root, 8, size="tiny", seed=1, n_unlabelled=1)
    return root


@pytest.fixture(scope="session")
def bad_release(tmp_path_factory) -> Path:
    """A tiny release in which every kind of broken case appears once."""
    from hecktor_nnunet.demo.synth import BAD_KINDS, generate_release

    root = tmp_path_factory.mktemp("synth_bad") / "release"
    generate_release(root, len(BAD_KINDS) + 2, size="tiny", seed=2, bad={k: 1 for k in BAD_KINDS})
    return root
