"""What built the run and the report: this project's version and commit, library versions, relative paths.

- :func:`package_source`: the version of ``hecktor_nnunet`` and, when it runs from a git checkout,
  the commit (``git rev-parse HEAD``) and whether files tracked there differ from it;
- :func:`environment_versions`, :func:`recorded_versions`: versions installed now / recorded by each tool;
- :func:`relative_paths`: every path under the run's work folder written relative to it, in every
  string of the report's data (paths, commands, messages), so that no temporary folder is shown.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import hecktor_nnunet
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS

PACKAGES = ("hecktor-nnunet", "nnunetv2", "torch", "SimpleITK", "pyradiomics-bhklab", "xgboost",
            "scikit-survival", "scikit-learn", "numpy", "pandas", "matplotlib")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def package_source() -> dict[str, Any]:
    """This project's version, and its git commit when it runs from a checkout.

    Returns
    -------
    dict
        ``version``; ``source`` ("git checkout" or "installed package"); ``commit`` (full hash, None
        for an installed package or when git cannot tell) and ``uncommitted_changes`` (tracked files
        differ from the commit; None when unknown).
    """
    root = Path(hecktor_nnunet.__file__).resolve().parent.parent
    out: dict[str, Any] = {"version": hecktor_nnunet.__version__, "source": "installed package", "commit": None,
                           "uncommitted_changes": None}
    if not (root / ".git").exists() or not (root / "pyproject.toml").is_file():
        return out
    try:
        out["commit"] = _git(root, "rev-parse", "HEAD")
        out["source"] = "git checkout"
        out["uncommitted_changes"] = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        out["source"] = "git checkout (git could not read the commit)"
    return out


def environment_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages the pipeline uses (installed now)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def recorded_versions(data: dict) -> dict[str, dict]:
    """The library versions each tool recorded with its output (conversion, radiomics, prognosis models)."""
    recorded: dict[str, dict] = {}
    if data.get("conversion"):
        recorded["conversion"] = data["conversion"]["versions"]
    if data.get("radiomics"):
        recorded["radiomics"] = data["radiomics"]["versions"]
    prog = data.get("prognosis")
    for task in OUTCOME_TASKS:
        if prog and "model" in prog.get(task, {}):
            recorded[f"prognosis_{task}"] = prog[task]["model"]["versions"]
    return recorded


def relative_paths(obj: Any, base: Path) -> Any:
    """A copy of ``obj`` (JSON-like) with ``base`` written away in every string.

    ``<base>/release/x.nii.gz`` becomes ``release/x.nii.gz`` and ``<base>`` alone ``.``, wherever it
    appears (a path field, a command, a message); ``base`` is matched as given and resolved, and
    only as a whole folder name (``<base>2/x`` is left alone). Paths outside ``base`` stay as they are.
    """
    forms = sorted({os.path.normpath(str(base)), os.path.realpath(base)}, key=len, reverse=True)
    forms = [f for f in forms if f not in ("/", ".")]
    if not forms:
        return obj
    pattern = re.compile("(?:" + "|".join(map(re.escape, forms)) + r")(/|(?![\w.-]))")

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(lambda m: "" if m.group(1) else ".", v)
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(obj)
