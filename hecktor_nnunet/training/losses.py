"""Segmentation losses the HECKTOR trainers compose (focal, Tversky, focal-Tversky), and their recipes.

Every loss takes raw network logits ``(b, c, x, y[, z])`` and the target nnU-Net's data loader
produces: a label map ``(b, 1, ...)`` for plain labels (softmax outputs) or a one-hot region
stack ``(b, c, ...)`` for region-based training (sigmoid outputs). nnU-Net's own Dice + CE (or
Dice + BCE for regions) and its deep-supervision weighting are not rebuilt here: the trainer
(:class:`~hecktor_nnunet.training.behaviours.HecktorLoss`) takes both from ``nnUNetTrainer._build_loss``
and hands the Dice + CE term to its recipe's ``build`` (:class:`DiceCEFocal`, :class:`TverskyCE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
from torch import nn

from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.utilities.label_handling.label_handling import LabelManager

class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy down-weighted on easy voxels by ``(1 - p_t)^gamma``.

    Parameters
    ----------
    gamma : float
        Focusing exponent (0 gives plain cross-entropy).
    regions : bool
        Sigmoid (one-hot region target) instead of softmax (label-map target).
    alpha : sequence of float, optional
        Per-class weights (Lin et al.'s alpha), one per output channel, applied by each voxel's true
        class (softmax) or per channel (sigmoid); None weighs every class 1.
    """

    def __init__(self, gamma: float = 2.0, regions: bool = False, alpha: Sequence[float] | None = None) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.regions = regions
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.regions:
            log_pt = -nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
        else:
            t = target.long()
            log_pt = torch.log_softmax(logits, dim=1).gather(1, t)
        loss = -(1.0 - log_pt.exp()).pow(self.gamma) * log_pt
        if self.alpha is not None:
            if self.alpha.numel() != logits.shape[1]:
                raise ValueError(f"focal alpha has {self.alpha.numel()} weights for {logits.shape[1]} output channels")
            alpha = self.alpha.to(logits.dtype)
            # regions: one weight per channel (broadcast); labels: the weight of each voxel's class
            loss = loss * (alpha.view((1, -1) + (1,) * (logits.ndim - 2)) if self.regions else alpha[t])
        return loss.mean()


class TverskyLoss(nn.Module):
    """(Focal-)Tversky loss: ``mean_c (1 - TI_c)^exponent``, ``TI = TP / (TP + alpha FP + beta FN)``.

    ``beta > alpha`` penalises false negatives more than false positives (recall over precision),
    ``exponent < 1`` is the focal-Tversky loss of Abraham & Khan (2019) (1/gamma with gamma 4/3).

    Parameters
    ----------
    alpha, beta : float
        Weights of false positives and false negatives.
    exponent : float
        1 for plain Tversky, < 1 for focal-Tversky.
    regions : bool
        Sigmoid outputs and one-hot region targets (all channels are foreground); otherwise softmax
        outputs and the background channel is left out.
    batch_dice : bool
        Sum TP/FP/FN over the batch (nnU-Net's ``batch_dice``) instead of per sample.
    smooth : float
        Added to numerator and denominator.
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, exponent: float = 1.0, regions: bool = False,
                 batch_dice: bool = False, smooth: float = 1e-5) -> None:
        super().__init__()
        self.alpha, self.beta, self.exponent = float(alpha), float(beta), float(exponent)
        self.regions, self.batch_dice, self.smooth = regions, batch_dice, float(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(logits) if self.regions else torch.softmax(logits, dim=1)
        axes = ([0] if self.batch_dice else []) + list(range(2, logits.ndim))
        tp, fp, fn, _ = get_tp_fp_fn_tn(probs, target, axes=axes)
        if not self.regions:  # background channel out, as nnU-Net's Dice with do_bg=False
            tp, fp, fn = tp[..., 1:], fp[..., 1:], fn[..., 1:]
        ti = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return (1.0 - ti).clamp_min(0).pow(self.exponent).mean()


class SumOfLosses(nn.Module):
    """Weighted sum of losses that share the ``(logits, target)`` signature."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([m for _, m in terms])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * m(logits, target) for w, m in zip(self.weights, self.terms))


class _LabelCE(nn.Module):
    """Cross-entropy on a ``(b, 1, ...)`` label-map target."""

    def __init__(self) -> None:
        super().__init__()
        self.ce = RobustCrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce(logits, target[:, 0])


class _RegionBCE(nn.Module):
    """Binary cross-entropy on a one-hot region target."""

    def __init__(self) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce(logits, target.to(logits.dtype))


class LossRecipe(Protocol):
    """What a HECKTOR trainer's ``loss_recipe`` is: settings that build the loss for a dataset."""

    def build(self, dice_ce: nn.Module, label_manager: LabelManager, batch_dice: bool) -> nn.Module:
        """The loss (without deep supervision) for this dataset's labels or regions.

        Parameters
        ----------
        dice_ce : nn.Module
            nnU-Net's Dice + CE (Dice + BCE for regions) for this dataset, without deep supervision.
        label_manager : LabelManager
            Decides softmax/labels vs sigmoid/regions.
        batch_dice : bool
            From the plans configuration.
        """


def _refuse_ignore_label(recipe: object, label_manager: LabelManager) -> None:
    if label_manager.has_ignore_label:
        raise NotImplementedError(
            f"loss {recipe} does not support an ignore label (dataset has ignore label "
            f"{label_manager.ignore_label}); use nnU-Net's default trainer for partially annotated data")


@dataclass(frozen=True)
class DiceCEFocal:
    """nnU-Net's Dice + CE plus a focal term (:class:`FocalLoss`), weight 1 each.

    Attributes
    ----------
    gamma : float
        Focusing exponent of the focal term.
    class_weights : tuple of float, optional
        Per-output-channel weights of the focal term (e.g. to make the rare lymph nodes' voxels count
        more); None weighs every class 1.
    """

    gamma: float = 2.0
    class_weights: tuple[float, ...] | None = None

    def build(self, dice_ce: nn.Module, label_manager: LabelManager, batch_dice: bool) -> nn.Module:
        """:class:`SumOfLosses` of ``dice_ce`` and the focal term (see :class:`LossRecipe`).

        Raises
        ------
        NotImplementedError
            For a dataset with an ignore label (HECKTOR has none; nnU-Net's masking is not reproduced).
        """
        _refuse_ignore_label(self, label_manager)
        focal = FocalLoss(self.gamma, regions=label_manager.has_regions, alpha=self.class_weights)
        return SumOfLosses([(1.0, dice_ce), (1.0, focal)])


@dataclass(frozen=True)
class TverskyCE:
    """(Focal-)Tversky + CE (BCE for regions) instead of nnU-Net's Dice + CE, weight 1 each.

    Cross-entropy is kept for stable early training; ``beta > alpha`` weighs recall over precision.

    Attributes
    ----------
    alpha, beta : float
        Tversky weights of false positives and false negatives.
    exponent : float
        1 for plain Tversky, < 1 for focal-Tversky (:class:`TverskyLoss`).
    """

    alpha: float = 0.3
    beta: float = 0.7
    exponent: float = 1.0

    def build(self, dice_ce: nn.Module, label_manager: LabelManager, batch_dice: bool) -> nn.Module:
        """:class:`SumOfLosses` of :class:`TverskyLoss` and cross-entropy; ``dice_ce`` is replaced, not used.

        Raises
        ------
        NotImplementedError
            For a dataset with an ignore label.
        """
        _refuse_ignore_label(self, label_manager)
        regions = label_manager.has_regions
        tversky = TverskyLoss(self.alpha, self.beta, self.exponent, regions=regions, batch_dice=batch_dice)
        return SumOfLosses([(1.0, tversky), (1.0, _RegionBCE() if regions else _LabelCE())])
