"""The report's HTML: the data of :func:`~hecktor_nnunet.reporting.collect.collect_report` through a Jinja2 template.

The page is ``templates/report.html.j2`` (shipped as package data); this module only gives the
template its formatting filters (numbers, intervals, JSON, the command list) and writes the files.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS
from hecktor_nnunet.io.atomic_io import write_json, write_text
from hecktor_nnunet.reporting.collect import PER_PATIENT_COLUMNS, collect_report
from hecktor_nnunet.reporting.inputs import ReportInputs

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
#: How the comparison table names each source of the prognosis features.
SOURCE_TITLES = {"predicted": "predicted masks (this network)", "true": "true masks",
                 "clinical": "clinical variables only", "oracle": "oracle (the planted risk / HPV probability)"}


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: ``–`` for missing or non-finite, ``yes``/``no``, ``digits`` decimals, ``[lo, hi]`` intervals."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) or x is None for x in v):
        return f"[{fmt(v[0], digits)}, {fmt(v[1], digits)}]"
    return str(v)


def command_lines(commands: list[dict]) -> str:
    """``# step (seconds)`` then the command, for each recorded command."""
    return "\n".join(f"# {c.get('step', '')}" + (f" ({c['seconds']:.1f} s)" if c.get("seconds") is not None else "")
                     + f"\n{c['command']}" for c in commands)


@lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment of the report template (autoescaping on, undefined names are errors)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("hecktor_nnunet.reporting", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update({
        "fmt": fmt,
        "b64": lambda png: base64.b64encode(png).decode("ascii"),
        "tojson_indent": lambda v: json.dumps(v, indent=1),
        "tojson_plain": json.dumps,
        "command_lines": command_lines,
        "per_centre_rows": lambda per_centre: [{"centre": c, **v} for c, v in sorted(per_centre.items())],
        "centre_row": lambda item: {"centre": item[0], "cases": item[1]},
    })
    env.tests["in_any"] = lambda column, rows: any(column in r for r in rows)
    return env


def render_html(data: dict, figures: dict[str, bytes]) -> str:
    """The self-contained HTML page of a report (figures inlined as base64 PNG data URIs)."""
    page = environment().get_template(TEMPLATE).render(
        data=data, figures=figures, seg_metrics=list(SEG_METRICS), per_patient_columns=list(PER_PATIENT_COLUMNS),
        source_titles=SOURCE_TITLES, outcome_tasks=OUTCOME_TASKS)
    return page + "\n"


def build_report(inputs: ReportInputs, out_html: str | Path, out_json: str | Path | None = None) -> dict:
    """Build ``report.html`` and ``report.json`` (default: beside the HTML, same stem).

    Returns
    -------
    dict
        The report data (as written to the JSON).
    """
    out_html = Path(out_html)
    out_json = Path(out_json) if out_json else out_html.with_suffix(".json")
    data, figures = collect_report(inputs)
    write_text(render_html(data, figures), out_html)
    write_json(data, out_json)
    log.info("report written to %s (%d figure(s)) and %s", out_html, len(figures), out_json)
    return data
