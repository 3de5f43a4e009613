"""Fixtures of the prognosis tests: hand-made phantoms with known values, a tiny synthetic release,
and a 500-patient synthetic feature table with planted outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prognosis_phantoms import write_phantom


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Path:
    """Flat-layout release with CHUM-001 (sphere + one-voxel node) and CHUP-001 (empty mask)."""
    root = tmp_path_factory.mktemp("phantom")
    write_phantom(root, "CHUM-001", "sphere")
    write_phantom(root, "CHUP-001", "empty")
    return root


@pytest.fixture(scope="session")
def synth_masks(tmp_path_factory) -> tuple[Path, Path, "object"]:
    """A tiny synthetic release (5 patients, one without nodes), its label maps as masks, and the oracle."""
    import shutil

    from hecktor_nnunet.io.release import read_release
    from hecktor_nnunet.demo.synth import generate_release

    base = tmp_path_factory.mktemp("prog_synth")
    root = base / "release"
    oracle = generate_release(root, 5, size="tiny", seed=11, bad={"empty_gtvn": 1})
    masks = base / "masks"
    masks.mkdir()
    for case in read_release(root).cases:
        shutil.copy(case.label, masks / case.label.name)
    return root, masks, oracle


@pytest.fixture(scope="session")
def sim_cohort():
    """500 simulated patients: features table, clinical table (2025 schema) and oracle."""
    from hecktor_nnunet.demo.simulate import simulate_tables

    return simulate_tables(500, seed=3)
