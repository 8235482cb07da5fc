"""Memory of the study engine does not grow with the number of fits (issue 21, item 4).

A 3-corpus study of 20,000 texts x 13 layers (hidden size 32: the point is the scaling, not
the width) runs the transfer stage with 2 and with 4 candidate layers, i.e. N and about 2N
nested-LOCO fits. Traced allocations (numpy's included) must peak at the same height: the
stage keeps the activations once (memory-mapped, not traced) and holds a few fits' inputs at a
time. Before, every fit's design matrix (float64, training rows) was built before the first fit
and every fit's predictions were kept until the method was done, so the peak doubled with the
fits (here ~70 MB -> ~140 MB).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from learnerprobe.config.load import parse_config
from learnerprobe.engine.data import adapt_activations, encode
from learnerprobe.engine.nested import Fitting, take_layers
from learnerprobe.engine.score import Scoring
from learnerprobe.study.synthetic import (
    SyntheticShape,
    synthetic_study,
)
from learnerprobe.study.transfer import run_transfer

MB = 1 << 20
SHAPE = SyntheticShape(corpora=3, texts=20_000, layers=13, hidden=32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memory")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEARNERPROBE_CACHE", str(tmp / "cache"))
    base = parse_config({"name": "mem", "corpora": ["x"], "models": ["x"], "probes": ["surface"],
                         "protocols": ["loco"], "n_boot": 10, "labels": {"scheme": "five"},
                         "cache_cells": False, "n_jobs": 1})
    # ten texts per author: grouped splits of 10,000 authors cost more than the fits
    cfg, recs, raw = synthetic_study(base, SHAPE, tmp / "acts", texts_per_author=10)
    data = encode(cfg, recs)
    acts = {m: adapt_activations(a, data, cfg.layers) for m, a in raw.items()}
    yield cfg, data, acts
    mp.undo()


def _transfer_peak(cfg, data, acts, layers: list[int]) -> tuple[float, int]:
    """(traced peak in MB above the start, fits) of the transfer stage with ``layers``."""
    tc = parse_config({"name": "t", "corpora": ["x"], "models": ["x"],
                       "transfer": {"methods": ["plain"], "layers": layers}}).transfer
    logs: list[str] = []
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        res = run_transfer(tc, data, acts, seeds=cfg.seeds, folds=cfg.folds,
                           val_size=cfg.selection.val_size, with_surface=True,
                           scoring=Scoring(cfg.task, cfg.n_boot, 0, cfg.shared_levels, "ordinal"),
                           fitting=Fitting(1, 1, False), log=logs.append)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.rows
    fits = int(next(line for line in logs if "transfer plain:" in line).split()[2])
    return (peak - start) / MB, fits


@pytest.mark.slow  # ~3 min on a 2-core machine, 15+ min at load 15: 42 logistic fits on 13,000 x 35
@pytest.mark.timeout(2400)
def test_transfer_peak_does_not_grow_with_the_number_of_fits(study):
    cfg, data, acts = study
    assert isinstance(acts["synthetic"].array.base, np.memmap) or isinstance(
        acts["synthetic"].array, np.memmap)
    small, n_small = _transfer_peak(cfg, data, acts, [2, 4])
    big, n_big = _transfer_peak(cfg, data, acts, [2, 4, 6, 8])
    assert n_big >= 1.7 * n_small  # 15 vs 27 fits (3 outer x 2 inner x layers + 3 refits)
    # one fit's inputs here: ~13,000 training rows x 35 float64 columns ~ 3.7 MB
    assert big <= 1.15 * small + 2, (
        f"transfer stage peak grew with the fits: {small:.0f} MB for {n_small} fits, "
        f"{big:.0f} MB for {n_big}")


def test_candidate_layers_stay_a_view_of_the_activations():
    """Evenly spaced layers (``all``, ``[4, 6, 8, 10]``) are a view: a memory-mapped array stays
    mapped, and worker processes receive the file, not a copy; others are copied."""
    arr = np.arange(13 * 4 * 2, dtype=np.float32).reshape(13, 4, 2)
    for pos in ([4, 6, 8, 10], list(range(13)), [7]):
        v = take_layers(arr, pos)
        assert np.shares_memory(v, arr) and np.array_equal(v, arr[pos])
    c = take_layers(arr, [1, 2, 5])
    assert not np.shares_memory(c, arr) and np.array_equal(c, arr[[1, 2, 5]])
