"""The report's files: ``report.html`` (the data through a Jinja2 template), ``report.json``, the CSV tables.

The page is ``templates/report.html.j2`` (shipped as package data); the tables it shows are built
once by :func:`~hecktor_nnunet.reporting.tables.report_tables` and written beside the page as CSV
(``<report>_tables/<name>.csv``); this module gives the template its filters and writes the files.
"""

from __future__ import annotations

import base64
import logging
from functools import lru_cache
from pathlib import Path

from hecktor_nnunet.evaluation.labels import format_number, label
from hecktor_nnunet.evaluation.plots import FEW_PATIENTS
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS
from hecktor_nnunet.io.atomic_io import write_json, write_text
from hecktor_nnunet.reporting.collect import collect_report
from hecktor_nnunet.reporting.inputs import ReportInputs
from hecktor_nnunet.reporting.tables import Table, report_tables, write_tables

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
#: Section titles, in page order (``missing`` names them too).
SECTION_TITLES = {"pass_marks": "Pass marks (held-out patients)", "cohort": "Cohort", "conversion": "Conversion",
                  "training": "Training (nnU-Net learning curve)", "segmentation": "Segmentation (Task 1)",
                  "overlays": "PET/CT overlays", "radiomics": "Radiomics",
                  **{task: spec.title for task, spec in OUTCOME_TASKS.items()},
                  "prognosis_comparison": "Prognosis from predicted vs true masks",
                  "prognosis": "Prognosis models"}


def tables_folder(out_html: str | Path) -> Path:
    """Where the CSV tables of a report go: ``<stem>_tables/`` beside the HTML (``report_tables/``)."""
    out_html = Path(out_html)
    return out_html.with_name(f"{out_html.stem}_tables")


def command_lines(commands: list[dict]) -> str:
    """``# step (seconds)`` then the command, for each recorded command."""
    return "\n".join(f"# {c.get('step', '')}" + (f" ({c['seconds']:.1f} s)" if c.get("seconds") is not None else "")
                     + f"\n{c['command']}" for c in commands)


def source_line(source: dict) -> str:
    """``hecktor-nnunet 0.1.0, git checkout at commit abc123 (...)`` or ``hecktor-nnunet 0.1.0, installed package``."""
    text = f"hecktor-nnunet {source.get('version')}, {source.get('source')}"
    if source.get("commit"):
        text += f" at commit {source['commit']}"
        if source.get("uncommitted_changes"):
            text += " (with uncommitted changes to tracked files)"
    return text


@lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment of the report template (autoescaping on, undefined names are errors)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("hecktor_nnunet.reporting", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update({
        "num": format_number,
        "label": label,
        "b64": lambda png: base64.b64encode(png).decode("ascii"),
        "command_lines": command_lines,
        "source_line": source_line,
        "section_title": lambda key: SECTION_TITLES.get(key, key.replace("_", " ")),
    })
    return env


def render_html(data: dict, figures: dict[str, bytes], tables: dict[str, Table] | None = None,
                csv_folder: str = "report_tables") -> str:
    """The self-contained HTML page of a report (figures inlined as base64 PNG data URIs).

    Parameters
    ----------
    data, figures : dict
        From :func:`~hecktor_nnunet.reporting.collect.collect_report`.
    tables : dict, optional
        The tables shown (default: :func:`~hecktor_nnunet.reporting.tables.report_tables` of ``data``).
    csv_folder : str
        The folder of the CSV tables, as the page names it (relative to the page).
    """
    tables = report_tables(data) if tables is None else tables
    page = environment().get_template(TEMPLATE).render(
        data=data, figures=figures, tables=tables, csv_folder=csv_folder, section_titles=SECTION_TITLES,
        outcome_tasks=OUTCOME_TASKS, few_patients=FEW_PATIENTS)
    return page + "\n"


def build_report(inputs: ReportInputs, out_html: str | Path, out_json: str | Path | None = None) -> dict:
    """Build ``report.html``, ``report.json`` (default: beside the HTML, same stem) and the CSV tables.

    Paths are shown relative to ``inputs.workdir``, or else to the folder of ``out_html``. The tables
    go to :func:`tables_folder` (replaced whole).

    Returns
    -------
    dict
        The report data (as written to the JSON).
    """
    out_html = Path(out_html)
    out_json = Path(out_json) if out_json else out_html.with_suffix(".json")
    data, figures = collect_report(inputs, base=out_html.parent)
    tables = report_tables(data)
    folder = tables_folder(out_html)
    data["tables"] = {"folder": folder.name, "files": write_tables(tables, folder)}
    write_text(render_html(data, figures, tables, folder.name), out_html)
    write_json(data, out_json)
    log.info("report written to %s (%d figure(s), %d table(s) in %s) and %s", out_html, len(figures), len(tables),
             folder, out_json)
    return data
