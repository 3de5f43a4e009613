"""The whole GPU check in one command: learning, inference, step time (``make gpu-check``).

    python -m benchmarks.gpu                               # CUDA machine, ~8-10 min on one H100/H200 (estimated)
    python -m benchmarks.gpu --device cpu --tiny           # the CPU dry run the test suite executes
    python -m benchmarks.gpu --budget-s 360 --warmup 10 --iters 20     # fits a 15-minute GPU lease

The parts run in this order (:mod:`benchmarks.gpu.learning`, :mod:`benchmarks.gpu.inference`,
:mod:`benchmarks.gpu.step_time`, each also runnable alone), the step-time dataset built on the CPUs in
its own process while the learners train on the GPU. Each finished part (each step-time row) is
written to the results file at once, so a run stopped from outside keeps it; ``--budget-s`` starts no
step-time trainer after that many seconds of the whole check. Then ``python benchmarks/tables.py``
writes the block of ``docs/benchmarks.md`` from the results file.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.gpu.common import Check, OwnProcess, build_timing_dataset, nnunet_env, parser, record, run_check
from benchmarks.gpu.inference import inference
from benchmarks.gpu.learning import build_learning_dataset, default_length, learning, summary
from benchmarks.gpu.report import markdown
from benchmarks.gpu.step_time import add_step_arguments, defaults, step_time


def whole_check(check: Check, a: argparse.Namespace) -> dict:
    """Every part, in order, each recorded as it finishes; the results file's content."""
    deadline = time.perf_counter() + a.budget_s if a.budget_s is not None else float("inf")
    timing = OwnProcess(build_timing_dataset, check.work, check.tiny, env=nnunet_env(check.work),
                        log=check.work / "logs" / "timing_dataset.log")
    t0 = time.perf_counter()
    build_learning_dataset(check)
    t1 = time.perf_counter()
    part = learning(check, a.length or default_length(check.tiny))
    record(check, {"learning_dataset": round(t1 - t0, 1), "learning": round(time.perf_counter() - t1, 1)},
           learning=part)
    print(summary(part), flush=True)
    t0 = time.perf_counter()
    timing.result()
    t1 = time.perf_counter()
    part = inference(check)  # before the step time: it is short, and the step time may meet --budget-s
    t2 = time.perf_counter()
    record(check, {"timing_dataset_wait": round(t1 - t0, 1), "inference": round(t2 - t1, 1)}, inference=part)
    d = defaults(check.tiny)
    part = step_time(check, d["warmup"] if a.warmup is None else a.warmup, d["iters"] if a.iters is None else a.iters,
                     d["da_workers"] if a.da_workers is None else a.da_workers, deadline)
    return record(check, {"step_time": round(time.perf_counter() - t2, 1)}, step_time=part)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__spec__.name, __doc__)
    ap.add_argument("--length", default=None, help="learning length EPOCHSxITERATIONSxVALIDATION_ITERATIONS "
                                                   "(default 10x100x5)")
    add_step_arguments(ap)
    a = ap.parse_args(argv)
    return run_check(a, lambda check: print("\n" + markdown(whole_check(check, a)) + f"\nwritten {check.out}"))


if __name__ == "__main__":
    raise SystemExit(main())
