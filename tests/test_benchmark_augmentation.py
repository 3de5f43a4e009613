"""``benchmarks/augmentation.py``'s re-seeding: the same augmentation draws per sample, whatever the sampler drew."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "augmentation.py"


def _module():
    spec = importlib.util.spec_from_file_location("augmentation_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _draws(**data):
    return {"np": np.random.uniform(size=3).tolist(), "torch": torch.rand(2).tolist(), "py": random.random(), **data}


def test_each_sample_gets_the_same_draws_whatever_was_drawn_before():
    bench = _module()
    a, b = bench.Reseeded(_draws), bench.Reseeded(_draws)
    for batch_seed in (3, 4):
        a.start(batch_seed)
        b.start(batch_seed)
        for _ in range(2):  # two samples per batch; b's "sampler" uses up other draws first
            np.random.uniform(size=5), torch.rand(7), random.random()
            first = a(image=1)
            np.random.randint(0, 10, size=11)
            assert b(image=1) == first
    a.start(3)
    assert a(image=1) != a(image=1)  # the second sample of a batch draws anew


def test_the_pet_transforms_own_generators_are_reseeded_without_touching_the_global_ones():
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms

    from hecktor_nnunet.training.transforms import (PETIntensityTransform, PETMisregistrationTransform,
                                                    SpatialTransformWithPETMotion)

    bench = _module()

    def pipeline():
        motion = PETMisregistrationTransform(1, (2.0, 1.0, 1.0), p=0.5)
        spatial = SpatialTransformWithPETMotion(SpatialTransform((8, 8, 8), 0, 0, False), motion)
        return ComposeTransforms([spatial, PETIntensityTransform(1, (2.0, 1.0, 1.0))])

    a, b = bench.Reseeded(pipeline()), bench.Reseeded(pipeline())
    assert len(a.own) == 2  # the motion's (inside the folded spatial transform) and the intensity transform's
    a.transforms = b.transforms = lambda **data: data  # the generators are what is checked here
    draws = []
    for wrapper in (a, b):
        np.random.uniform(size=3 if wrapper is b else 1)  # other global draws before: no effect
        for g in wrapper.own:  # in use already, seeded from different global states
            g().uniform(size=2 if wrapper is b else 1)
        wrapper.start(5)
        wrapper(image=0)
        draws.append([g().uniform() for g in wrapper.own] + [np.random.uniform()])
    assert draws[0] == draws[1]
