"""The base of every HECKTOR trainer: what a trainer says about itself, and its network size and schedule.

:class:`HecktorTrainer` holds only what every HECKTOR trainer shares:

- its description: each advertised trainer says in its own body on which ``axis`` it varies nnU-Net,
  ``what`` it changes and ``why``; :mod:`hecktor_nnunet.training.registry` builds the trainer table from
  these, and ``what`` names the class's settings (``{lymph_node_share:.0%}``), so the numbers shown are
  the ones the trainer runs with;
- the refusal of conflicting parents: a class whose parents set one attribute (a setting or a hook)
  from two unrelated classes is a ``TypeError`` at class creation, unless its own body sets it
  (Python's MRO would otherwise silently take the first parent's);
- the network size and schedule (``network_size``, ``training_schedule``): a :class:`NetworkSize`
  resizes the plans' architecture and patch; the result is written into this training's copy of the
  plans (saved as the model folder's ``plans.json``), so prediction rebuilds the same network without
  the trainer's help;
- tiny mode (the ``nnUNetTrainerHecktorTinyCPUDebug`` trainer, or any trainer with the environment
  variable ``HECKTOR_NNUNET_DEBUG=1``): :data:`TINY_NETWORK` and :data:`TINY_SCHEDULE` (a few
  iterations, a network a few features wide with one convolution or residual block per stage, batches
  of 2 (nnU-Net's smallest; its planner gives small images batches of 30 and more), one torch thread on
  CPU): for tests and plumbing checks only.

Every other behaviour (loss, PET augmentation, mirroring, sampling, architecture) is one class of
:mod:`hecktor_nnunet.training.behaviours`, the only owner of its nnU-Net hook.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import ClassVar

import numpy as np
import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

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
TINY_NETWORK = NetworkSize(max_features=8, convs_per_stage=1, batch_size=2)
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
    """nnU-Net's trainer with a description, a network size and schedule, and tiny mode.

    Attributes
    ----------
    axis, what, why : str
        Set in the body of each advertised trainer (not inherited): the axis it varies (loss,
        augmentation, sampling, combined, length, demo, debug, architecture), what it changes
        (a :meth:`str.format` template over the class's attributes) and why (the weakness it targets).
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
    # (not ``network``/``schedule``: nnU-Net's trainer owns ``self.network``)
    network_size: ClassVar[NetworkSize | None] = None
    training_schedule: ClassVar[Schedule | None] = None
    tiny: ClassVar[bool] = False
    tiny_network: ClassVar[NetworkSize] = TINY_NETWORK
    tiny_schedule: ClassVar[Schedule] = TINY_SCHEDULE

    def __init_subclass__(cls, **kwargs) -> None:
        """Refuse conflicting parents; a trainer saying ``what`` it changes, without a docstring, gets one from it."""
        super().__init_subclass__(**kwargs)
        refuse_conflicting_parents(cls)
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


#: what every advertised trainer says in its own body (never a choice between parents)
_OWN = ("axis", "what", "why")


def _provider(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose body defines ``name`` (the one Python takes), or None."""
    return next((k for k in cls.__mro__ if name in vars(k)), None)


def _shown(parent: type, provider: type, name: str) -> str:
    """What ``parent`` sets ``name`` to (and in which class), for the conflict message."""
    value = vars(provider)[name]
    shown = "a method" if callable(value) or isinstance(value, (classmethod, staticmethod, property)) else repr(value)
    return f"{parent.__name__}{'' if provider is parent else f' (from {provider.__name__})'}: {shown}"


def refuse_conflicting_parents(cls: type) -> None:
    """Raise when two parents of ``cls`` set one HECKTOR attribute from unrelated classes.

    The attributes are those the bodies of :class:`HecktorTrainer` and its subclasses define (settings
    and hooks; not dunders, which chain through ``super()``, nor ``axis``/``what``/``why``). Two parents
    agree on one when it comes from the same class, or when one's class derives from the other's (a
    deliberate override, which the MRO takes). An attribute set in ``cls``'s own body is its choice.

    Raises
    ------
    TypeError
        Naming the class, the attribute, both parents and what each sets.
    """
    names = {name for k in cls.__mro__ if issubclass(k, HecktorTrainer)
             for name in vars(k) if not (name.startswith("__") and name.endswith("__"))}
    for name in sorted(names - set(_OWN) - set(vars(cls))):
        found = {}
        for parent in cls.__bases__:
            provider = _provider(parent, name)
            if provider is not None:
                found.setdefault(provider, parent)
        for (a, pa), (b, pb) in combinations(found.items(), 2):
            if not (issubclass(a, b) or issubclass(b, a)):
                raise TypeError(
                    f"{cls.__name__}: its parents {pa.__name__} and {pb.__name__} both set {name!r} "
                    f"({_shown(pa, a, name)}; {_shown(pb, b, name)}), and Python's MRO would silently take "
                    f"{pa.__name__}'s; set {name} in {cls.__name__}'s own body, or drop one of the parents")


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
