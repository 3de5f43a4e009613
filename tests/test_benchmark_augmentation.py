"""``benchmarks/augmentation.py`` times the trainers' work only: same draws, shared blur choices, fastest draw."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
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
    assert a.seeding[1] > 0  # the seconds spent re-seeding, for the timing to leave out
    a.start(3)
    assert a.seeding == (0.0, 0.0)
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


def test_nnunets_blur_choices_are_made_before_the_timing_and_shared():
    from types import SimpleNamespace

    from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform, _compute_kernel_size
    from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
    from batchgeneratorsv2.transforms.utils.random import RandomTransform

    bench = _module()

    def loader():  # what the benchmark reaches: loader.data_loader.transforms (Reseeded).transforms
        blur = GaussianBlurTransform((0.5, 1.0), benchmark=True)
        pipeline = bench.Reseeded(ComposeTransforms([RandomTransform(blur, apply_probability=0.2)]))
        return SimpleNamespace(data_loader=SimpleNamespace(transforms=pipeline)), blur

    (a, blur_a), (b, blur_b) = loader(), loader()
    table = bench.share_blur_choices({"stock": a, "variant": b}, (6, 10, 10))
    assert blur_a.benchmark_use_fft is table and blur_b.benchmark_use_fft is table
    sizes = {_compute_kernel_size(s) for s in np.linspace(0.5, 1.0, 101)}
    assert sizes == {3, 5} and {n: set(k) for n, k in table.items()} == {6: sizes, 10: sizes}


def test_each_batch_counts_its_fastest_draw_without_the_reseeding():
    import time
    from types import SimpleNamespace

    bench = _module()
    burn = iter([0.03, 0.01, 0.02] * 2)  # CPU seconds of the three draws of each batch

    class Loader:
        def __init__(self):
            self.data_loader = SimpleNamespace(transforms=bench.Reseeded(lambda **data: data))

        def __next__(self):
            self.data_loader.transforms(image=0)
            end = time.process_time() + next(burn)
            while time.process_time() < end:
                pass

    spent = bench.time_round({"stock": Loader()}, n=2, round_index=0, repeats=3)["stock"]
    assert len(spent) == 2
    for cpu, wall in spent:
        assert 0.01 <= cpu < 0.015 and wall >= 0.01


def test_a_count_below_one_is_refused_before_any_work(capsys):
    bench = _module()
    for option in ("--batches", "--rounds", "--repeats"):
        with pytest.raises(SystemExit) as exit_info:
            bench.main([option, "0", "--work", "/nonexistent/never-created"])
        assert exit_info.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err
