"""The GPU check: does a HECKTOR trainer learn, what does a training step cost, how long does inference take.

Three parts, each runnable alone, and all of them in one command (``python -m benchmarks.gpu``, which
``make gpu-check`` runs):

1. :mod:`.learning`: stock ``nnUNetTrainer`` and every combined HECKTOR trainer trained for the same
   iterations on the demo's synthetic data, scored by ``hecktor-evaluate seg`` on held-out patients;
2. :mod:`.inference`: ``hecktor-predict``'s work on one realistic case, 1 and 5 folds, test-time
   mirroring on and off, seconds (nnU-Net's part and the rest) and peak GPU memory;
3. :mod:`.step_time`: nnU-Net's ``train_step`` of every HECKTOR trainer against stock, each in its own
   process.

Each part writes its figures into one results file (``benchmarks/results/gpu_check.json``) as soon as
it has them; :mod:`.report` turns that file into the block of ``docs/benchmarks.md`` (written by
``python benchmarks/tables.py``). ``--device cpu --tiny`` is the CPU dry run the test suite executes.

Run from the repository root (Python then imports ``hecktor_nnunet`` from the checkout, whose finder
maps ``trainers/`` and ``dataset_conversion/``). On the lent GPU machines (``../shared/gpu/README.md``:
nnU-Net and the other dependencies come as a packed site):
``source .gpu/setup.sh; python3 -m benchmarks.gpu --out $OUT/gpu_check.json``.
"""
