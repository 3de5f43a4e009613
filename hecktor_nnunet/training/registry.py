"""Every advertised HECKTOR trainer, read from the trainer classes themselves.

A class in ``trainers/`` is advertised when its own body says on which ``axis`` it varies nnU-Net,
``what`` it changes and ``why`` (:class:`~hecktor_nnunet.training.base_trainer.HecktorTrainer`);
``what`` is filled in with the class's settings, so the table shows the numbers the trainer runs
with. ``hecktor-nnunet trainers``, the trainer table in ``docs/`` (``python benchmarks/tables.py``)
and the training tests use this list. Importing this module is cheap: the trainers (and with them
nnU-Net and torch) are imported when the list is first asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# the installed ``hecktor_nnunet.trainers`` package (the repository's ``trainers/`` in an editable install)
TRAINERS_DIR = Path(importlib.util.find_spec("hecktor_nnunet.trainers").origin).resolve().parent
RECOMMENDED = "nnUNetTrainerHecktorFocalPETAug"
TINY_TRAINER = "nnUNetTrainerHecktorTinyCPUDebug"
DEMO_TRAINER = "nnUNetTrainerHecktorDemoCPU"
#: the trainer modules in table order (one axis each; combinations after their parts)
MODULES = ("hecktor_trainers_loss", "hecktor_trainers_augmentation", "hecktor_trainers_sampling",
           "hecktor_trainers_combined", "hecktor_trainers_length", "hecktor_trainers_architecture")


@dataclass(frozen=True)
class TrainerInfo:
    """One trainer: its ``-tr`` name, axis, and what it changes and why (for which weakness)."""

    name: str
    axis: str
    what: str
    why: str


def trainer_classes() -> list[type]:
    """The HECKTOR trainer classes defined in ``trainers/``, module by module (:data:`MODULES`), in source order.

    Raises
    ------
    ValueError
        A module of the folder missing from :data:`MODULES`, or one of :data:`MODULES` missing from the folder.
    """
    from hecktor_nnunet.training.base_trainer import HecktorTrainer

    found = {m.name for m in pkgutil.iter_modules([str(TRAINERS_DIR)])}
    if found != set(MODULES):
        raise ValueError(f"trainer modules in {TRAINERS_DIR} ({sorted(found)}) differ from the registry's "
                         f"MODULES ({sorted(MODULES)})")
    classes = []
    for name in MODULES:
        module = importlib.import_module(f"hecktor_nnunet.trainers.{name}")
        classes += [c for c in vars(module).values()
                    if isinstance(c, type) and c.__module__ == module.__name__ and issubclass(c, HecktorTrainer)]
    return classes


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
        lines += [f"| `{t.name}`{' (default)' if t.name == RECOMMENDED else ''} | {t.axis} | {t.what} | {t.why} |"
                  for t in rows]
        return "\n".join(lines)
    width = max(len(t.name) for t in rows)
    return "\n".join(f"{t.name:<{width}}  [{t.axis}] {t.what}; why: {t.why}" for t in rows)

