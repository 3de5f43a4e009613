"""The README's quickstart, run on a tiny synthetic release so that the front door stays true.

The block between ``<!-- quickstart:begin -->`` and ``<!-- quickstart:end -->`` is read from
README.md and changed only where a 2-core CPU test must differ from a GPU run on the real release
(``SUBSTITUTIONS``): the release paths become a ``hecktor-synth`` release (10 + 1 patients, tiny),
the nnU-Net folders temporary ones, the trainer ``nnUNetTrainerHecktorTinyCPUDebug`` (2 epochs x 2
iterations, NOT a real model), fold 0 only, ``-device cpu``, one process.

What runs for real, as one bash script with the README's own lines: the exports and
``eval "$(hecktor-nnunet env)"``, ``hecktor-convert``, ``nnUNetv2_plan_and_preprocess`` (ResEnc M
planner), ``nnUNetv2_train`` (fold 0), ``hecktor-nnunet postprocess-select`` and
``hecktor-predict`` (every patient onto its CT grid). The later lines (``hecktor-evaluate``,
``hecktor-radiomics``, ``hecktor-prognosis``, ``hecktor-report``) would need a real model's masks
and a cohort large enough to cross-validate, and would take the test past ~3 minutes on 2 cores,
so each is only *parsed*: its arguments go through the command's own argument parser (required
options, choices, types), stopping right after parsing. Their work is tested in tests/evaluation,
tests/prognosis, tests/test_report.py and end to end by the demo test.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
#: the last command run for real; the lines after it are parsed only
LAST_RUN = "hecktor-predict"
#: (README text, test text), applied in this order; {release} and {nnunet} are filled in
SUBSTITUTIONS = [
    ("/data/nnUNet_", "{nnunet}/nnUNet_"),
    ("/data/hecktor2025_test_labels", "{release}"),
    ("/data/hecktor2025_training", "{release}"),
    ("/data/hecktor2025_test", "{release}"),
    ("nnUNetTrainerHecktorFocalPETAug", "nnUNetTrainerHecktorTinyCPUDebug"),
    ("for f in 0 1 2 3 4;", "for f in 0;"),
    ("-f 0 1 2 3 4", "-f 0"),
    ("-np 16", "-np 1"),
    ("--npz;", "--npz -device cpu;"),
    ("hecktor-predict -i", "hecktor-predict --device cpu -i"),
]
STAGES = ["hecktor-nnunet env", "hecktor-convert", "nnUNetv2_plan_and_preprocess", "nnUNetv2_train",
          "hecktor-nnunet postprocess-select", "hecktor-predict", "hecktor-evaluate seg", "hecktor-nnunet cv-masks",
          "hecktor-radiomics", "hecktor-prognosis compare", "hecktor-prognosis cv", "hecktor-prognosis train", "hecktor-prognosis predict", "hecktor-evaluate rfs",
          "hecktor-report"]


def quickstart_lines() -> list[str]:
    """The quickstart block's command lines (continuations joined, comments and blank lines left out)."""
    text = (ROOT / "README.md").read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    body = block.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = body.replace("\\\n", " ").split("\n")
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def substitute(line: str, release: Path, nnunet: Path) -> str:
    for old, new in SUBSTITUTIONS:
        line = line.replace(old, new.format(release=release, nnunet=nnunet))
    return line


def nnunet_bin() -> Path:
    """The folder of nnU-Net's console scripts: beside this Python, or wherever nnunetv2 was installed."""
    if shutil.which("nnUNetv2_train", path=str(BIN)):
        return BIN
    for f in importlib.metadata.distribution("nnunetv2").files or []:
        if f.name == "nnUNetv2_train" and f.parent.name == "bin":
            return Path(f.locate()).resolve().parent
    pytest.fail("nnUNetv2_train not found")


class _Parsed(Exception):
    pass


def parse_only(line: str, env: dict[str, str]) -> None:
    """Run ``line``'s console script in process up to the end of its argument parsing."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    argv = shlex.split(re.sub(r"\$(\w+)", lambda m: env[m[1]], line), comments=True)
    module, _, func = scripts[argv[0]].partition(":")
    main = getattr(importlib.import_module(module), func)
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_and_stop
    try:
        main(argv[1:])
    except _Parsed:
        return
    except SystemExit as e:
        raise AssertionError(f"{argv[0]} rejects the README's arguments (exit {e.code}): {line}") from None
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f"{argv[0]} never parsed its arguments: {line}")


def test_the_quickstart_names_every_stage():
    text = "\n".join(quickstart_lines())
    assert [s for s in STAGES if s not in text] == []
    assert any(line.startswith(LAST_RUN) for line in quickstart_lines())


@pytest.mark.slow
def test_readme_quickstart_runs_on_a_synthetic_release(tmp_path):
    release, nnunet, work = tmp_path / "hecktor2025_training", tmp_path / "nnunet", tmp_path / "work"
    work.mkdir()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (nnunet / name).mkdir(parents=True)
    subprocess.run([BIN / "hecktor-synth", release, "-n", "10", "--size", "tiny", "--seed", "3", "--unlabelled", "1",
                    "--quiet"], check=True, timeout=300)

    lines = [substitute(line, release, nnunet) for line in quickstart_lines()]
    last = max(i for i, line in enumerate(lines) if line.startswith(LAST_RUN))
    run, parsed = lines[:last + 1], lines[last + 1:]
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), str(nnunet_bin()), os.environ["PATH"]]), "nnUNet_n_proc_DA": "1",
           "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "1", "nnUNet_compile": "false"}
    env.pop("nnUNet_extTrainer", None)
    script = "set -euo pipefail\n" + "\n".join(run) + "\necho QUICKSTART_ENV_RAW=$nnUNet_raw\n"
    p = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"{script}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}"
    assert f"QUICKSTART_ENV_RAW={nnunet}/nnUNet_raw" in p.stdout

    dataset = nnunet / "nnUNet_raw" / "Dataset500_HECKTOR2025"
    assert (dataset / "conversion_manifest.json").is_file() and (dataset / "splits_final.json").is_file()
    model = next((nnunet / "nnUNet_results" / "Dataset500_HECKTOR2025").glob(
        "nnUNetTrainerHecktorTinyCPUDebug__nnUNetResEncUNetMPlans__3d_fullres"))
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    assert (model / "hecktor_postprocessing.json").is_file()
    predicted = sorted(p.name for p in (work / "preds").glob("*.nii.gz"))
    assert len(predicted) == 11, predicted

    parse_env = {"nnUNet_raw": str(nnunet / "nnUNet_raw")}
    for line in parsed:
        parse_only(line, parse_env)
