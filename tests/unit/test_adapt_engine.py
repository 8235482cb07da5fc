"""The adaptation stage on the engine: adapt cells (one method on one loco_k fold) are cached
like every other cell, their draws round-trip exactly, and a rerun computes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.engine import loco_k as engine_adapt
from learnerprobe.engine.cells import Cell, CellStore, Draws, load_output
from learnerprobe.engine.data import adapt_activations
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.cell_cache import content_key
from learnerprobe.evaluation.protocols import make_splits
from learnerprobe.study import runner
from learnerprobe.study.adapt import adapt_cells, adapt_methods, run_adapt
from tests.helpers.study import fake_activations, synthetic_records, tiny_config

ADAPT = {"k": [0, 5], "repeats": 2, "n_boot": 10}


@pytest.fixture(scope="module")
def setup():
    recs = synthetic_records(n_per_corpus=40)
    cfg = tiny_config(probes=["ridge"], protocols=["loco"], adapt=ADAPT)
    data = runner.encode(cfg, recs)
    acts = {"fake": adapt_activations(fake_activations(recs, data.y, n_layers=3), data,
                                      cfg.layers)}
    return cfg, data, acts


def _kw(cfg):
    return {"seeds": cfg.seeds, "folds": cfg.folds, "val_size": cfg.selection.val_size,
            "refit": cfg.selection.refit, "metric": "qwk", "task": "cefr",
            "log": lambda s: None}


def _same_rows(a, b):
    assert len(a) == len(b) and a
    for r, s in zip(a, b, strict=True):
        assert r.keys() == s.keys()
        for k, v in r.items():
            w = s[k]
            assert v == w or (isinstance(v, float) and math.isnan(v) and math.isnan(w)), k


def test_second_run_loads_every_adapt_cell_from_the_cache(setup, tmp_path, monkeypatch):
    cfg, data, acts = setup
    store = CellStore(tmp_path / "adapt-cells")
    first = run_adapt(cfg.adapt, data, acts, store=store, **_kw(cfg))
    n_cells = len(adapt_cells(adapt_methods(cfg.adapt), list(acts), data, seeds=cfg.seeds,
                              folds=cfg.folds, val_size=cfg.selection.val_size))
    assert len(list((tmp_path / "adapt-cells").rglob("*.npz"))) == n_cells

    def boom(*a, **k):
        raise AssertionError("an adapt cell was computed on a rerun")

    monkeypatch.setattr(engine_adapt.Adapt, "compute", boom)
    monkeypatch.setattr(engine_adapt, "fit_source", boom)
    monkeypatch.setattr(engine_adapt, "predict_draw", boom)
    second = run_adapt(cfg.adapt, data, acts, store=store, **_kw(cfg))
    _same_rows(first.rows, second.rows)
    assert first.manifest == second.manifest
    assert all(v == 0.0 for v in second.timings.values())


def _provider(cfg, data, acts, **over):
    S = surface_columns(np.asarray(surface_features([r.text for r in data.records]),
                                   dtype=np.float64))
    ac = AdaptConfig(**{**ADAPT, **over})
    return engine_adapt.Adapt(ac, acts, data, S, "qwk", cfg.selection.refit)


def test_cached_adapt_cell_round_trips_its_draws(setup, tmp_path):
    cfg, data, acts = setup
    sp = make_splits("loco", data.y, data.groups, data.corpora, data.languages, folds=cfg.folds,
                     seed=0, val_size=cfg.selection.val_size)[0]
    prov = _provider(cfg, data, acts)
    cell = Cell("fake", "tuned", 0, "loco_k", "shift", sp)
    out = prov.compute(cell)
    assert out.draws is not None and len(out.draws.k) == 1 + 2  # k = 0 once, k = 5 twice
    path = CellStore(tmp_path).path(content_key(prov.cache_key(cell)))
    CellStore.save_to(path, out)
    back = load_output(path)
    assert back is not None and back.cached and back.layer_id == out.layer_id
    for f in ("k", "repeat", "offsets", "test", "pred"):
        a, b = getattr(out.draws, f), getattr(back.draws, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    for (k, r, t, p), (k2, r2, t2, p2) in zip(out.draws, back.draws, strict=True):
        assert (k, r) == (k2, r2) and np.array_equal(t, t2) and np.array_equal(p, p2)
    draws = {(d.k, d.repeat): d for d in prov.draws(cell)}
    assert all(np.array_equal(t, draws[(k, r)].test) for k, r, t, _ in back.draws)


def test_empty_draws_round_trip(tmp_path):
    from learnerprobe.engine.cells import CellOutput

    out = CellOutput(np.zeros((1, 0), dtype=np.int64), None, np.zeros(0), None, 0.1,
                     draws=Draws.of([]))
    CellStore.save_to(tmp_path / "e.npz", out)
    back = load_output(tmp_path / "e.npz")
    assert back is not None and back.draws is not None and len(back.draws.k) == 0
    assert list(back.draws.offsets) == [0]


@pytest.mark.parametrize("over", [{"k": [0, 10]}, {"repeats": 3}, {"source": "logistic"}])
def test_adapt_cell_key_names_the_k_grid_repeats_and_source(setup, over):
    cfg, data, acts = setup
    sp = make_splits("loco", data.y, data.groups, data.corpora, data.languages, folds=cfg.folds,
                     seed=0, val_size=cfg.selection.val_size)[0]
    cell = Cell("fake", "tuned", 0, "loco_k", "shift", sp)
    assert (_provider(cfg, data, acts).cache_key(cell)
            != _provider(cfg, data, acts, **over).cache_key(cell))
