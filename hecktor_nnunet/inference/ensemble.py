"""Ensembles of trained models for ``hecktor-predict``: naming the models, averaging their probabilities.

An ensemble averages the members' softmax probabilities before the argmax, as ``nnUNetv2_ensemble``
does (:func:`nnunetv2.ensembling.ensemble.merge_files`). Each member is one trained model
(trainer, plans, configuration) with its folds; within a member nnU-Net's predictor averages the
folds' logits, as for a single model. The members' probabilities are written by nnU-Net
(``--save_probabilities``: ``<ID>.npz`` + ``<ID>.pkl``, on the converted image's grid, whatever the
member's plans) and averaged one patient at a time, so only a few patients' probabilities are ever
in memory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hecktor_nnunet.inference.postprocessing import Postprocessing
from hecktor_nnunet.parallel import parallel_map

#: ``TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]``, FOLDS comma-separated
SPEC_FORMAT = "TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]"
_FOLD = re.compile(r"\d+|all")


@dataclass(frozen=True)
class ModelSpec:
    """One trained model of ``$nnUNet_results/<dataset>/TRAINER__PLANS__CONFIGURATION`` and its folds."""

    trainer: str
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    folds: tuple[str, ...] = ("0",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folds", tuple(str(f) for f in self.folds))
        bad = [f for f in self.folds if not _FOLD.fullmatch(f)]
        if bad or not self.folds:
            raise ValueError(f"model {self.name}: folds must be non-negative integers or 'all', got "
                             f"{list(self.folds)}")

    @property
    def name(self) -> str:
        """``TRAINER__PLANS__CONFIGURATION``, the model's folder name (nnU-Net's identifier)."""
        return f"{self.trainer}__{self.plans}__{self.configuration}"

    def __str__(self) -> str:
        return f"{self.trainer}:{self.plans}:{self.configuration}:{','.join(self.folds)}"


def parse_model_spec(text: str, *, plans: str = "nnUNetPlans", configuration: str = "3d_fullres",
                     folds: Sequence[int | str] = ("0",)) -> ModelSpec:
    """A :class:`ModelSpec` from ``TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]``.

    Fields left out or empty take ``plans``, ``configuration`` and ``folds``; FOLDS is a
    comma-separated list (``0,1,2,3,4``) or ``all``.

    Raises
    ------
    ValueError
        No trainer, more than four fields, or a fold that is not an integer or ``all``.
    """
    parts = text.split(":")
    if len(parts) > 4 or not parts[0].strip():
        raise ValueError(f"model {text!r}: expected {SPEC_FORMAT}, e.g. "
                         "nnUNetTrainerHecktorFocalPETAug:nnUNetResEncUNetMPlans:3d_fullres:0,1,2,3,4")
    parts = [p.strip() for p in parts] + [""] * (4 - len(parts))
    fold_list = [f.strip() for f in parts[3].split(",")] if parts[3] else [str(f) for f in folds]
    return ModelSpec(parts[0], parts[1] or plans, parts[2] or configuration, tuple(fold_list))


def read_postprocessing_file(path: str | Path) -> Postprocessing:
    """The setting in ``path``: a model's ``hecktor_postprocessing.json`` or a bare setting.

    A bare setting is ``{"keep_largest_gtvp": true, "min_gtvn_ml": 0.5}``.

    Raises
    ------
    ValueError
        The file is missing, not JSON, or holds no setting.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return Postprocessing.from_dict(data.get("setting", data))
    except FileNotFoundError:
        raise ValueError(f"post-processing file {path} not found") from None
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"post-processing file {path} holds no setting {{'keep_largest_gtvp': ..., "
                         f"'min_gtvn_ml': ...}} ({type(e).__name__}: {e})") from None


def average_probabilities(member_dirs: Sequence[Path], patient_ids: Sequence[str], out_dir: Path, *,
                          workers: int = 1, quiet: bool = False) -> None:
    """Average each patient's probabilities over the members, argmax, write ``<out_dir>/<ID>`` + file ending.

    Each member folder holds what nnU-Net's predictor wrote with ``save_probabilities``
    (``<ID>.npz``, ``<ID>.pkl``, its ``plans.json`` and ``dataset.json``); the label handling and
    the image writer come from the first member, as in ``nnUNetv2_ensemble``. A patient's ``.npz``
    and ``.pkl`` files are deleted once averaged. ``workers`` processes each hold two probability
    arrays (classes x voxels float32) at a time.

    Raises
    ------
    FileNotFoundError
        A member folder lacks a patient's probabilities (the message names the member and patient).
    """
    missing = [f"{d / pid}.npz" for pid in patient_ids for d in member_dirs if not (d / f"{pid}.npz").is_file()]
    if missing:
        raise FileNotFoundError(f"nnU-Net wrote no probabilities: {missing}")
    out_dir.mkdir(parents=True, exist_ok=True)
    first = member_dirs[0]
    jobs = [([str(d / f"{pid}.npz") for d in member_dirs], str(out_dir / pid), first) for pid in patient_ids]
    for _ in parallel_map(_merge_one, jobs, workers=min(workers, len(jobs)), desc="ensemble", quiet=quiet):
        pass


def _merge_one(job: tuple[list[str], str, Path]) -> None:
    """One patient of :func:`average_probabilities`: nnU-Net's ``merge_files``, then its inputs removed."""
    from nnunetv2.ensembling.ensemble import merge_files
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    files, output_truncated, first = job
    dataset_json = json.loads((first / "dataset.json").read_text())
    ending = dataset_json["file_ending"]
    plans = PlansManager(str(first / "plans.json"))
    merge_files(files, output_truncated, ending, plans.image_reader_writer_class(),
                plans.get_label_manager(dataset_json), save_probabilities=False)
    for f in files:
        for path in (Path(f), Path(f).with_suffix(".pkl"), Path(f[:-len(".npz")] + ending)):
            path.unlink(missing_ok=True)
