"""The run report: collect what the tools wrote, draw the PET/CT figures, render one self-contained HTML page.

- :mod:`.inputs`: :class:`ReportInputs` (where a run's outputs are) and :class:`ReportError`;
- :mod:`.collect`: each tool's output read into plain, JSON-ready data (``report.json``);
- :mod:`.cohort`: the cohort table from the clinical table (all patients and groups);
- :mod:`.rfs`: what the report adds to an RFS evaluation (intervals of Uno's C and AUC(t), the
  Kaplan-Meier figure with the numbers at risk);
- :mod:`.provenance`: this project's version and commit, library versions, paths made relative;
- :mod:`.figures`: PET/CT overlays and the learning curve, as PNG bytes;
- :mod:`.tables`: the report's tables (readable headers, shown rounded, written as CSV);
- :mod:`.render`: the data through ``templates/report.html.j2`` (Jinja2) into ``report.html``,
  ``report.json`` and ``report_tables/``;
- :mod:`.demo_folder`: the inputs of a ``hecktor-demo`` folder (``hecktor-report --workdir``), with
  the pass marks of :mod:`hecktor_nnunet.demo.marks`.
"""
