"""The batched tuned logistic / ordinal sweep on real MERLIN e5-small activations (the cached
ones of configs/merlin-e5.toml) against the per-layer estimators it replaced, on one
leave-one-corpus-out cell (held out: merlin-de) and three layers."""

from __future__ import annotations

import numpy as np
import pytest

LAYERS = [4, 8, 12]


@pytest.fixture(scope="module")
def merlin_de_cell(data_root):
    from learnerprobe.evaluation.protocols import make_splits
    from learnerprobe.study import runner
    from learnerprobe.study.check import load_study

    cfg = load_study("configs/merlin-e5.toml")
    records, _ = runner.load_records(cfg.corpus_configs, cfg.prep)
    data = runner.encode(cfg, records)
    raw = runner.extract_all(data, cfg.models, layers=cfg.layers, extraction=cfg.extraction,
                             execution=cfg.execution, log=lambda s: None, progress=False)
    acts = runner.adapt_activations(raw[cfg.models[0]], data, cfg.layers)
    splits = make_splits("loco", data.y, data.groups, data.corpora, data.languages,
                         folds=cfg.folds, seed=0, val_size=cfg.selection.val_size)
    sp = next(s for s in splits if s.fold == "merlin-de")
    return acts.array[LAYERS], data.y, sp


@pytest.mark.slow  # the per-layer reference fits take ~1 min on the shared 2-core machine
@pytest.mark.parametrize("probe,key", [("logistic", "C_"), ("ordinal", "alpha_")])
def test_batched_sweep_matches_per_layer_fits_on_merlin(merlin_de_cell, probe, key):
    from learnerprobe.estimators.probes import make_probe
    from learnerprobe.estimators.probes.all_layers import fit_predict_layers, standardize_layers
    from learnerprobe.evaluation.metrics import bootstrap_ci, qwk
    from learnerprobe.selection.validation import select_from_predictions

    X, y, sp = merlin_de_cell
    pred_rows = np.concatenate([sp.val, sp.test])
    new = fit_predict_layers(X[:, sp.train], y[sp.train], X[:, pred_rows], probe, mode="tuned",
                             n_classes=5, seed=0)
    Xtr, Xte = standardize_layers(X[:, sp.train], X[:, pred_rows])
    old_pred, same_param = [], 0
    for i in range(len(LAYERS)):
        est = make_probe(probe, mode="tuned", n_classes=5, seed=0, scale=False)
        est.fit(Xtr[i], y[sp.train])
        old_pred.append(est.predict(Xte[i]))
        same_param += getattr(est, key) == new["info"][i][key]
    old_pred = np.stack(old_pred)
    assert (old_pred == new["pred"]).mean(1).min() >= 0.98
    assert same_param >= len(LAYERS) - 1
    nv = sp.val.size
    q = {}
    for tag, pred in (("old", old_pred), ("new", new["pred"])):
        best = select_from_predictions(y[sp.val], pred[:, :nv], "qwk", n_classes=5).layer_index
        q[tag] = (pred[best, nv:], qwk(y[sp.test], pred[best, nv:], labels=5))
    low, high = bootstrap_ci(y[sp.test], q["old"][0], "qwk", n_classes=5, labels=5, n_boot=500)
    assert low <= q["new"][1] <= high
