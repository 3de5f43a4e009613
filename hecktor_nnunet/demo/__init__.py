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
