"""Probe cells through the configured backend: a loop, joblib processes, or Ray tasks.

The runner hands over the same worker function and arguments whichever backend runs them, and a
cell's result depends only on its arguments (data, split, probe, seed), so the backends give the
same cells and the same cell cache entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.execution.session import ensure_ray

# heavy optional import stays local: ray (through ensure_ray, only for the ray backend).

SHARE_BYTES = 1 << 20  # arrays at least this big go to the object store once, not per task


def map_cells(fn: Callable[..., Any], jobs: Sequence[tuple], *, n_jobs: int = 1,
              execution: ExecutionConfig | None = None) -> Iterable[Any]:
    """``fn(*job)`` for every job, yielded as they finish (order not guaranteed).

    local: one job -> a plain loop in this process; more -> joblib processes. ray: one Ray task
    per job (``execution.cell_cpus`` CPUs each); big arrays shared by many jobs (the activations,
    the labels) are put into the object store once and read zero-copy by the tasks.
    """
    if execution is not None and execution.is_ray:
        return _ray_cells(fn, jobs, execution)
    if n_jobs == 1:
        return (fn(*job) for job in jobs)
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(fn)(*job) for job in jobs)


def _ray_cells(fn: Callable[..., Any], jobs: Sequence[tuple],
               execution: ExecutionConfig) -> Iterator[Any]:
    ray = ensure_ray(execution)
    remote = ray.remote(num_cpus=execution.cell_cpus, max_retries=2)(fn)
    shared: dict[int, Any] = {}

    def ref(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.nbytes >= SHARE_BYTES:
            if id(x) not in shared:
                shared[id(x)] = ray.put(x)
            return shared[id(x)]
        return x

    pending = [remote.remote(*(ref(a) for a in job)) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
