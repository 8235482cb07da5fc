"""A config plus its seeds gives the same results.csv, byte for byte, whatever the run's history.

The issue: the reference-mode MLP regressor (sklearn's MLP: unscaled inputs, 200 Adam epochs,
unconverged) turns last-bit differences of its inputs into different predictions, and the layer
chosen on validation then flips (LOCO QWK 0.519 vs 0.361). Its inputs differed between runs
because a text's activations depended on the texts it was batched with (the batch was padded to
its longest text) -- so on batch_tokens, on which texts a call extracted, on which rows an
earlier or crashed run had cached -- and the MLP's own output changed with the BLAS thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_model
from learnerprobe.probes import make_probe
from learnerprobe.study import runner
from study_helpers import synthetic_records, tiny_config


@pytest.fixture(autouse=True)
def _restore_threads():
    prev = torch.get_num_threads()
    yield
    torch.set_num_threads(prev)


def _study(tmp_path, monkeypatch, name: str, *, batch_tokens: int, prefill: slice | None,
           threads: int):
    """One run on its own caches: activations of a tiny BERT extracted for real (``prefill``
    first extracts part of the texts in a call of their own, as `learnerprobe extract --limit`
    before a study does), then the reference MLPs, leave one corpus out (the issue's cell)."""
    cache = tmp_path / name / "acts"
    recs = synthetic_records(n_per_corpus=24)
    triple = tiny_model("bert")
    kw = dict(fingerprint="tiny-bert-seed0", cache_dir=cache, progress=False)
    if prefill is not None:
        extract(recs[prefill], triple, batch_tokens=batch_tokens, **kw)
    acts = extract(recs, triple, batch_tokens=batch_tokens, **kw)
    cfg = tiny_config(probes=["mlp_reg", "mlp_clf"], mode="reference", protocols=["loco"],
                      layers=[1, 2], n_boot=20, threads=threads)
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / name / "cells"))  # own cell cache
    res = runner.run(cfg, tmp_path / name / "out", records=recs, activations={"fake": acts},
                     log=lambda s: None, progress=False, report=False)
    return (tmp_path / name / "out" / "results.csv").read_bytes(), res


def test_same_config_same_results_csv(tmp_path, monkeypatch):
    a, res = _study(tmp_path, monkeypatch, "a", batch_tokens=16384, prefill=None, threads=1)
    b, _ = _study(tmp_path, monkeypatch, "b", batch_tokens=64, prefill=slice(0, 60, 3),
                  threads=2)
    df = res.results
    assert set(df["mode"]) == {"reference"} and {"mlp_reg", "mlp_clf"} <= set(df["probe"])
    assert set(df["protocol"]) == {"loco"} and len(df) > 0
    assert a == b


def test_reference_mlp_does_not_depend_on_blas_threads():
    """OpenBLAS's results change with its thread count and the unconverged sklearn MLP carries
    that through every epoch; the probe pins BLAS to one thread, so the study's ``threads``
    (not part of the results' digest or cell key) cannot change its predictions."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 96)).astype(np.float32)
    y = np.clip(np.rint(X[:, :4].sum(1) / 2 + 2), 0, 4).astype(int)
    for probe in ("mlp_reg", "mlp_clf"):
        outs = []
        for threads in (1, 2):
            with threadpool_limits(threads):
                est = make_probe(probe, mode="reference", n_classes=5, width=128, seed=0)
                est.fit(X[:200], y[:200])
                outs.append(est._output(X[200:]))
        np.testing.assert_array_equal(outs[0], outs[1])
