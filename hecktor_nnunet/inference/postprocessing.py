"""Post-processing of label maps, chosen on validation folds and saved with the model.

Two options, both targeting the challenge metrics: keep only the largest GTVp component (one
primary tumour per patient), and remove GTVn components smaller than a volume (mL; spurious
specks are false-positive lesions that lower GTVn F1agg). The setting is chosen by a grid search
over nnU-Net's validation predictions of the given folds against the ground truth, maximising the
mean of GTVp Dice, GTVn DSCagg and GTVn F1agg as ``hecktor-evaluate seg`` reports them: the same
functions (:mod:`hecktor_nnunet.metrics.segmentation`) with the same options, so a patient with no
GTVp in truth and prediction counts as Dice 0 unless ``both_empty_dice="exclude"``. Ties keep the
simpler setting (no post-processing first).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from hecktor_nnunet.io.atomic_io import json_safe, write_json
from hecktor_nnunet.metrics.segmentation import (BOTH_EMPTY_DICE, CONNECTIVITY_RANK, GTVN, GTVP, IOU_THRESHOLD,
                                                 MATCHING, components, dice, headline_metrics, match_lesions,
                                                 voxel_volume_ml)

log = logging.getLogger(__name__)

POSTPROCESSING_FILE = "hecktor_postprocessing.json"
DEFAULT_GTVN_THRESHOLDS_ML = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
CONNECTIVITY = 26  # of the components the options remove (keep-largest GTVp, small GTVn)
#: the per-patient GTVn values :func:`~hecktor_nnunet.metrics.segmentation.headline_metrics` aggregates
GTVN_COLUMNS = ("gtvn_inter_ml", "gtvn_true_ml", "gtvn_pred_ml", "gtvn_tp", "gtvn_fp", "gtvn_fn")


@dataclass(frozen=True)
class Postprocessing:
    """One post-processing setting.

    Parameters
    ----------
    keep_largest_gtvp : bool
        Keep only the largest connected GTVp component (others become background).
    min_gtvn_ml : float
        Remove GTVn components smaller than this volume (mL); 0 keeps all.
    """

    keep_largest_gtvp: bool = False
    min_gtvn_ml: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Postprocessing":
        return cls(bool(d["keep_largest_gtvp"]), float(d["min_gtvn_ml"]))

    @property
    def is_identity(self) -> bool:
        return not self.keep_largest_gtvp and self.min_gtvn_ml <= 0


def apply_postprocessing(label: np.ndarray, spacing: Sequence[float], setting: Postprocessing) -> np.ndarray:
    """Apply ``setting`` to a label map (0/1/2); returns a new array.

    Parameters
    ----------
    label : ndarray of int, shape (z, y, x)
    spacing : sequence of 3 float
        Voxel spacing in mm, any axis order (only the voxel volume is used).
    """
    out = np.array(label, copy=True)
    if setting.keep_largest_gtvp:
        lab, n = components(out == GTVP, CONNECTIVITY)
        if n > 1:
            sizes = np.bincount(lab.ravel())[1:]
            out[(lab > 0) & (lab != int(np.argmax(sizes)) + 1)] = 0
    if setting.min_gtvn_ml > 0:
        voxel_ml = voxel_volume_ml(spacing)
        lab, n = components(out == GTVN, CONNECTIVITY)
        if n:
            sizes_ml = np.bincount(lab.ravel())[1:] * voxel_ml
            small = np.flatnonzero(sizes_ml < setting.min_gtvn_ml) + 1
            out[np.isin(lab, small)] = 0
    return out


def postprocess_image(image: sitk.Image, setting: Postprocessing) -> sitk.Image:
    """:func:`apply_postprocessing` on a label-map image; returns a uint8 image on the same grid."""
    arr = apply_postprocessing(sitk.GetArrayFromImage(image), image.GetSpacing(), setting)
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(image)
    return out


def candidates(gtvn_thresholds_ml: Sequence[float] = DEFAULT_GTVN_THRESHOLDS_ML) -> list[Postprocessing]:
    """The grid searched, identity first."""
    thresholds = sorted({0.0, *(float(t) for t in gtvn_thresholds_ml)})
    return [Postprocessing(k, t) for k, t in itertools.product((False, True), thresholds)]


def _largest_component_only(mask: np.ndarray) -> np.ndarray:
    lab, n = components(mask, CONNECTIVITY)
    if n <= 1:
        return mask
    return lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1


def select_postprocessing(cases: Iterable[tuple[np.ndarray, np.ndarray, Sequence[float]]],
                          gtvn_thresholds_ml: Sequence[float] = DEFAULT_GTVN_THRESHOLDS_ML, *,
                          both_empty_dice: str = BOTH_EMPTY_DICE[0], connectivity: int = 26,
                          matching: str = MATCHING[0]) -> tuple[Postprocessing, list[dict]]:
    """Grid search over :func:`candidates`; returns the best setting and every candidate's scores.

    Each candidate is scored as ``hecktor-evaluate seg`` scores the post-processed label maps, with
    the functions it uses (:mod:`hecktor_nnunet.metrics.segmentation`): per patient, GTVp
    :func:`~hecktor_nnunet.metrics.segmentation.dice`, GTVn volumes in mL and
    :func:`~hecktor_nnunet.metrics.segmentation.match_lesions`; over patients,
    :func:`~hecktor_nnunet.metrics.segmentation.headline_metrics` (GTVp mean Dice, GTVn DSCagg and
    F1agg). ``mean`` is their mean (of the two GTVn metrics alone when ``both_empty_dice="exclude"``
    leaves no patient for GTVp).

    The cases are streamed: one (truth, prediction) pair in memory at a time. The two options act on
    different labels (keeping the largest GTVp component touches only label 1, the GTVn threshold
    only label 2), so each case is scored once per GTVp option and once per GTVn threshold, with its
    truth masks and predicted components computed once.

    Parameters
    ----------
    cases : iterable of (truth, prediction, spacing)
        Label maps (z, y, x) and voxel spacing (mm, z y x).
    gtvn_thresholds_ml : sequence of float
        GTVn component volumes (mL) searched (0, no removal, is always added).
    both_empty_dice, connectivity, matching
        As ``hecktor-evaluate seg`` (``--both-empty-dice``, ``--connectivity``, ``--matching``);
        the defaults are its defaults.

    Returns
    -------
    best : Postprocessing
        Highest ``mean`` score; the earliest (simplest) candidate on ties.
    table : list of dict
        One row per candidate: the setting and its ``gtvp_dice``, ``gtvn_dsc_agg``, ``gtvn_f1_agg``, ``mean``.

    Raises
    ------
    ValueError
        No cases, or an option :mod:`~hecktor_nnunet.metrics.segmentation` does not know.
    """
    if both_empty_dice not in BOTH_EMPTY_DICE:
        raise ValueError(f"both_empty_dice must be one of {BOTH_EMPTY_DICE}, got {both_empty_dice!r}")
    if connectivity not in CONNECTIVITY_RANK:
        raise ValueError(f"connectivity must be one of {sorted(CONNECTIVITY_RANK)}, got {connectivity!r}")
    if matching not in MATCHING:
        raise ValueError(f"matching must be one of {MATCHING}, got {matching!r}")
    cands = candidates(gtvn_thresholds_ml)
    thresholds = sorted({c.min_gtvn_ml for c in cands})
    gtvp_dice: dict[bool, list[float]] = {False: [], True: []}
    gtvn: dict[float, dict[str, list[float]]] = {t: {k: [] for k in GTVN_COLUMNS} for t in thresholds}
    n = 0
    for truth, pred, spacing in cases:
        n += 1
        voxel_ml = voxel_volume_ml(spacing)
        t, p = truth == GTVP, pred == GTVP
        gtvp_dice[False].append(dice(t, p))
        gtvp_dice[True].append(dice(t, _largest_component_only(p)))
        tn, pn = truth == GTVN, pred == GTVN
        t_ml = float(np.count_nonzero(tn) * voxel_ml)
        lab, n_comp = components(pn, CONNECTIVITY)
        sizes_ml = np.bincount(lab.ravel(), minlength=n_comp + 1)[1:] * voxel_ml
        for thr in thresholds:
            small = np.flatnonzero(sizes_ml < thr) + 1 if thr > 0 else np.empty(0, int)
            kept = pn & ~np.isin(lab, small) if len(small) else pn
            m = match_lesions(tn, kept, connectivity, matching=matching)
            for key, value in (("gtvn_inter_ml", float(np.count_nonzero(tn & kept) * voxel_ml)),
                               ("gtvn_true_ml", t_ml), ("gtvn_pred_ml", float(np.count_nonzero(kept) * voxel_ml)),
                               ("gtvn_tp", m.tp), ("gtvn_fp", m.fp), ("gtvn_fn", m.fn)):
                gtvn[thr][key].append(value)
    if not n:
        raise ValueError("no validation cases to choose post-processing from")
    table, best, best_score = [], None, -np.inf
    for cand in cands:
        h = headline_metrics({"gtvp_dice": gtvp_dice[cand.keep_largest_gtvp], **gtvn[cand.min_gtvn_ml]},
                             both_empty_dice)
        s = {"gtvp_dice": h["gtvp_dice_mean"], "gtvn_dsc_agg": h["gtvn_dsc_agg"], "gtvn_f1_agg": h["gtvn_f1_agg"]}
        s["mean"] = float(np.nanmean(list(s.values())))
        table.append({**cand.to_dict(), **s})
        if s["mean"] > best_score + 1e-12:
            best, best_score = cand, s["mean"]
    return best, table


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img.GetSpacing()[::-1]


def validation_predictions(model_dir: str | Path, folds: Sequence[int | str],
                           file_ending: str = ".nii.gz") -> dict[str, tuple[str, Path]]:
    """nnU-Net's validation prediction of every case of ``folds``: case id -> (fold, file).

    The files are ``<model_dir>/fold_<k>/validation/<case id><file_ending>``, in converted space.

    Raises
    ------
    FileNotFoundError
        If a fold has no validation predictions.
    ValueError
        If one case is in the validation of two folds (the message names both folds and files).
    """
    found: dict[str, tuple[str, Path]] = {}
    for f in folds:
        val_dir = Path(model_dir) / f"fold_{f}" / "validation"
        preds = sorted(p for p in val_dir.glob(f"*{file_ending}") if not p.name.startswith("."))
        if not preds:
            raise FileNotFoundError(f"no validation predictions in {val_dir}; train fold {f} to the end "
                                    "(or run nnUNetv2_train ... --val)")
        for p in preds:
            case = p.name[:-len(file_ending)]
            if case in found:
                raise ValueError(f"{case} is in the validation of fold {found[case][0]} ({found[case][1]}) and of "
                                 f"fold {f} ({p}); each case must be validated by one fold only")
            found[case] = (str(f), p)
    return found


def validation_files(model_dir: str | Path, folds: Sequence[int | str], truth_dir: str | Path,
                     file_ending: str = ".nii.gz") -> list[tuple[Path, Path]]:
    """(truth file, prediction file) of every validation case of ``folds`` in a trained model folder.

    Raises
    ------
    FileNotFoundError
        If a fold has no validation predictions (:func:`validation_predictions`), or a prediction
        has no truth file.
    ValueError
        If one case is in the validation of two folds.
    """
    pairs = []
    for _, p in validation_predictions(model_dir, folds, file_ending).values():
        t = Path(truth_dir) / p.name
        if not t.is_file():
            raise FileNotFoundError(f"no ground truth {t} for validation prediction {p}")
        pairs.append((t, p))
    return pairs


def validation_cases(files: Iterable[tuple[Path, Path]]) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
    """(truth, prediction, spacing) of each (truth file, prediction file), read one pair at a time."""
    for t, p in files:
        truth, spacing = _read(t)
        yield truth, _read(p)[0], spacing


def select_for_model(model_dir: str | Path, folds: Sequence[int | str], truth_dir: str | Path,
                     gtvn_thresholds_ml: Sequence[float] = DEFAULT_GTVN_THRESHOLDS_ML, *,
                     both_empty_dice: str = BOTH_EMPTY_DICE[0], connectivity: int = 26,
                     matching: str = MATCHING[0]) -> dict:
    """Choose post-processing on a model's validation folds and save it as ``hecktor_postprocessing.json``.

    Parameters
    ----------
    model_dir : path
        ``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG``.
    folds : sequence
        Folds whose validation predictions are pooled.
    truth_dir : path
        Ground truth in converted space (nnU-Net's ``$nnUNet_preprocessed/DatasetXXX/gt_segmentations``).
    gtvn_thresholds_ml, both_empty_dice, connectivity, matching
        As :func:`select_postprocessing`.

    Returns
    -------
    dict
        What was saved: ``setting``, ``folds``, ``n_cases``, ``score`` (what was maximised, with
        ``hecktor-evaluate seg``'s options), ``candidates`` (scores of each; a metric left
        undefined is null).
    """
    files = validation_files(model_dir, folds, truth_dir)
    best, table = select_postprocessing(validation_cases(files), gtvn_thresholds_ml, both_empty_dice=both_empty_dice,
                                        connectivity=connectivity, matching=matching)
    result = {"setting": best.to_dict(), "folds": [str(f) for f in folds], "n_cases": len(files),
              "score": {"maximised": "mean of GTVp Dice, GTVn DSCagg, GTVn F1agg, as hecktor-evaluate seg reports them",
                        "both_empty_dice": both_empty_dice, "connectivity": connectivity, "matching": matching,
                        "iou_threshold": IOU_THRESHOLD},
              "candidates": table}
    write_json(json_safe(result), Path(model_dir) / POSTPROCESSING_FILE)
    log.info("post-processing for %s: %s", model_dir, best)
    return result


def load_postprocessing(model_dir: str | Path) -> Postprocessing | None:
    """The setting saved with a model, or None when none was chosen."""
    path = Path(model_dir) / POSTPROCESSING_FILE
    if not path.is_file():
        return None
    return Postprocessing.from_dict(json.loads(path.read_text())["setting"])
