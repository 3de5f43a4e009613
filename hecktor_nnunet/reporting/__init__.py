"""The run report: collect what the tools wrote, draw the PET/CT figures, render one self-contained HTML page.

- :mod:`.inputs`: :class:`ReportInputs` (where a run's outputs are) and :class:`ReportError`;
- :mod:`.collect`: each tool's output read into plain, JSON-ready data (``report.json``);
- :mod:`.figures`: PET/CT overlays and the learning curve, as PNG bytes;
- :mod:`.render`: the data through ``templates/report.html.j2`` (Jinja2) into ``report.html``;
- :mod:`.marks`: the pass marks a run is judged by and the "not a real model" banner;
- :mod:`.demo_folder`: the inputs of a ``hecktor-demo`` folder (``hecktor-report --workdir``).
"""

from hecktor_nnunet.reporting.collect import collect_report, environment_versions
from hecktor_nnunet.reporting.figures import overlay_png
from hecktor_nnunet.reporting.inputs import ReportError, ReportInputs
from hecktor_nnunet.reporting.render import build_report, render_html

__all__ = ["ReportError", "ReportInputs", "build_report", "collect_report", "environment_versions", "overlay_png",
           "render_html"]
