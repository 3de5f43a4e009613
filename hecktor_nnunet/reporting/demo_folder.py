"""The report inputs of a ``hecktor-demo`` working folder (what ``hecktor-report --workdir`` reads).

Reads the folder only: the demo's layout (:class:`~hecktor_nnunet.demo.settings.DemoPaths`), its
pass marks and step order, never its runner.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from hecktor_nnunet.demo.marks import NOT_A_MODEL, PASS_MARKS, pass_marks
from hecktor_nnunet.demo.settings import MARKERS, DemoPaths, DemoSettings
from hecktor_nnunet.demo.steps import STEP_NAMES
from hecktor_nnunet.reporting.inputs import ReportInputs


def recorded_commands(workdir: str | Path) -> list[dict]:
    """The commands of every finished step, in order (``step``, ``command``, ``seconds``)."""
    paths = DemoPaths(Path(workdir))
    out = []
    env_file = paths.markers / "environment.json"
    if env_file.is_file():
        env = json.loads(env_file.read_text())
        out.append({"step": "environment", "command": "\n".join(f"export {k}={shlex.quote(v)}"
                                                                 for k, v in env.items()), "seconds": None})
    for name in STEP_NAMES:
        marker = paths.markers / f"{name}.json"
        if marker.is_file():
            for rec in json.loads(marker.read_text())["commands"]:
                out.append({"step": name, "command": rec["command"], "seconds": rec["seconds"]})
    return out


#: The cohort table's groups of a demo: ``heldout/patients.json`` key -> column title.
COHORT_GROUPS = {"prognosis_train": "prognosis training", "prognosis_heldout": "held out"}


def cohort_groups(workdir: str | Path) -> dict[str, list[str]] | None:
    """The prognosis training and held-out patients of a demo folder (None before the hold-out step)."""
    path = DemoPaths(Path(workdir)).heldout / "patients.json"
    if not path.is_file():
        return None
    patients = json.loads(path.read_text())
    return {title: patients[key] for key, title in COHORT_GROUPS.items() if key in patients}


def demo_report_inputs(workdir: str | Path) -> ReportInputs:
    """:class:`~hecktor_nnunet.reporting.inputs.ReportInputs` of a demo folder (what ``hecktor-report --workdir`` reads).

    Paths are shown relative to the folder; the cohort table has a column of the prognosis training
    and one of the held-out patients; the report's intervals use the demo's bootstrap resamples.
    """
    p = DemoPaths(Path(workdir).resolve())
    if not (p.markers / "settings.json").is_file():
        raise FileNotFoundError(f"{p.root} is not a hecktor-demo folder (no {MARKERS}/settings.json); "
                                "give the folders explicitly (hecktor-report --help)")
    settings = DemoSettings(**json.loads((p.markers / "settings.json").read_text()))

    def present(path: Path) -> Path | None:
        return path if path.exists() else None

    seg_summary = (json.loads((p.eval("seg") / "summary.json").read_text())
                   if (p.eval("seg") / "summary.json").is_file() else None)
    comparison = json.loads(p.comparison.read_text()) if p.comparison.is_file() else None
    marks = pass_marks(seg_summary, comparison)
    gtvp = seg_summary.get("gtvp_dice_mean") if seg_summary else None
    notes = [] if gtvp is not None and gtvp >= PASS_MARKS["gtvp_dice_mean"] else [
        NOT_A_MODEL.format(mark=PASS_MARKS["gtvp_dice_mean"])]
    return ReportInputs(
        dataset=present(p.dataset), seg_eval=present(p.eval("seg")), rfs_eval=present(p.eval("rfs")),
        hpv_eval=present(p.eval("hpv")), prognosis_dir=present(p.prognosis), features=present(p.features),
        release=present(p.release), pred=present(p.heldout / "predictions"),
        training_progress=present(p.progress(settings.trainer)), prognosis_comparison=comparison,
        pass_marks=marks, commands=recorded_commands(p.root), notes=notes,
        title="HECKTOR pipeline demo (synthetic data)", workdir=p.root, cohort_groups=cohort_groups(p.root),
        n_boot=settings.n_boot, seed=settings.seed)
