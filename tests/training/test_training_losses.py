"""Losses: hand-checked values, recall weighting, descent on a fixed batch, deep supervision, regions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from hecktor_nnunet.training.losses import DiceCEFocal, FocalLoss, TverskyCE, TverskyLoss

#: every recipe a trainer uses (focal; Tversky; focal-Tversky), by test id
RECIPES = {"focal": DiceCEFocal(), "tversky": TverskyCE(), "focal_tversky": TverskyCE(exponent=0.75)}

LABELS = LabelManager({"background": 0, "GTVp": 1, "GTVn": 2}, None)
REGIONS = LabelManager({"background": 0, "GTV": [1, 2], "GTVn": [2], "GTVp": [1]}, [1, 2, 1])


def _target(shape=(2, 1, 8, 8, 8)) -> torch.Tensor:
    t = torch.zeros(shape, dtype=torch.int16)
    t[:, :, 2:5, 2:5, 2:5] = 1
    t[:, :, 6:7, 6:7, 5:7] = 2
    return t


def _regions(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([(t > 0), (t == 2), (t == 1)], dim=1).to(torch.int16)


def _build(name: str, manager: LabelManager, batch_dice: bool = False):
    """A recipe's loss around nnU-Net's own Dice + CE (``nnUNetTrainer._build_loss`` on the few settings it reads)."""
    state = SimpleNamespace(label_manager=manager, configuration_manager=SimpleNamespace(batch_dice=batch_dice),
                            is_ddp=False, _do_i_compile=lambda: False, enable_deep_supervision=False)
    dice_ce = nnUNetTrainer._build_loss(state)
    assert isinstance(dice_ce, DC_and_BCE_loss if manager.has_regions else DC_and_CE_loss)
    return RECIPES[name].build(dice_ce, manager, batch_dice=batch_dice)


def test_focal_equals_ce_at_gamma_zero_and_downweights_easy_voxels():
    logits = torch.randn(2, 3, 4, 4, 4)
    t = torch.randint(0, 3, (2, 1, 4, 4, 4))
    ce = torch.nn.functional.cross_entropy(logits, t[:, 0])
    assert FocalLoss(0.0)(logits, t).item() == pytest.approx(ce.item(), rel=1e-5)
    assert FocalLoss(2.0)(logits, t).item() < ce.item()


def test_tversky_hand_values():
    # one channel of foreground probabilities via logits: p = 1 on 2 voxels where truth is 1, 0 elsewhere
    t = torch.zeros(1, 1, 1, 1, 4, dtype=torch.long)
    t[..., :3] = 1  # truth: 3 voxels
    logits = torch.full((1, 2, 1, 1, 4), -50.0)
    logits[:, 0] = 50.0
    logits[:, 1, ..., :2], logits[:, 0, ..., :2] = 50.0, -50.0  # predicted foreground: first 2 voxels
    # TP 2, FP 0, FN 1: TI = 2 / (2 + 0.7) ; loss = 1 - TI
    loss = TverskyLoss(alpha=0.3, beta=0.7, smooth=0)(logits, t)
    assert loss.item() == pytest.approx(1 - 2 / 2.7, abs=1e-6)


def test_tversky_penalises_false_negatives_more_than_false_positives():
    t = torch.zeros(1, 1, 1, 1, 10, dtype=torch.long)
    t[..., 2:6] = 1
    def pred(fg):
        lg = torch.full((1, 2, 1, 1, 10), -30.0)
        lg[:, 0] = 30.0
        lg[:, 1, ..., fg], lg[:, 0, ..., fg] = 30.0, -30.0
        return lg
    loss = TverskyLoss(0.3, 0.7, smooth=0)
    missed = loss(pred(slice(2, 5)), t)       # 1 FN
    too_big = loss(pred(slice(2, 7)), t)      # 1 FP
    assert missed.item() > too_big.item()


@pytest.mark.parametrize("manager", [LABELS, REGIONS], ids=["labels", "regions"])
@pytest.mark.parametrize("name", RECIPES)
def test_loss_decreases_on_fixed_batch(name, manager):
    torch.manual_seed(0)
    t = _target()
    target = _regions(t) if manager.has_regions else t
    n_out = manager.num_segmentation_heads
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.LeakyReLU(),
                              torch.nn.Conv3d(8, n_out, 1))
    x = torch.cat([t.float(), torch.randn(t.shape)], dim=1)  # input carries the answer: learnable
    loss_fn = _build(name, manager)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", RECIPES)
def test_deep_supervision_wrapper_shapes_and_weights(name):
    t = _target((2, 1, 16, 16, 16))
    targets = [t, t[:, :, ::2, ::2, ::2], t[:, :, ::4, ::4, ::4], t[:, :, ::8, ::8, ::8]]
    outputs = [torch.randn(2, 3, *tt.shape[2:], requires_grad=True) for tt in targets]
    loss = DeepSupervisionWrapper(_build(name, LABELS, batch_dice=True), (4 / 7, 2 / 7, 1 / 7, 0.0))(outputs, targets)
    loss.backward()
    assert loss.ndim == 0
    assert outputs[0].grad.abs().sum() > 0 and outputs[3].grad is None  # lowest level weighted 0


@pytest.mark.parametrize("name", RECIPES)
def test_ignore_label_raises_clear_error(name):
    manager = LabelManager({"background": 0, "GTVp": 1, "GTVn": 2, "ignore": 3}, None)
    with pytest.raises(NotImplementedError, match=r"loss .*\(.*\) does not support an ignore label"):
        RECIPES[name].build(torch.nn.Identity(), manager, batch_dice=False)


def test_recipes_build_the_settings_they_hold():
    focal = DiceCEFocal(gamma=3.0, class_weights=(1.0, 1.0, 50.0)).build(torch.nn.Identity(), LABELS, batch_dice=False)
    term = focal.terms[1]
    assert isinstance(focal.terms[0], torch.nn.Identity) and term.gamma == 3.0 and term.alpha.tolist() == [1, 1, 50]
    tversky = TverskyCE(0.2, 0.8, 0.75).build(torch.nn.Identity(), REGIONS, batch_dice=True).terms[0]
    assert (tversky.alpha, tversky.beta, tversky.exponent, tversky.regions, tversky.batch_dice) == (0.2, 0.8, 0.75,
                                                                                                   True, True)


def test_focal_class_weights_scale_each_voxel_by_its_true_class():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6)
    target = torch.randint(0, 3, (2, 1, 4, 5, 6))
    plain = FocalLoss(2.0)(logits, target)
    assert torch.allclose(FocalLoss(2.0, alpha=(1.0, 1.0, 1.0))(logits, target), plain)
    weighted = FocalLoss(2.0, alpha=(1.0, 1.0, 10.0))(logits, target)
    only_2 = FocalLoss(2.0, alpha=(0.0, 0.0, 1.0))(logits, target)
    assert torch.allclose(weighted, plain + 9 * only_2)
    with pytest.raises(ValueError, match="3 weights for 2 output channels"):
        FocalLoss(2.0, alpha=(1.0, 1.0, 10.0))(logits[:, :2], target.clamp(max=1))
