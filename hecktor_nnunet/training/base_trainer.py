"""The base of every HECKTOR trainer: one class, each behaviour switched by a class attribute.

Variants in ``trainers/`` set one or two attributes (``loss_name = "dice_ce_focal"``); combinations
inherit from several variants with an empty body (Python's MRO merges the attributes). Each
advertised variant also says, in its own body, on which ``axis`` it varies nnU-Net, ``what`` it
changes and ``why``: :mod:`hecktor_nnunet.training.registry` builds the trainer table from these,
and ``what`` names the class's settings (``{lymph_node_share:.0%}``), so the numbers shown are the
ones the trainer runs with. The hooks here are the only places HECKTOR code enters nnU-Net's training:

- ``_build_loss``: the named loss from :mod:`hecktor_nnunet.training.losses` around nnU-Net's own
  Dice + CE, with nnU-Net's deep-supervision wrapping and weights;
- ``get_training_transforms``: nnU-Net's own pipeline (``super()``) with the PET-only transforms
  (the misregistration folded into its spatial transform, the rest inserted after it);
- ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``: left-right-only mirroring;
- ``get_dataloaders``: nnU-Net's, with the lymph-node-aware loader for training
  (:func:`~hecktor_nnunet.training.sampling.get_dataloaders_with`);
- the network size and schedule (``network_size``, ``training_schedule``): a :class:`NetworkSize`
  resizes the plans' architecture and patch; the result is written into this training's copy of the
  plans (saved as the model folder's ``plans.json``), so prediction rebuilds the same network without
  the trainer's help;
- tiny mode (the ``nnUNetTrainerHecktorTinyCPUDebug`` trainer, or any trainer with the environment
  variable ``HECKTOR_NNUNET_DEBUG=1``): :data:`TINY_NETWORK` and :data:`TINY_SCHEDULE` (a few
  iterations, a network a few features wide with one convolution or residual block per stage, one
  torch thread on CPU): for tests and plumbing checks only.

Channel convention of converted datasets (``hecktor-convert``): channel 0 is CT, channel 1 is PET;
dataset.json's ``hecktor.channels`` records it and is read when present.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from hecktor_nnunet.training.losses import build_loss
from hecktor_nnunet.training.sampling import LymphNodeDataLoader, get_dataloaders_with, gtvn_class_key
from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                 add_pet_transforms)

PET_CHANNEL = 1
DEBUG_ENV = "HECKTOR_NNUNET_DEBUG"
NETWORK_KEY = "hecktor_network"  # what a resized plans configuration records about its resizing


@dataclass(frozen=True)
class NetworkSize:
    """How a trainer resizes the plans' network and patch (every field None keeps nnU-Net's choice).

    Stages, strides and kernel sizes are always kept (so deep-supervision scales are unchanged).

    Attributes
    ----------
    width_divisor : int, optional
        Every stage's features divided by this (at least 4 features).
    max_features : int, optional
        Cap on every stage's features.
    convs_per_stage : int, optional
        Convolutions (or residual blocks) per encoder and decoder stage.
    batch_size : int, optional
        Patches per iteration.
    patch_size : tuple of int, optional
        Patch size (voxels, in nnU-Net's axis order); each axis must divide by the network's total stride.
    """

    width_divisor: int | None = None
    max_features: int | None = None
    convs_per_stage: int | None = None
    batch_size: int | None = None
    patch_size: tuple[int, ...] | None = None

    @property
    def patch_text(self) -> str:
        """The patch size as the trainer table writes it (``32^3``, ``32x32x48``)."""
        if not self.patch_size:
            return "the plans' patch size"
        sizes = [int(p) for p in self.patch_size]
        return f"{sizes[0]}^{len(sizes)}" if len(set(sizes)) == 1 else "x".join(map(str, sizes))


@dataclass(frozen=True)
class Schedule:
    """Training length and optimiser settings (None keeps nnU-Net's default)."""

    epochs: int | None = None
    iterations_per_epoch: int | None = None
    val_iterations_per_epoch: int | None = None
    initial_lr: float | None = None
    foreground_oversampling: float | None = None
    cpu_threads: int | None = None


#: Tiny mode: for tests and plumbing checks only, NOT a real model.
TINY_NETWORK = NetworkSize(max_features=8, convs_per_stage=1)
TINY_SCHEDULE = Schedule(epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1, cpu_threads=1)


def debug_env_enabled() -> bool:
    """True when ``HECKTOR_NNUNET_DEBUG`` is set to 1/true/yes."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def shrink_configuration(plans: dict, configuration: str, size: NetworkSize) -> None:
    """Resize one configuration of ``plans`` in place as ``size`` says (idempotent).

    The resized configuration no longer inherits from another one and records ``asdict(size)``
    under :data:`NETWORK_KEY`; a configuration that already records one is left alone.

    Raises
    ------
    ValueError
        A ``patch_size`` with the wrong number of axes or an axis not divisible by the total stride.
    """
    resolved = PlansManager(plans).get_configuration(configuration).configuration
    if NETWORK_KEY in resolved:
        return
    cfg = copy.deepcopy(resolved)
    cfg.pop("inherits_from", None)
    kwargs = cfg["architecture"]["arch_kwargs"]
    if "features_per_stage" in kwargs:
        widths = [int(f) for f in kwargs["features_per_stage"]]
        if size.width_divisor:
            widths = [max(4, f // size.width_divisor) for f in widths]
        if size.max_features:
            widths = [min(f, size.max_features) for f in widths]
        kwargs["features_per_stage"] = widths
    if size.convs_per_stage:
        for key in ("n_conv_per_stage", "n_blocks_per_stage", "n_conv_per_stage_decoder"):
            if key in kwargs:
                kwargs[key] = [size.convs_per_stage] * len(kwargs[key])
    if size.batch_size:
        cfg["batch_size"] = int(size.batch_size)
    if size.patch_size:
        strides = np.prod(np.asarray(kwargs.get("strides", [[1] * len(size.patch_size)]), dtype=int), axis=0)
        if len(size.patch_size) != len(cfg["patch_size"]) or any(int(p) % int(s) for p, s in zip(size.patch_size, strides)):
            raise ValueError(f"patch size {list(size.patch_size)} does not fit the network: {len(cfg['patch_size'])} "
                             f"axes, each divisible by the total stride {strides.tolist()}")
        cfg["patch_size"] = [int(p) for p in size.patch_size]
    cfg[NETWORK_KEY] = asdict(size)
    plans["configurations"][configuration] = cfg


class HecktorTrainer(nnUNetTrainer):
    """nnU-Net's trainer with HECKTOR switches (class attributes, all off by default).

    Attributes
    ----------
    axis, what, why : str
        Set in the body of each advertised variant (not inherited): the axis it varies (loss,
        augmentation, sampling, combined, length, demo, debug, architecture), what it changes
        (a :meth:`str.format` template over the class's attributes) and why (the weakness it targets).
    loss_name : str
        ``dice_ce`` (nnU-Net's), ``dice_ce_focal``, ``tversky`` or ``focal_tversky``.
    focal_gamma : float
        Focusing exponent of the focal term.
    tversky_alpha, tversky_beta, focal_tversky_exponent : float
        Tversky weights of false positives and false negatives; the focal-Tversky exponent.
    focal_class_weights : tuple of float or None
        Per-output-channel weights of the focal term (``dice_ce_focal``), e.g. to make the rare lymph
        nodes' voxels count more; None weighs every class 1.
    pet_misregistration : bool
        Random rigid motion of PET only, up to ``max_shift_mm`` and ``max_rotation_deg`` per axis, in a
        share ``p_pet_misregistration`` of patches (not every patient moves), folded into nnU-Net's spatial
        transform (PET sampled once; see ``benchmarks/augmentation.py`` for the throughput).
    pet_intensity : bool
        PET-only global scaling in ``suv_scale_range`` and blur with sigma in ``pet_blur_sigma_mm``.
    mirror_left_right_only : bool
        Mirror only along the patient's left-right axis (training and test-time mirroring).
    test_time_mirroring : bool
        False: the model is never evaluated with mirrored copies (nnU-Net's final validation and, through
        the checkpoint, ``nnUNetv2_predict``/``hecktor-predict``); 8x less inference compute in 3-D.
    lymph_node_share : float
        Share of training patches centred on GTVn voxels (0 keeps nnU-Net's sampling).
    network_size : NetworkSize or None
        Resizing of the plans' network and patch (None keeps them).
    training_schedule : Schedule or None
        Epochs, iterations, learning rate, foreground oversampling, CPU threads (None keeps nnU-Net's).
    tiny : bool
        Tiny mode (see the module docstring); also switched on by ``HECKTOR_NNUNET_DEBUG=1``.
    tiny_network, tiny_schedule : NetworkSize, Schedule
        What tiny mode means (:data:`TINY_NETWORK`, :data:`TINY_SCHEDULE`).
    """

    axis: ClassVar[str] = ""
    what: ClassVar[str] = ""
    why: ClassVar[str] = ""
    loss_name: str = "dice_ce"
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    focal_tversky_exponent: float = 0.75
    focal_class_weights: tuple[float, ...] | None = None
    pet_misregistration: bool = False
    max_shift_mm: float = 4.0
    max_rotation_deg: float = 3.0
    p_pet_misregistration: float = 0.5
    pet_intensity: bool = False
    suv_scale_range: tuple[float, float] = (0.8, 1.25)
    pet_blur_sigma_mm: tuple[float, float] = (0.5, 3.0)
    mirror_left_right_only: bool = False
    test_time_mirroring: bool = True
    lymph_node_share: float = 0.0
    # (not ``network``/``schedule``: nnU-Net's trainer owns ``self.network``)
    network_size: NetworkSize | None = None
    training_schedule: Schedule | None = None
    tiny: bool = False
    tiny_network: ClassVar[NetworkSize] = TINY_NETWORK
    tiny_schedule: ClassVar[Schedule] = TINY_SCHEDULE

    def __init_subclass__(cls, **kwargs) -> None:
        """A variant that says ``what`` it changes and has no docstring of its own gets one from it."""
        super().__init_subclass__(**kwargs)
        if "what" in cls.__dict__ and not cls.__dict__.get("__doc__"):
            cls.__doc__ = f"{cls.describe_what()}.\n\nWhy: {cls.why}."

    @classmethod
    def describe_what(cls) -> str:
        """``what`` with the class's settings filled in (``{lymph_node_share:.0%}`` -> ``33%``)."""
        return cls.what.format_map(_ClassSettings(cls))

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        tiny = self.tiny or debug_env_enabled()
        network, schedule = (self.tiny_network, self.tiny_schedule) if tiny else (self.network_size,
                                                                                   self.training_schedule)
        if network is not None:
            shrink_configuration(self.plans_manager.plans, configuration, network)
            # PlansManager.get_configuration is cached: wrap the resized dict directly
            self.configuration_manager = ConfigurationManager(self.plans_manager.plans["configurations"][configuration])
        if schedule is not None:
            self._apply_schedule(schedule)
        if tiny:
            self.print_to_log_file(f"Tiny mode: {self.num_epochs} epochs x {self.num_iterations_per_epoch} iterations, "
                                   f"features <= {self.tiny_network.max_features}. For tests and demos only.")
        if self.pet_misregistration or self.pet_intensity:
            self.pet_channel()  # fail at start-up, not in a data-augmentation worker

    def _apply_schedule(self, s: Schedule) -> None:
        for attribute, value in (("num_epochs", s.epochs), ("num_iterations_per_epoch", s.iterations_per_epoch),
                                 ("num_val_iterations_per_epoch", s.val_iterations_per_epoch),
                                 ("initial_lr", s.initial_lr),
                                 ("oversample_foreground_percent", s.foreground_oversampling)):
            if value is not None:
                setattr(self, attribute, value)
        if s.cpu_threads and self.device.type == "cpu":
            # nnUNetv2_train -device cpu asks torch for every core; small CPU runs (tests, the demo,
            # often several at once) choose their own thread count
            torch.set_num_threads(int(s.cpu_threads))

    def pet_channel(self) -> int:
        """Index of the PET channel: from dataset.json ``hecktor.channels`` if present, else 1.

        Raises
        ------
        ValueError
            If the dataset has no PET channel (fewer than two channels, or none called PET).
        """
        names = self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))
        recorded = self.dataset_json.get("hecktor", {}).get("channels")
        if recorded is not None:
            if "PET" not in recorded:
                raise ValueError(f"{self.__class__.__name__} augments PET, but dataset.json hecktor.channels "
                                 f"is {recorded} (no 'PET')")
            return recorded.index("PET")
        if len(names) <= PET_CHANNEL:
            raise ValueError(
                f"{self.__class__.__name__} augments PET as channel {PET_CHANNEL}, but dataset.json declares "
                f"{len(names)} channel(s) {dict(names)}; convert the release with hecktor-convert (CT, PET)")
        return PET_CHANNEL

    # -- loss ---------------------------------------------------------------------------------
    def _build_loss(self):
        stock = super()._build_loss()  # nnU-Net's Dice + CE, wrapped for deep supervision when enabled
        if self.loss_name == "dice_ce":
            return stock
        wrapped = isinstance(stock, DeepSupervisionWrapper)
        loss = build_loss(self.loss_name, self.label_manager, dice_ce=stock.loss if wrapped else stock,
                          batch_dice=self.configuration_manager.batch_dice, focal_gamma=self.focal_gamma,
                          focal_alpha=self.focal_class_weights, tversky_alpha=self.tversky_alpha,
                          tversky_beta=self.tversky_beta, focal_tversky_exponent=self.focal_tversky_exponent)
        return DeepSupervisionWrapper(loss, stock.weight_factors) if wrapped else loss

    # -- augmentation -------------------------------------------------------------------------
    def pet_transforms(self) -> list:
        """The PET-only transforms this trainer adds (empty when both switches are off)."""
        if not (self.pet_misregistration or self.pet_intensity):
            return []
        spacing, pet = self.configuration_manager.spacing, self.pet_channel()
        extra = []
        if self.pet_misregistration:
            extra.append(PETMisregistrationTransform(pet, spacing, self.max_shift_mm, self.max_rotation_deg,
                                                     p=self.p_pet_misregistration))
        if self.pet_intensity:
            extra.append(PETIntensityTransform(pet, spacing, self.suv_scale_range, self.pet_blur_sigma_mm))
        return extra

    def get_training_transforms(self, *args, **kwargs):
        pipeline = super().get_training_transforms(*args, **kwargs)
        extra = self.pet_transforms()
        return add_pet_transforms(pipeline, extra) if extra else pipeline

    def left_right_axis(self) -> int:
        """Array axis of patient left-right in nnU-Net's (transposed) arrays.

        Converted images keep the CT's axial orientation: SimpleITK's x (array axis 2 before
        nnU-Net's ``transpose_forward``) is left-right.
        """
        return list(self.plans_manager.transpose_forward).index(2)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if self.mirror_left_right_only:
            dim = len(self.configuration_manager.patch_size)
            lr = self.left_right_axis() - (3 - dim)
            mirror_axes = (lr,) if lr >= 0 else None
            self.inference_allowed_mirroring_axes = mirror_axes
        if not self.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    # -- sampling -----------------------------------------------------------------------------
    def get_dataloaders(self):
        if self.lymph_node_share <= 0:
            return super().get_dataloaders()
        key = gtvn_class_key(self.label_manager, self.dataset_json)

        def training_loader(*args, **kwargs):
            return LymphNodeDataLoader(*args, node_key=key, node_share=self.lymph_node_share, **kwargs)

        return get_dataloaders_with(self, training_loader)


def network_max_features(configuration_manager: ConfigurationManager) -> int | None:
    """``max_features`` of a configuration resized by a :class:`NetworkSize`, else None."""
    return configuration_manager.configuration.get(NETWORK_KEY, {}).get("max_features")


class _ClassSettings(dict):
    """A trainer class's attributes by name, for :meth:`str.format_map` of its ``what``."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def __missing__(self, key: str):
        return getattr(self.cls, key)
