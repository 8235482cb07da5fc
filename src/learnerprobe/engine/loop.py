"""The one loop: cells -> (cache or provider) -> outputs, side by side where the provider allows.

Every study stage and every task goes through :func:`run_cells`: the probe stage (probes and
the surface baseline over every protocol's folds), the transfer stage (nested providers over
the LOCO folds), the adapt stage (adapt providers over the ``loco_k`` folds), the NLI
protocol (text classifiers over grouped folds), and ``learnerprobe train`` (the same providers on one fold holding all the data). A provider says whether its
cells run side by side in worker processes (``parallel``: a plain function and picklable
arguments, big arrays first so that the Ray backend shares them) or one after the other in this
process (a nested provider parallelises its own fits; an NLI classifier may be a whole language
model), and what goes into its cache key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.engine.cells import Cell, CellOutput, CellStore
from learnerprobe.evaluation.cell_cache import content_key
from learnerprobe.execution.cells import map_cells


class Provider(Protocol):
    """How one method family turns cells into outputs (:mod:`learnerprobe.engine.providers`)."""

    kind: str
    parallel: bool

    def cache_key(self, cell: Cell) -> dict[str, Any] | None:
        """Everything that determines the cell's output (None: not cached as a cell)."""

    def cache_prefix(self, cell: Cell) -> str:
        """A readable start of the cache file's name ("" for none)."""

    def job(self, cell: Cell) -> tuple[Callable[..., CellOutput], tuple]:
        """``(worker, args)`` for a worker process (``parallel`` providers)."""

    def compute(self, cell: Cell) -> CellOutput:
        """The cell's output, computed in this process."""

    def layer_names(self, cell: Cell) -> list[str]:
        """The ``layer`` value of each row of the output's layer axis."""


def _work(ck: tuple, fn: Callable[..., CellOutput], path: Path | None, threads: int,
          *args: Any) -> tuple[tuple, CellOutput]:
    """Worker: one cell with a bounded BLAS/OpenMP thread pool, cached as soon as it is done.

    Unbounded thread pools of cells side by side oversubscribe the cores (on a busy 2-core
    machine a logistic fit went from 0.3 s to 3 s)."""
    t0 = time.perf_counter()
    with threadpool_limits(threads):
        r = fn(*args)
    r.seconds = r.seconds or time.perf_counter() - t0
    if path is not None:
        CellStore.save_to(path, r)
    return ck, r


def run_cells(cells: Sequence[Cell], providers: Mapping[str, Provider], *,
              store: CellStore | None, n_jobs: int = 1, threads: int = 1,
              execution: ExecutionConfig | None = None,
              on_done: Callable[[Cell, CellOutput], None] | None = None
              ) -> dict[tuple, CellOutput]:
    """Every cell's output (``Cell.key`` -> output): from ``store`` when cached there, else
    computed by the provider of its method (``providers[cell.method]``) and saved.
    ``on_done`` sees each output as it arrives (progress, timings)."""
    results: dict[tuple, CellOutput] = {}
    by_key = {c.key: c for c in cells}
    parallel: list[tuple] = []
    serial: list[tuple[Cell, Path | None]] = []
    for cell in cells:
        prov = providers[cell.method]
        key = prov.cache_key(cell) if store is not None else None
        path = (store.path(content_key(key), prefix=prov.cache_prefix(cell))
                if store is not None and key is not None else None)
        r = store.load(path) if store is not None and path is not None else None
        if r is not None:
            results[cell.key] = r
            if on_done is not None:
                on_done(cell, r)
        elif prov.parallel:
            fn, args = prov.job(cell)
            parallel.append((cell.key, fn, path, threads, *args))
        else:
            serial.append((cell, path))
    for ck, r in map_cells(_work, parallel, n_jobs=n_jobs, execution=execution):
        results[ck] = r
        if on_done is not None:
            on_done(by_key[ck], r)
    for cell, path in serial:
        t0 = time.perf_counter()
        r = providers[cell.method].compute(cell)
        r.seconds = r.seconds or time.perf_counter() - t0
        if path is not None:
            CellStore.save_to(path, r)
        results[cell.key] = r
        if on_done is not None:
            on_done(cell, r)
    return results
