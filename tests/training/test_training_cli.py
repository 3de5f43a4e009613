"""hecktor-nnunet env / trainers."""

from __future__ import annotations

import os
import subprocess

from hecktor_nnunet.cli import nnunet as nnunet_cli
from hecktor_nnunet.training.registry import TRAINERS_DIR, trainer_names


def test_env_prints_export_and_warns_about_missing_paths(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "missing"))
    assert nnunet_cli.main(["env"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"export nnUNet_extTrainer={TRAINERS_DIR}"
    assert "nnUNet_raw is not set" in err and "not an existing folder" in err
    assert "nnUNet_preprocessed" not in err
    # eval-able, and keeps folders already listed
    monkeypatch.setenv("nnUNet_extTrainer", "/opt/other")
    nnunet_cli.main(["env"])
    line = capsys.readouterr().out.strip()
    value = subprocess.run(["bash", "-c", f"{line}; echo $nnUNet_extTrainer"], capture_output=True, text=True).stdout
    assert value.strip().split(os.pathsep) == ["/opt/other", str(TRAINERS_DIR)]


def test_trainers_lists_names_and_table(capsys):
    assert nnunet_cli.main(["trainers", "--names"]) == 0
    assert capsys.readouterr().out.split() == trainer_names()
    nnunet_cli.main(["trainers"])
    out = capsys.readouterr().out
    assert all(n in out for n in trainer_names()) and "why:" in out
