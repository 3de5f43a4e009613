"""Every advertised trainer: listed, found by name through nnUNet_extTrainer as the very class the package
defines, combined only when its parents agree, trained by nnUNetv2_train."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

from hecktor_nnunet.training.base_trainer import HecktorTrainer
from hecktor_nnunet.training.registry import (DEMO_TRAINER, RECOMMENDED, TINY_TRAINER, TRAINERS_DIR,
                                              describe, format_table, trainer_classes, trainer_names, trainers)

ALL = trainer_names()


def test_registry_is_read_from_the_trainer_classes():
    from hecktor_nnunet.training import variants

    defined = {n for n, c in inspect.getmembers(variants, inspect.isclass)
               if c.__module__ == variants.__name__ and issubclass(c, HecktorTrainer)}
    assert set(ALL) == defined
    assert len(ALL) == len(set(ALL))
    assert RECOMMENDED in ALL and TINY_TRAINER in ALL and DEMO_TRAINER in ALL
    assert all(n.startswith("nnUNetTrainerHecktor") for n in ALL)
    for cls, info in zip(trainer_classes(), trainers()):
        assert cls.__name__ == info.name
        assert all(cls.__dict__.get(k) for k in ("axis", "what", "why")), cls  # said in its own body
        assert info.what and info.why and "{" not in info.what and cls.__doc__
    assert format_table(markdown=True).count("\n") == len(ALL) + 1


def test_what_shows_the_numbers_the_trainer_runs_with():
    from hecktor_nnunet.training.variants import nnUNetTrainerHecktorNodeSampling

    class Half(nnUNetTrainerHecktorNodeSampling):
        axis, what, why = "sampling", nnUNetTrainerHecktorNodeSampling.what, "a test"
        lymph_node_share = 0.5

    assert describe(nnUNetTrainerHecktorNodeSampling).what.startswith("33% of training patches")
    assert describe(Half).what.startswith("50% of training patches") and Half.__doc__.startswith("50% of")
    demo = describe(next(c for c in trainer_classes() if c.__name__ == DEMO_TRAINER)).what
    s = next(c for c in trainer_classes() if c.__name__ == DEMO_TRAINER).training_schedule
    assert f"{s.epochs} epochs x {s.iterations_per_epoch} iterations" in demo

    class Silent(nnUNetTrainerHecktorNodeSampling):
        lymph_node_share = 0.5

    with pytest.raises(ValueError, match="does not say its axis, what, why"):
        describe(Silent)


def test_trainer_modules_have_distinctive_names_and_import_cheaply():
    import pkgutil

    mods = [m.name for m in pkgutil.iter_modules([str(TRAINERS_DIR)])]
    assert mods and all(m.startswith("hecktor_trainers") for m in mods)
    # importing the trainers folder must not pull MONAI (imported only when SegResNet is built)
    code = ("import sys; sys.path.insert(0, %r); import %s; print('monai' in sys.modules)"
            % (str(TRAINERS_DIR), ", ".join(mods)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ext_trainer_lookups_and_imports_give_the_same_class_object(monkeypatch):
    """nnU-Net imports the trainers folder by bare module names and drops them after each lookup."""
    import importlib

    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINERS_DIR))
    door = importlib.import_module("hecktor_nnunet.trainers.hecktor_trainers")
    for cls in trainer_classes():
        name = cls.__name__
        first = recursive_find_trainer_class_by_name(name)          # as nnUNetv2_train and the predictor call it
        again = recursive_find_trainer_class_by_name(name)
        direct = recursive_find_python_class(str(TRAINERS_DIR), name, None, base_folder=str(TRAINERS_DIR),
                                             cleanup_imports_from_base_folder=True)
        assert first is again is direct is cls is getattr(door, name), name
        assert issubclass(cls, HecktorTrainer) and "build_network_architecture" in dir(cls)


def test_builtin_names_are_not_reused():
    import nnunetv2
    from pathlib import Path

    builtin = "\n".join(p.read_text() for p in Path(nnunetv2.__path__[0], "training").rglob("*.py"))
    assert not [n for n in ALL if f"class {n}(" in builtin]


def test_combinations_inherit_each_parents_behaviour():
    from hecktor_nnunet.training.behaviours import HecktorSegResNet
    from hecktor_nnunet.training.losses import DiceCEFocal, TverskyCE
    from hecktor_nnunet.training.transforms import PETIntensity, PETMisregistration
    from hecktor_nnunet.training.variants import (nnUNetTrainerHecktorFocalPETAug_250epochs as E250,
                                                  nnUNetTrainerHecktorFocalTverskyPETAugNodes as FT,
                                                  nnUNetTrainerHecktorSegResNetFocalPETAug as SR)

    assert (FT.loss_recipe, FT.pet_misregistration, FT.pet_intensity, FT.lymph_node_share) == \
        (TverskyCE(exponent=0.75), PETMisregistration(), PETIntensity(), 0.33)
    assert (E250.training_schedule.epochs, E250.loss_recipe, E250.pet_intensity) == (250, DiceCEFocal(), PETIntensity())
    assert (SR.loss_recipe, SR.pet_misregistration) == (DiceCEFocal(), PETMisregistration())
    assert SR.build_network_architecture is HecktorSegResNet.build_network_architecture


def _hook_owners(cls: type) -> dict[str, type]:
    """The class of ``cls``'s MRO that defines each of nnU-Net's trainer methods ``cls`` overrides."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    hooks = [n for n in vars(nnUNetTrainer) if not n.startswith("__")]
    owners = {n: next(k for k in cls.__mro__ if n in vars(k)) for n in hooks}
    return {n: k for n, k in owners.items() if k is not nnUNetTrainer}


def test_each_behaviour_lives_in_one_class():
    from hecktor_nnunet.training import behaviours

    owners: dict[str, set[type]] = {}
    for cls in trainer_classes():
        for hook, owner in _hook_owners(cls).items():
            assert owner.__module__ == behaviours.__name__, (cls, hook, owner)   # never a trainer's own body
            owners.setdefault(hook, set()).add(owner)
    assert {h: [k.__name__ for k in o] for h, o in owners.items()} == {h: [k] for h, k in {
        "_build_loss": "HecktorLoss", "get_training_transforms": "HecktorPETAugmentation",
        "configure_rotation_dummyDA_mirroring_and_inital_patch_size": "HecktorMirroring",
        "get_dataloaders": "HecktorNodeSampling", "build_network_architecture": "HecktorSegResNet",
        "set_deep_supervision_enabled": "HecktorSegResNet"}.items()}   # one owner per hook


@pytest.mark.parametrize("parents,attribute", [
    (("nnUNetTrainerHecktorFocal", "nnUNetTrainerHecktorTversky"), "loss_recipe"),
    (("nnUNetTrainerHecktorFocalPETAug_250epochs", "nnUNetTrainerHecktorFocalPETAug_500epochs"), "training_schedule"),
    (("nnUNetTrainerHecktorDemoCPU", "nnUNetTrainerHecktorFocalPETAug"), "loss_recipe"),
    (("nnUNetTrainerHecktorSegResNetFocalPETAug", "nnUNetTrainerHecktorFocalTverskyPETAugNodes"), "loss_recipe"),
])
def test_a_combination_whose_parents_set_the_same_thing_is_refused_at_class_creation(parents, attribute):
    from hecktor_nnunet.training import variants

    bases = tuple(getattr(variants, p) for p in parents)
    with pytest.raises(TypeError, match=rf"parents {parents[0]} and {parents[1]} both set '{attribute}'"):
        type("Both", bases, {})
    chosen = type("Chosen", bases, {attribute: getattr(bases[1], attribute)})   # its own body decides
    assert getattr(chosen, attribute) == getattr(bases[1], attribute)


def test_parents_that_set_different_things_or_override_on_purpose_combine():
    from hecktor_nnunet.training import variants

    class MirroredRecipe(variants.nnUNetTrainerHecktorMirrorLR, variants.nnUNetTrainerHecktorFocalPETAug):
        pass

    assert MirroredRecipe.mirror_left_right_only
    assert MirroredRecipe.loss_recipe == variants.nnUNetTrainerHecktorFocal.loss_recipe

    class Longer(variants.nnUNetTrainerHecktorFocalPETAug_250epochs, variants.nnUNetTrainerHecktorPETAug):
        pass  # PETAug's settings are the ones the recommended trainer inherits: no conflict

    assert Longer.training_schedule.epochs == 250


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_trains_through_nnunetv2_train(name, trained, nnunet_dataset):
    p = trained[name]
    assert p.returncode == 0, f"nnUNetv2_train -tr {name} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    assert "Tiny mode" in p.stdout
    model = nnunet_dataset.model_dir(name)
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["trainer_name"] == name
    assert list((model / "fold_0" / "validation").glob("*.nii.gz")), "final validation wrote no prediction"
    if "SegResNet" in name:
        assert any(k.startswith("convInit") for k in ckpt["network_weights"])
