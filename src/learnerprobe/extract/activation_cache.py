"""A resumable, crash-safe on-disk cache of pooled per-layer activations.

Layout (one folder per configuration key, see :func:`cache_key`)::

    <activations_dir>/<key>/config.json          what the key was made of (human readable)
    <key>/shards/<n>/rows.json                   row addresses: text id + text hash, shapes
    <key>/shards/<n>/acts.npy                    float32 (layers x rows x hidden), memory-mappable
    <key>/shards/<n>/stats.npy                   int32 (rows x 3): tokens in text, tokens used, chunks
    <key>/shards/<n>/done.bin                    one byte per row, set only after its data is flushed
    <key>/shards/<n>/COMPLETE                    written atomically once every row is done
    <key>/views/<hash>.npy                       a request's rows gathered into its own order

Why this shape: rows are written with ``pwrite`` batch by batch (so peak memory does not grow with
the corpus and the data never enters the process RSS), a row's done byte is written only after its
data has been flushed to disk, and the completion marker comes last, so a ``kill -9`` at any point
leaves a cache whose done rows are valid and whose missing rows a rerun computes. Rows are
addressed by (id, text hash), never by the text string.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.errors import LearnerprobeError
from learnerprobe.outputs import atomic_write, atomic_write_bytes

CACHE_FORMAT = 1
RowKey = tuple[str, str]  # (text id, text hash)


class CacheError(LearnerprobeError):
    """The activation cache on disk is unreadable or inconsistent; the message names the file."""


def cache_key(material: dict[str, Any]) -> str:
    """Short stable hash of everything that changes the vectors."""
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename with fsync (``outputs.atomic_write``), so readers see the old file or
    the whole new one."""
    atomic_write_bytes(path, data)


def _npy_header_len(path: Path) -> int:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def _write_view(tmp: Path, src: Sequence[np.ndarray], locs: Sequence[tuple[int, int]],
                layers: Sequence[int], h: int) -> None:
    """Write the gathered rows as one ``.npy`` (layers x rows x hidden) block by block, so a
    view of a large corpus never needs the whole array in memory."""
    header = np.lib.format.header_data_from_array_1_0(np.empty((0,), np.float32))
    header["shape"] = (len(layers), len(locs), h)
    si_arr = np.array([s for s, _ in locs], dtype=np.int64)
    r_arr = np.array([r for _, r in locs], dtype=np.int64)
    block = 4096
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for layer in layers:
            for b0 in range(0, len(locs), block):
                s_b, r_b = si_arr[b0 : b0 + block], r_arr[b0 : b0 + block]
                chunk = np.empty((len(s_b), h), dtype=np.float32)
                for s in np.unique(s_b):
                    m = s_b == s
                    chunk[m] = src[s][layer][r_b[m]]
                f.write(chunk.tobytes())


@dataclass
class Shard:
    """One shard: a fixed set of rows, filled in any order, complete when every row is done."""

    path: Path
    ids: list[str]
    hashes: list[str]
    n_layers: int
    hidden_size: int
    complete: bool
    done: np.ndarray = field(repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def array(self) -> np.ndarray:
        """The shard's (layers x rows x hidden) float32 array, memory-mapped read-only."""
        return np.load(self.path / "acts.npy", mmap_mode="r")

    def stats(self) -> np.ndarray:
        return np.load(self.path / "stats.npy", mmap_mode="r")

    @classmethod
    def open(cls, path: Path) -> Shard:
        try:
            meta = json.loads((path / "rows.json").read_text())
            ids, hashes = list(meta["ids"]), list(meta["hashes"])
            n_layers, hidden = int(meta["n_layers"]), int(meta["hidden_size"])
        except (OSError, ValueError, KeyError) as e:
            raise CacheError(f"unreadable shard index {path / 'rows.json'}: {e}") from e
        complete = (path / "COMPLETE").exists()
        if complete:
            done = np.ones(len(ids), dtype=bool)
        else:
            raw = (path / "done.bin").read_bytes() if (path / "done.bin").exists() else b""
            done = np.zeros(len(ids), dtype=bool)
            got = np.frombuffer(raw[: len(ids)], dtype=np.uint8).astype(bool)
            done[: len(got)] = got
        return cls(path, ids, hashes, n_layers, hidden, complete, done)


class ShardWriter:
    """Writes rows into a shard with pwrite; data is flushed before the rows' done bytes."""

    def __init__(self, shard: Shard, durable: bool = True) -> None:
        self.shard = shard
        self.durable = durable
        self._acts = os.open(shard.path / "acts.npy", os.O_RDWR)
        self._stats = os.open(shard.path / "stats.npy", os.O_RDWR)
        self._done = os.open(shard.path / "done.bin", os.O_RDWR)
        self._acts_off = _npy_header_len(shard.path / "acts.npy")
        self._stats_off = _npy_header_len(shard.path / "stats.npy")

    def write(self, rows: Sequence[int], vectors: np.ndarray, stats: np.ndarray) -> None:
        """Store ``vectors`` (layers x len(rows) x hidden) and ``stats`` (len(rows) x 3)."""
        sh = self.shard
        n, h = sh.n_rows, sh.hidden_size
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        stats = np.ascontiguousarray(stats, dtype=np.int32)
        if vectors.shape != (sh.n_layers, len(rows), h):
            raise CacheError(f"shape {vectors.shape} does not fit shard {sh.path}")
        for j, r in enumerate(rows):
            for layer in range(sh.n_layers):
                off = self._acts_off + ((layer * n + r) * h) * 4
                os.pwrite(self._acts, vectors[layer, j].tobytes(), off)
            os.pwrite(self._stats, stats[j].tobytes(), self._stats_off + r * 3 * 4)
        if self.durable:
            os.fdatasync(self._acts)
            os.fdatasync(self._stats)
        for r in rows:
            os.pwrite(self._done, b"\x01", r)
            sh.done[r] = True

    def finish(self) -> bool:
        """Write the completion marker if every row is done; returns whether the shard is complete."""
        sh = self.shard
        if self.durable:
            os.fdatasync(self._done)
        if sh.done.all() and not sh.complete:
            _atomic_write(sh.path / "COMPLETE", json.dumps({"n_rows": sh.n_rows}).encode())
            sh.complete = True
        return sh.complete

    def close(self) -> None:
        for fd in (self._acts, self._stats, self._done):
            with contextlib.suppress(OSError):
                os.close(fd)


class ActivationCache:
    """All shards of one configuration key, and the lookups/writes the engine needs."""

    def __init__(self, path: Path, material: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.material = material
        self.shards: list[Shard] = []
        if (self.path / "shards").is_dir():
            for p in sorted((self.path / "shards").iterdir(), key=lambda q: q.name):
                if p.is_dir() and (p / "rows.json").exists():
                    self.shards.append(Shard.open(p))

    @classmethod
    def for_material(cls, root: Path, material: dict[str, Any]) -> ActivationCache:
        return cls(Path(root) / cache_key(material), material)

    # -- lookup -------------------------------------------------------------------------------
    def locate(self, keys: Sequence[RowKey]) -> list[tuple[int, int] | None]:
        """For each (id, hash): (shard index, row) of a done row, or None when it is missing."""
        index: dict[RowKey, tuple[int, int]] = {}
        # complete shards win; within a kind, the newest shard wins
        order = sorted(range(len(self.shards)), key=lambda i: (self.shards[i].complete, i))
        for si in order:
            sh = self.shards[si]
            for r in np.flatnonzero(sh.done):
                index[(sh.ids[r], sh.hashes[r])] = (si, int(r))
        return [index.get((str(i), str(h))) for i, h in keys]

    def pending(self, keys: set[RowKey]) -> Iterator[tuple[int, int, RowKey]]:
        """Not-done rows of existing partial shards that a request needs (resume after a crash)."""
        for si, sh in enumerate(self.shards):
            if sh.complete:
                continue
            for r in np.flatnonzero(~sh.done):
                k = (sh.ids[r], sh.hashes[r])
                if k in keys:
                    yield si, int(r), k

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock so two processes never fill the same cache at once."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def refresh(self) -> None:
        """Re-read shards (another process may have filled some while we waited for the lock)."""
        self.__init__(self.path, self.material)  # type: ignore[misc]

    def new_shard(self, keys: Sequence[RowKey], n_layers: int, hidden_size: int) -> int:
        """Create an empty shard for ``keys``; its index is written before any data."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.material is not None and not (self.path / "config.json").exists():
            _atomic_write(
                self.path / "config.json",
                json.dumps(self.material, indent=2, sort_keys=True, default=str).encode(),
            )
        shards_dir = self.path / "shards"
        shards_dir.mkdir(exist_ok=True)
        n = 1 + max((int(p.name) for p in shards_dir.iterdir() if p.name.isdigit()), default=-1)
        tmp = shards_dir / f".tmp-{n:06d}-{os.getpid()}"
        tmp.mkdir()
        np.lib.format.open_memmap(
            tmp / "acts.npy", mode="w+", dtype=np.float32, shape=(n_layers, len(keys), hidden_size)
        ).flush()
        np.lib.format.open_memmap(
            tmp / "stats.npy", mode="w+", dtype=np.int32, shape=(len(keys), 3)
        ).flush()
        (tmp / "done.bin").write_bytes(bytes(len(keys)))
        rows = {
            "format": CACHE_FORMAT,
            "ids": [k[0] for k in keys],
            "hashes": [k[1] for k in keys],
            "n_layers": n_layers,
            "hidden_size": hidden_size,
        }
        _atomic_write(tmp / "rows.json", json.dumps(rows).encode())
        final = shards_dir / f"{n:06d}"
        os.replace(tmp, final)  # the shard appears with its index, data and done mask at once
        self.shards.append(Shard.open(final))
        return len(self.shards) - 1

    # -- reading ------------------------------------------------------------------------------
    def gather(
        self, locs: Sequence[tuple[int, int]], layer_idx: Sequence[int] | None = None
    ) -> tuple[np.ndarray, Path]:
        """The requested rows as one read-only memmap (layers x rows x hidden) in request order.

        When the rows are exactly one shard in its own order the shard's file is returned as is;
        otherwise the rows are copied, a layer and a block of rows at a time, into a view file.
        """
        si0 = locs[0][0] if locs else -1
        whole = (
            locs
            and all(si == si0 for si, _ in locs)
            and [r for _, r in locs] == list(range(self.shards[si0].n_rows))
        )
        if whole and layer_idx is None:
            return self.shards[si0].array(), self.shards[si0].path / "acts.npy"
        h = self.shards[locs[0][0]].hidden_size if locs else 0
        n_layers = self.shards[locs[0][0]].n_layers if locs else 0
        layers = list(range(n_layers)) if layer_idx is None else list(layer_idx)
        digest = hashlib.sha256(
            json.dumps([[self.shards[s].path.name, r] for s, r in locs] + [layers]).encode()
        ).hexdigest()[:24]
        views = self.path / "views"
        views.mkdir(parents=True, exist_ok=True)
        out = views / f"{digest}.npy"
        if not out.exists():
            src = [sh.array() for sh in self.shards]
            atomic_write(out, lambda tmp: _write_view(tmp, src, locs, layers, h))
        return np.load(out, mmap_mode="r"), out

    def stats_for(self, locs: Sequence[tuple[int, int]]) -> np.ndarray:
        """(rows x 3) int32: tokens in the text, tokens the model saw, chunks, in request order."""
        out = np.zeros((len(locs), 3), dtype=np.int32)
        cache: dict[int, np.ndarray] = {}
        for j, (s, r) in enumerate(locs):
            if s not in cache:
                cache[s] = np.asarray(self.shards[s].stats())
            out[j] = cache[s][r]
        return out
