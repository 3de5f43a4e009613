"""The whole pipeline on a synthetic release, step by step, resumable, ending in a report.

Modules: :mod:`.settings` (what is generated, where everything lies), :mod:`.steps` (what each step
runs), :mod:`.runner` (running and resuming them), :mod:`.marks` (pass marks), :mod:`.synth` (the
synthetic release) and :mod:`.simulate` (tables of planted outcomes for the prognosis tests).

Every step runs the real console scripts as subprocesses, exactly as a user would type them
(``hecktor-synth``, ``hecktor-convert``, ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``,
``hecktor-predict``, ``hecktor-evaluate``, ``hecktor-radiomics``, ``hecktor-prognosis``,
``hecktor-report``); the commands, their durations and the environment they ran with are recorded
in ``<workdir>/.demo/<step>.json`` (the done-marker that makes a re-run skip the step) and listed
in the report.

Honesty of the estimates: the conversion writes centre-stratified folds; the segmentation network
(:data:`DEMO_TRAINER`, a real nnU-Net training sized for 2 CPU cores) is trained on fold 0's
training patients only, and fold 0's validation patients are held out from everything that learns.
The prognosis models are trained on the other labelled patients and most image-only patients (all
segmented by the network); the held-out set of the prognosis adds a centre-stratified share of the
image-only patients to the segmentation's held-out patients. RFS and HPV are scored there from the
predicted masks, from the true masks (written outside the release by ``hecktor-synth
--oracle-labels``), from clinical variables alone, and by the oracle (the planted risk), side by side.
"""

from __future__ import annotations

from hecktor_nnunet._lazy import lazy_exports

# Each name is imported from its module on first use, so that reading a demo folder (hecktor-report
# --workdir: settings, marks, step order) never loads the step runner.
_HOMES = {
    "hecktor_nnunet.demo.settings": ("DEMO_TRAINER", "TINY_TRAINER", "DATASET_ID", "DATASET_NAME", "CONFIGURATION",
                                     "FOLD", "MARKERS", "MASK_SOURCES", "DemoSettings", "SMALLEST", "DemoPaths"),
    "hecktor_nnunet.demo.marks": ("PASS_MARKS", "NOT_A_MODEL", "pass_marks"),
    "hecktor_nnunet.demo.steps": ("Step", "STEPS", "STEP_NAMES", "heldout_split", "prognosis_split",
                                  "write_demo_params", "prognosis_comparison"),
    "hecktor_nnunet.demo.runner": ("console_script", "DemoRun", "run_demo", "summary_text"),
    "hecktor_nnunet.reporting.demo_folder": ("recorded_commands", "demo_report_inputs"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
