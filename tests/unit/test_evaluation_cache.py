"""The shared cell cache: content keys, atomic writes under concurrency, corrupt entries miss."""

import multiprocessing as mp
import threading

import numpy as np
import pytest

from learnerprobe.evaluation.cell_cache import CellCache, content_key, read_npz, write_npz
from learnerprobe.outputs import OutputError


def test_content_key_is_canonical():
    a = content_key({"probe": "ridge", "seed": 0, "layers": [1, 2]})
    assert a == content_key({"layers": [1, 2], "seed": 0, "probe": "ridge"})
    assert a != content_key({"probe": "ridge", "seed": 1, "layers": [1, 2]})
    assert len(a) == 64


def test_paths_and_round_trip(tmp_path):
    sharded = CellCache(tmp_path / "cells", shard=True)
    key = content_key({"x": 1})
    assert sharded.path(key) == tmp_path / "cells" / key[:2] / f"{key}.npz"
    named = CellCache(tmp_path / "nli")
    assert named.path(key[:20], prefix="ngram-seed0-").name == f"ngram-seed0-{key[:20]}.npz"
    assert named.load(key) is None  # absent: a miss
    named.save(key, {"proba": np.eye(2), "selected": 3})
    back = named.load(key, required=("proba", "selected"))
    assert int(back["selected"]) == 3 and np.array_equal(back["proba"], np.eye(2))
    assert named.load(key, required=("missing",)) is None
    assert [p.name for p in (tmp_path / "nli").iterdir()] == [f"{key}.npz"]  # no temp left


def _entry(writer: int, n: int = 20_000) -> dict[str, np.ndarray]:
    v = np.full(n, writer, dtype=np.int64)
    return {"v": v, "writer": np.int64(writer), "total": np.int64(v.sum())}


def _is_whole(z) -> bool:
    return z is not None and int(z["v"].sum()) == int(z["total"]) and (z["v"] == z["writer"]).all()


def _write_many(path, writer: int, times: int) -> None:
    for _ in range(times):
        write_npz(path, _entry(writer))


def test_concurrent_writers_of_one_key_never_leave_a_corrupt_entry(tmp_path):
    path = tmp_path / "cells" / "same-key.npz"
    write_npz(path, _entry(0))
    stop = threading.Event()
    bad: list[object] = []

    def reader():
        while not stop.is_set():
            z = read_npz(path)
            if not _is_whole(z):
                bad.append(z)

    threads = [threading.Thread(target=_write_many, args=(path, w, 15)) for w in range(1, 5)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert bad == []
    assert _is_whole(read_npz(path))
    assert [p.name for p in path.parent.iterdir()] == ["same-key.npz"]  # temp files all gone


def test_concurrent_processes_of_one_key(tmp_path):
    path = tmp_path / "same-key.npz"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, w, 10)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    assert _is_whole(read_npz(path))
    assert [p.name for p in tmp_path.iterdir()] == ["same-key.npz"]


def test_truncated_or_corrupt_entries_are_misses(tmp_path):
    cache = CellCache(tmp_path)
    key = content_key("k")
    p = cache.save(key, _entry(1))
    data = p.read_bytes()
    for broken in (data[: len(data) // 2], data[:100], b"", b"PK\x03\x04 not really"):
        p.write_bytes(broken)
        assert cache.load(key) is None
    cache.save(key, _entry(2))  # recomputed and overwritten
    assert _is_whole(cache.load(key))


def test_a_failed_write_keeps_the_previous_entry(tmp_path, monkeypatch):
    path = tmp_path / "k.npz"
    write_npz(path, _entry(1))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OutputError, match="cannot write .*k.npz: disk full"):
        write_npz(path, _entry(2))
    monkeypatch.undo()
    assert int(read_npz(path)["writer"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]


def test_the_cell_store_treats_a_truncated_entry_as_a_miss(tmp_path):
    """One cell cache for probe and NLI cells: a half-written entry is recomputed."""
    from learnerprobe.engine.cells import CellOutput, CellStore

    store = CellStore(tmp_path)
    cell = store.path("abcdef")
    store.save(cell, CellOutput(np.zeros((2, 3), np.int64), None, np.ones(2), 1, 0.5))
    assert store.load(cell).selected == 1
    cell.write_bytes(cell.read_bytes()[:-40])
    assert store.load(cell) is None
    nli = store.path("123456")
    store.save(nli, CellOutput(np.zeros((1, 3), np.int64), np.eye(3)[None], np.zeros(0), None,
                               0.1, layer_id=4, idx=np.arange(3)))
    assert store.load(nli).layer_id == 4
    nli.write_bytes(nli.read_bytes()[:-40])
    assert store.load(nli) is None


def test_the_one_atomic_writer_is_safe_across_threads(tmp_path):
    """Threads of one process writing one target each use their own temporary file (a pid-only
    temporary name let two threads interleave their bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    from learnerprobe.outputs import atomic_write_bytes

    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: atomic_write_bytes(target, b), payloads * 4))
    data = target.read_bytes()
    assert data in payloads  # one writer's whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]
