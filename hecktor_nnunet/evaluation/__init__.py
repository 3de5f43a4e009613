"""Scoring the three tasks against the truth: ``hecktor-evaluate seg|rfs|hpv``.

``segmentation`` (Task 1), ``outcomes`` (Tasks 2 and 3), ``tasks`` (each task's headline metric and
figure), ``plots`` (the figures); the metric definitions are in :mod:`hecktor_nnunet.metrics`.
"""
