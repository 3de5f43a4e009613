"""One way to run per-patient work: joblib over processes (or a Dask cluster), with a progress bar.

Convert, radiomics and evaluate all call :func:`parallel_map`; swapping the executor (local
processes today, ``backend="dask"`` against a cluster tomorrow) changes no calling code.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Iterator, Sequence

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def parallel_map(
    func: Callable[..., Any],
    items: Sequence[Any],
    workers: int = 1,
    desc: str = "",
    quiet: bool = False,
    dask_scheduler: str | None = None,
) -> Iterator[Any]:
    """Apply ``func`` to every item, yielding results in completion order.

    Parameters
    ----------
    func : callable
        A picklable function of one argument. It should catch its own per-item failures and
        return them as values, so one bad patient never stops the others.
    items : sequence
        The work items.
    workers : int
        Number of processes (1 = run in this process, easiest to debug).
    desc : str
        Progress-bar label.
    quiet : bool
        Hide the progress bar.
    dask_scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); the same work then runs on
        that cluster through joblib's Dask backend.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, disable=quiet, unit="case")
    client = None
    try:
        if dask_scheduler is not None:
            from distributed import Client  # imported lazily: optional dependency

            client = Client(dask_scheduler)
            ctx: Any = parallel_config(backend="dask", wait_for_workers_timeout=60)
        else:
            ctx = nullcontext()
        with ctx:
            if workers <= 1 and dask_scheduler is None:
                results: Iterable[Any] = (func(item) for item in items)
            else:
                n_jobs = -1 if dask_scheduler is not None else workers
                results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                    delayed(func)(item) for item in items
                )
            for result in results:
                bar.update(1)
                yield result
    finally:
        bar.close()
        if client is not None:
            client.close()
