"""Activation cache: hits do no model work, crashes resume, keys follow the configuration."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from learnerprobe.extract import engine, extract
from learnerprobe.extract.activation_cache import ActivationCache
from learnerprobe.models.testing import tiny_model
from tests.helpers.extract import TEXTS, text_records

_records = text_records


@functools.lru_cache(maxsize=4)
def _tiny(kind: str, side: str):
    """Built once per session: the engine never modifies a loaded model."""
    return tiny_model(kind, padding_side=side)


class CountingLoader:
    """A model loader that counts calls; ``fail`` makes any call an error."""

    def __init__(self, kind: str = "bert", fail: bool = False) -> None:
        self.kind, self.fail, self.calls = kind, fail, 0

    def __call__(self, entry, device="cpu", dtype=None):
        self.calls += 1
        if self.fail:
            raise AssertionError("the model must not be loaded on a cache hit")
        tok, model, _ = _tiny(self.kind, entry.padding_side)
        return tok, model, entry


def _run(tmp_path: Path, loader, records=None, entry=None, **kw):
    entry = entry or tiny_model("bert")[2]
    return extract(
        records or _records(),
        entry,
        loader=loader,
        fingerprint="tiny-bert-seed0",
        cache_dir=tmp_path,
        progress=False,
        batch_tokens=256,
        **kw,
    )


def test_second_call_is_a_cache_hit_without_loading(tmp_path):
    first_loader = CountingLoader()
    a = _run(tmp_path, first_loader)
    assert first_loader.calls == 1 and not a.cache_hit and a.texts_computed == len(TEXTS)
    b = _run(tmp_path, CountingLoader(fail=True))
    assert b.cache_hit and b.texts_computed == 0 and b.tokens_computed == 0
    np.testing.assert_array_equal(a.array, b.array)
    assert b.ids == [f"t{i}" for i in range(len(TEXTS))]
    assert b.n_truncated == a.n_truncated and b.tokens == a.tokens
    # the same rows in another order: still no model work, rows follow the request
    rev = _records()[::-1]
    c = _run(tmp_path, CountingLoader(fail=True), records=rev)
    assert c.cache_hit
    np.testing.assert_array_equal(c.array, a.array[:, ::-1])


def test_changed_text_under_same_id_is_recomputed(tmp_path):
    a = _run(tmp_path, CountingLoader())
    recs = _records()
    recs[3] = dataclasses.replace(recs[3], text="Ein ganz anderer Text.")
    loader = CountingLoader()
    b = _run(tmp_path, loader, records=recs)
    assert loader.calls == 1 and b.texts_computed == 1 and not b.cache_hit
    assert not np.allclose(a.array[:, 3], b.array[:, 3])
    np.testing.assert_array_equal(np.delete(a.array, 3, 1), np.delete(b.array, 3, 1))


def test_superset_reuses_existing_rows(tmp_path):
    a = _run(tmp_path, CountingLoader(), records=_records()[:5])
    loader = CountingLoader()
    b = _run(tmp_path, loader, records=_records())
    assert b.texts_computed == len(TEXTS) - 5 and not b.cache_hit
    np.testing.assert_array_equal(b.array[:, :5], a.array)
    fresh = extract(_records(), tiny_model("bert"), cache=False, progress=False)
    np.testing.assert_allclose(b.array, fresh.array, atol=1e-5)


def test_resume_after_crash_computes_only_missing_rows(tmp_path, monkeypatch):
    def crash_at_batch_2(bi: int) -> None:
        if bi >= 2:
            raise RuntimeError(f"simulated crash after {bi} batches")

    monkeypatch.setattr(engine, "_FAULT_HOOK", crash_at_batch_2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path, CountingLoader())
    monkeypatch.setattr(engine, "_FAULT_HOOK", None)
    cache = ActivationCache(next(p for p in tmp_path.iterdir() if p.is_dir()))
    (shard,) = cache.shards
    assert not shard.complete and not (shard.path / "COMPLETE").exists()
    n_done = int(shard.done.sum())
    assert 0 < n_done < len(TEXTS)
    loader = CountingLoader()
    b = _run(tmp_path, loader)
    assert loader.calls == 1 and b.texts_computed == len(TEXTS) - n_done
    assert (shard.path / "COMPLETE").exists()
    fresh = extract(_records(), tiny_model("bert"), cache=False, progress=False)
    np.testing.assert_allclose(b.array, fresh.array, atol=1e-5)
    assert _run(tmp_path, CountingLoader(fail=True)).cache_hit


def test_cache_key_follows_configuration(tmp_path):
    tok, model, entry = tiny_model("bert")
    base = _run(tmp_path, CountingLoader(), entry=entry).cache_path
    assert _run(tmp_path, CountingLoader(fail=True), entry=entry).cache_path == base
    changed = {
        "template": dataclasses.replace(entry, template="query: {text}"),
        "task": dataclasses.replace(entry, task="Assess", template="{task}: {text}"),
        "max_length": dataclasses.replace(entry, max_length=64),
        "pooling": dataclasses.replace(entry, pooling="cls"),
    }
    paths = {base}
    for what, e in changed.items():
        acts = _run(tmp_path, CountingLoader(), entry=e)
        assert not acts.cache_hit, what
        paths.add(acts.cache_path)
    assert _run(tmp_path, CountingLoader(), entry=entry, max_length=32).cache_path not in paths
    assert _run(tmp_path, CountingLoader(), entry=entry, dtype="bf16").cache_path not in paths
    assert len(paths) == 1 + len(changed)
    config = json.loads((base / "config.json").read_text())
    assert config["max_length"] == entry.max_length and config["template"] == entry.template
    # a different weights fingerprint is a different cache
    other = extract(_records(), entry, loader=CountingLoader(), fingerprint="other",
                    cache_dir=tmp_path, progress=False)
    assert other.cache_path != base and not other.cache_hit


def test_layer_subset_served_from_full_cache(tmp_path):
    full = _run(tmp_path, CountingLoader())
    sub = _run(tmp_path, CountingLoader(fail=True), layers=[0, -1])
    assert sub.cache_hit and sub.layers == [0, 2]
    np.testing.assert_array_equal(sub.array, full.array[[0, 2]])


def test_uncached_run_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    acts = extract(TEXTS[:3], tiny_model("bert"), cache=False, progress=False)
    assert acts.cache_path is None and np.isfinite(acts.array).all()
    assert list(tmp_path.iterdir()) == []
    assert os.environ["TMPDIR"] == str(tmp_path)
