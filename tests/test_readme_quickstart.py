"""The README's quickstart, run line by line on a tiny synthetic release so that the front door stays true.

The block between ``<!-- quickstart:begin -->`` and ``<!-- quickstart:end -->`` is read from
README.md and changed only where a 2-core CPU test must differ from a GPU run on the real release
(``SUBSTITUTIONS``): the release becomes a ``hecktor-synth`` release (48 labelled + 4 unlabelled
patients, tiny), the nnU-Net folders and the split temporary ones, the trainer
``nnUNetTrainerHecktorTinyCPUDebug`` (2 epochs x 2 iterations, NOT a real model), 2 folds instead of
5, the CPU, two processes, and the demo's radiomics params (first-order features: on the untrained
network's fragmented masks PyRadiomics' shape features take minutes a patient). Every line runs for real, as one bash script, in order: hecktor-split,
convert, plan and preprocess, train, post-processing selection, predict, evaluate seg, cv-masks,
radiomics, prognosis compare / train / predict, evaluate rfs and hpv, and the report.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
#: (README text, test text), applied in this order; {release}, {nnunet}, {split} and {params} are filled in
SUBSTITUTIONS = [
    ("/data/nnUNet_", "{nnunet}/nnUNet_"),
    ("/data/hecktor2025_training", "{release}"),
    ("/data/split", "{split}"),
    ("nnUNetTrainerHecktorFocalPETAug", "nnUNetTrainerHecktorTinyCPUDebug"),
    ("--splits centre-stratified -np", "--splits centre-stratified --n-folds 2 -np"),
    ("for f in 0 1 2 3 4;", "for f in 0 1;"),
    ("-f 0 1 2 3 4", "-f 0 1"),
    ("-np 16", "-np 2"),
    ("--npz;", "--npz -device cpu;"),
    ("hecktor-predict -i", "hecktor-predict -device cpu -i"),
    # the untrained network's masks are fragmented, and PyRadiomics' shape diameters cost O(vertices^2) on
    # them (minutes a patient): the demo's params (first-order features at 4 mm), as make demo does
    ("hecktor-radiomics ", "hecktor-radiomics --params-pet {params}/demo_pet.yaml --params-ct {params}/demo_ct.yaml "),
]
STAGES = ["hecktor-nnunet env", "hecktor-split", "hecktor-convert", "nnUNetv2_plan_and_preprocess", "nnUNetv2_train",
          "hecktor-nnunet postprocess-select", "hecktor-predict", "hecktor-evaluate seg", "hecktor-nnunet cv-masks",
          "hecktor-radiomics", "hecktor-prognosis compare", "hecktor-prognosis train", "hecktor-prognosis predict", "hecktor-evaluate rfs",
          "hecktor-evaluate hpv", "hecktor-report"]


def quickstart_lines() -> list[str]:
    """The quickstart block's command lines (continuations joined, comments and blank lines left out)."""
    text = (ROOT / "README.md").read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    body = block.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = body.replace("\\\n", " ").split("\n")
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def substitute(line: str, release: Path, nnunet: Path, split: Path, params: Path) -> str:
    for old, new in SUBSTITUTIONS:
        line = line.replace(old, new.format(release=release, nnunet=nnunet, split=split, params=params))
    return line


def nnunet_bin() -> Path:
    """The folder of nnU-Net's console scripts: beside this Python, or wherever nnunetv2 was installed."""
    if shutil.which("nnUNetv2_train", path=str(BIN)):
        return BIN
    for f in importlib.metadata.distribution("nnunetv2").files or []:
        if f.name == "nnUNetv2_train" and f.parent.name == "bin":
            return Path(f.locate()).resolve().parent
    pytest.fail("nnUNetv2_train not found")


def test_the_quickstart_names_every_stage():
    text = "\n".join(quickstart_lines())
    assert [s for s in STAGES if s not in text] == []


@pytest.mark.slow
def test_readme_quickstart_runs_on_a_synthetic_release(tmp_path):
    release, nnunet, work, split = (tmp_path / "hecktor2025_training", tmp_path / "nnunet", tmp_path / "work",
                                    tmp_path / "split")
    work.mkdir()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (nnunet / name).mkdir(parents=True)
    subprocess.run([BIN / "hecktor-synth", release, "-n", "48", "--size", "tiny", "--seed", "3", "--unlabelled", "4",
                    "--quiet"], check=True, timeout=300)

    from hecktor_nnunet.demo.steps import write_demo_params

    params = tmp_path / "params"
    params.mkdir()
    write_demo_params(params)
    lines = [substitute(line, release, nnunet, split, params) for line in quickstart_lines()]
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), str(nnunet_bin()), os.environ["PATH"]]),
           "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "2", "OMP_NUM_THREADS": "1", "nnUNet_compile": "false"}
    env.pop("nnUNet_extTrainer", None)
    # each line's seconds, printed with the test's output (pytest -rP) to see where the time goes
    timed = [f"{line}\necho QUICKSTART_SECONDS {i} $((SECONDS - t)); t=$SECONDS" for i, line in enumerate(lines)]
    script = "set -euo pipefail\nt=0\n" + "\n".join(timed) + "\necho QUICKSTART_ENV_RAW=$nnUNet_raw\n"
    p = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, f"{script}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}"
    for i, seconds in (t.split()[1:] for t in p.stdout.splitlines() if t.startswith("QUICKSTART_SECONDS")):
        print(f"{seconds:>5} s  {lines[int(i)][:100]}")
    assert f"QUICKSTART_ENV_RAW={nnunet}/nnUNet_raw" in p.stdout

    held_out = json.loads((split / "split.json").read_text())["test"]
    model = next((nnunet / "nnUNet_results" / "Dataset500_HECKTOR2025").glob(
        "nnUNetTrainerHecktorTinyCPUDebug__nnUNetResEncUNetMPlans__3d_fullres"))
    assert (model / "fold_1" / "checkpoint_final.pth").is_file() and (model / "hecktor_postprocessing.json").is_file()
    assert sorted(p.name[:-7] for p in (work / "preds").glob("*.nii.gz")) == held_out
    labelled_train = [p.name[:-7] for p in (split / "train").glob("*/*.nii.gz") if "__" not in p.name]
    assert sorted(p.name[:-7] for p in (work / "masks").glob("*.nii.gz")) == sorted(labelled_train)
    for task in ("rfs", "hpv"):
        scored = pd.read_csv(work / f"{task}.csv")
        assert sorted(scored["PatientID"]) == held_out
        assert json.loads((work / "eval" / task / "summary.json").read_text())["n_patients"] >= 0.7 * len(held_out)
    rows = json.loads((work / "models" / "rfs" / "compare" / "comparison.json").read_text())["rows"]
    assert rows[0]["model"] == "auto" and "CLIN_HPV" not in json.loads(
        (work / "models" / "rfs" / "model" / "prognosis.json").read_text())["feature_names_in"]
    assert (work / "report.html").is_file() and json.loads((work / "report.json").read_text())["missing"] == []
