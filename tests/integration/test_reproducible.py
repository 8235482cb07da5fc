"""A config plus its seeds gives the same results.csv, byte for byte, whatever the run's history.

The issue: the reference-mode MLP regressor (sklearn's MLP: unscaled inputs, 200 Adam epochs,
unconverged) turns last-bit differences of its inputs into different predictions, and the layer
chosen on validation then flips (LOCO QWK 0.519 vs 0.361). Its inputs differed between runs
because a text's activations depended on the texts it was batched with (the batch was padded to
its longest text) -- so on batch_tokens, on which texts a call extracted, on which rows an
earlier or crashed run had cached -- and the MLP's own output changed with the BLAS thread count.
"""

from __future__ import annotations

from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_model
from learnerprobe.study import runner
from tests.helpers.study import synthetic_records, tiny_config


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
