"""Every advertised HECKTOR trainer, read from the trainer classes themselves, and the trainers' roles.

The advertised trainers are the classes of :mod:`hecktor_nnunet.training.variants`, each saying in its
own body on which ``axis`` it varies nnU-Net, ``what`` it changes and ``why``
(:class:`~hecktor_nnunet.training.base_trainer.HecktorTrainer`); ``what`` is filled in with the class's
settings, so the table shows the numbers the trainer runs with. ``hecktor-nnunet trainers``, the trainer
table in ``docs/`` (``python benchmarks/tables.py``), the ``trainers/`` folder nnU-Net searches and the
tests use this list. The roles (:data:`RECOMMENDED`, :data:`DEMO_TRAINER`, :data:`TINY_TRAINER`) are
named here only; everything else imports them. Importing this module is cheap: the trainers (and with
them nnU-Net and torch) are imported when the list is first asked for.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: the folder for ``nnUNet_extTrainer``: the installed ``hecktor_nnunet.trainers`` package (the
#: repository's ``trainers/`` in an editable install)
TRAINERS_DIR = Path(importlib.util.find_spec("hecktor_nnunet.trainers").origin).resolve().parent
RECOMMENDED = "nnUNetTrainerHecktorFocalPETAug"
TINY_TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"
DEMO_TRAINER = "nnUNetTrainerHecktorDemoCPU"


@dataclass(frozen=True)
class TrainerInfo:
    """One trainer: its ``-tr`` name, axis, and what it changes and why (for which weakness)."""

    name: str
    axis: str
    what: str
    why: str


def trainer_classes() -> list[type]:
    """The advertised trainer classes: those defined in :mod:`hecktor_nnunet.training.variants`, in source order."""
    from hecktor_nnunet.training import variants
    from hecktor_nnunet.training.base_trainer import HecktorTrainer

    return [c for c in vars(variants).values()
            if isinstance(c, type) and issubclass(c, HecktorTrainer) and c.__module__ == variants.__name__]


def describe(cls: type) -> TrainerInfo:
    """A trainer class's row of the table, from the ``axis``, ``what`` and ``why`` of its own body.

    Raises
    ------
    ValueError
        When the class's own body lacks one of them (an inherited description would describe its parent).
    """
    missing = [k for k in ("axis", "what", "why") if not cls.__dict__.get(k)]
    if missing:
        raise ValueError(f"trainer {cls.__name__} ({cls.__module__}) does not say its {', '.join(missing)}: "
                         "set them in the class body")
    return TrainerInfo(cls.__name__, cls.axis, cls.describe_what(), cls.why)


@lru_cache(maxsize=1)
def trainers() -> tuple[TrainerInfo, ...]:
    """Every advertised trainer, in table order."""
    return tuple(describe(c) for c in trainer_classes())


def trainer_names() -> list[str]:
    """The ``-tr`` names of all advertised trainers, in table order."""
    return [t.name for t in trainers()]


def format_table(markdown: bool = False) -> str:
    """The trainer list as plain text (one line each) or as a markdown table."""
    rows = trainers()
    if markdown:
        lines = ["| Trainer (`-tr`) | Axis | What it changes | Why |", "|---|---|---|---|"]
        lines += [f"| `{t.name}`{' (proposed)' if t.name == RECOMMENDED else ''} | {t.axis} | {t.what} | {t.why} |"
                  for t in rows]
        return "\n".join(lines)
    width = max(len(t.name) for t in rows)
    return "\n".join(f"{t.name:<{width}}  [{t.axis}] {t.what}; why: {t.why}" for t in rows)

