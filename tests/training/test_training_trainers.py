"""Every advertised trainer: listed, found by name through nnUNet_extTrainer, trained by nnUNetv2_train."""

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


def _classes_in_trainers_folder() -> set[str]:
    import importlib
    import pkgutil

    names = set()
    for mod in pkgutil.iter_modules([str(TRAINERS_DIR)]):
        m = importlib.import_module(f"hecktor_nnunet.trainers.{mod.name}")
        names |= {n for n, c in inspect.getmembers(m, inspect.isclass)
                  if c.__module__ == m.__name__ and issubclass(c, HecktorTrainer)}
    return names


def test_registry_is_read_from_the_trainer_classes():
    assert set(ALL) == _classes_in_trainers_folder()
    assert len(ALL) == len(set(ALL))
    assert RECOMMENDED in ALL and TINY_TRAINER in ALL and DEMO_TRAINER in ALL
    assert all(n.startswith("nnUNetTrainerHecktor") for n in ALL)
    for cls, info in zip(trainer_classes(), trainers()):
        assert cls.__name__ == info.name
        assert all(cls.__dict__.get(k) for k in ("axis", "what", "why")), cls  # said in its own body
        assert info.what and info.why and "{" not in info.what and cls.__doc__
    assert format_table(markdown=True).count("\n") == len(ALL) + 1


def test_what_shows_the_numbers_the_trainer_runs_with():
    from hecktor_nnunet.trainers.hecktor_trainers_sampling import nnUNetTrainerHecktorNodeSampling

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
    assert mods and all(m.startswith("hecktor_trainers_") for m in mods)
    # importing the trainers folder must not pull MONAI (imported only when SegResNet is built)
    code = ("import sys; sys.path.insert(0, %r); import hecktor_trainers_architecture, hecktor_trainers_length; "
            "print('monai' in sys.modules)" % str(TRAINERS_DIR))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ALL)
def test_found_by_name_through_ext_trainer(name, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINERS_DIR))
    cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name and issubclass(cls, HecktorTrainer)
    assert "build_network_architecture" in dir(cls)


def test_builtin_names_are_not_reused():
    import nnunetv2
    from pathlib import Path

    builtin = "\n".join(p.read_text() for p in Path(nnunetv2.__path__[0], "training").rglob("*.py"))
    assert not [n for n in ALL if f"class {n}(" in builtin]


def test_combinations_inherit_switches():
    sys.path.insert(0, str(TRAINERS_DIR))
    try:
        from hecktor_trainers_architecture import nnUNetTrainerHecktorSegResNetFocalPETAug as SR
        from hecktor_trainers_combined import nnUNetTrainerHecktorFocalTverskyPETAugNodes as FT
        from hecktor_trainers_length import nnUNetTrainerHecktorFocalPETAug_250epochs as E250
    finally:
        sys.path.remove(str(TRAINERS_DIR))
    assert (FT.loss_name, FT.pet_misregistration, FT.pet_intensity, FT.lymph_node_share) == \
        ("focal_tversky", True, True, 0.33)
    assert (E250.training_schedule.epochs, E250.loss_name, E250.pet_intensity) == (250, "dice_ce_focal", True)
    assert (SR.loss_name, SR.pet_misregistration) == ("dice_ce_focal", True)
    assert SR.build_network_architecture is not HecktorTrainer.build_network_architecture


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
