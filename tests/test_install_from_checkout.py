"""A plain (non-editable) ``pip install .``, then Python started in the repository root.

There ``./hecktor_nnunet`` shadows the installed package, and the sub-packages kept beside it
(``dataset_conversion/``, ``trainers/``, ``prognosis/``) must still import. The checkout's
tracked files are copied (what a fresh clone holds) and installed into a new venv whose
dependencies are this environment's, linked in (not reinstalled).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory) -> tuple[Path, Path]:
    """(clone, venv python): the project installed from the clone with a plain ``pip install .``."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    base = tmp_path_factory.mktemp("plain_install")
    clone = base / "clone"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.split(b"\0")):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            dst = clone / os.fsdecode(name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    venv.create(base / "venv", with_pip=False)
    python = base / "venv" / "bin" / "python"
    # this environment's packages, hecktor-nnunet itself (and its editable hook) left out
    deps = base / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("hecktor_nnunet", "__editable__")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base).stdout.strip()
    (Path(site) / "test_deps.pth").write_text(f"{deps}\n")
    r = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "."], clone)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (Path(site) / "hecktor_nnunet" / "trainers").is_dir()
    # package data: the radiomics params files and the report's template
    assert (Path(site) / "hecktor_nnunet" / "prognosis" / "params" / "pet.yaml").is_file()
    assert (Path(site) / "hecktor_nnunet" / "reporting" / "templates" / "report.html.j2").is_file()
    assert not list(Path(site).glob("__editable__*"))
    return clone, python


def test_subpackages_import_from_the_repository_root(plain_install):
    clone, python = plain_install
    r = _run([str(python), "-c", "import hecktor_nnunet, hecktor_nnunet.dataset_conversion.splits as s, "
              "hecktor_nnunet.prognosis, hecktor_nnunet.trainers; print(hecktor_nnunet.__file__); print(s.__file__)"],
             clone)
    assert r.returncode == 0, r.stderr
    package, splits = r.stdout.split()
    # the checkout's own folders are used, consistently
    assert Path(package) == clone / "hecktor_nnunet" / "__init__.py"
    assert Path(splits) == clone / "dataset_conversion" / "splits.py"


def test_trainer_lookup_from_the_repository_root(plain_install):
    clone, python = plain_install
    env = dict(os.environ)
    r = _run([str(python.parent / "hecktor-nnunet"), "env"], clone, env)
    assert r.returncode == 0, r.stderr
    name, value = shlex.split(r.stdout.splitlines()[0].removeprefix("export "))[0].split("=", 1)
    env[name] = value
    r = _run([str(python), "-c", "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name; "
              "print(recursive_find_trainer_class_by_name('nnUNetTrainerHecktorFocal').__name__)"], clone, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "nnUNetTrainerHecktorFocal"


def test_pytest_from_the_repository_root(plain_install):
    clone, python = plain_install
    r = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/conversion/test_splits.py"], clone)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout
