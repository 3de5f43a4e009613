"""The run report: collect what the tools wrote, draw the PET/CT figures, render one self-contained HTML page.

- :mod:`.inputs`: :class:`ReportInputs` (where a run's outputs are) and :class:`ReportError`;
- :mod:`.collect`: each tool's output read into plain, JSON-ready data (``report.json``);
- :mod:`.figures`: PET/CT overlays and the learning curve, as PNG bytes;
- :mod:`.render`: the data through ``templates/report.html.j2`` (Jinja2) into ``report.html``;
- :mod:`.demo_folder`: the inputs of a ``hecktor-demo`` folder (``hecktor-report --workdir``), with
  the pass marks of :mod:`hecktor_nnunet.demo.marks`.
"""
