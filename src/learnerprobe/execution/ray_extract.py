"""Distributed extraction: Ray Data batch inference writing the local engine's cache format.

Records -> missing rows (the cache is asked first, so a rerun computes only what is missing) ->
cache shards created by the driver (``ActivationCache.new_shard``: same key, same rows.json,
same done flags) -> items of texts of similar length within one shard -> ``map_batches`` on an
actor pool (one model replica per actor, ``num_gpus`` per actor on GPU clusters) -> each actor
runs the local engine (``extract.extract`` on its loaded model) on its item and writes the rows
into the shard with ``ShardWriter`` (data flushed before the rows' done bytes).

Why the actors call the local engine instead of a second forward loop: a text's vector depends
only on the text and the settings (``extract.engine.plan_batches``: one padded length per text),
so the cluster writes the very rows the local backend would, and every later stage (the study's
cell keys included) sees the same cache key and the same numbers.

Two destinations. A path (local or a shared disk every node mounts): actors write rows in place,
and a killed job leaves done rows that a rerun keeps. A ``pyarrow.fs`` URI (``s3://``,
``gs://``, ``file://``): an item is a whole shard, built in the actor's temporary folder and
uploaded file by file, ``COMPLETE`` last; a shard without ``COMPLETE`` is ignored and redone.
:func:`sync_cache` copies the complete shards of a key to a local cache folder for reading.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.execution.session import ensure_ray
from learnerprobe.extract.activation_cache import (
    ActivationCache,
    RowKey,
    Shard,
    ShardWriter,
    cache_key,
)
from learnerprobe.extract.engine import (
    DTYPE_ALIASES,
    as_rows,
    cache_material,
    extract,
    resolve_dtype,
)
from learnerprobe.models import loading, registry
from learnerprobe.models.device import resolve_device
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.testing import tiny_model
from learnerprobe.paths import activations_dir
from learnerprobe.records import LearnerText, text_hash

# heavy optional imports stay local: ray (inside ensure_ray and the driver), pyarrow.fs (only for
# URI destinations), torch/transformers (inside the actors and the model-shape lookup).

# Test hook, not an option: "exit:<marker>" makes an actor kill its own process, "raise:<marker>"
# makes it fail the item, once (when the marker file does not exist yet), right after it has
# written its first item. Tests set it to simulate a lost worker and a killed job.
_FAULT: str | None = None

CHARS_PER_ITEM_TOKEN = 4  # rough characters per token, only to size items (not batches)


@dataclass
class ClusterResult:
    """What a cluster extraction did (the vectors are in the cache, read them with ``extract``)."""

    cache_path: str
    key: str
    n_texts: int
    texts_computed: int
    tokens_computed: int
    shards_written: int
    items: int
    seconds: float
    workers: int
    dtype: str
    device: str
    busy_seconds: float = 0.0  # time the actors spent on items (wall minus start-up and waits)
    worker_peak_rss_mb: dict[int, float] = field(default_factory=dict)  # actor pid -> peak RSS

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------- settings
def _entry(model: str | ModelEntry) -> ModelEntry:
    if isinstance(model, ModelEntry):
        return model
    if isinstance(model, str):
        return registry.get_model(model)
    raise ConfigError("the ray backend takes a model name or a ModelEntry (actors load it)")


def _device_and_dtype(device: str, dtype: str, entry: ModelEntry,
                      ex: ExecutionConfig) -> tuple[str, str]:
    """The actors' device and the resolved dtype. ``auto``: cuda when actors get GPUs, else the
    CPU; dtype as the local engine resolves it for that device (bf16 on GPUs)."""
    dev = device
    if device == "auto":
        dev = "cuda" if ex.gpus_per_worker > 0 else "cpu"
    key = str(dtype).lower()
    if (dev.startswith("cuda") and DTYPE_ALIASES.get(key) == "auto"
            and DTYPE_ALIASES.get(str(entry.dtype).lower(), "auto") == "auto"):
        return dev, "bfloat16"  # the driver may have no GPU to ask; every current GPU has bf16
    return dev, resolve_dtype(dtype, dev, entry)


def _ordered_layers(layers: Sequence[int] | None) -> list[int] | None:
    """As the local engine orders them (its cache key lists them this way)."""
    if layers is None:
        return None
    given = {int(x) for x in layers}
    return sorted(x for x in given if x >= 0) + sorted(x for x in given if x < 0)


def model_shape(entry: ModelEntry) -> tuple[int, int]:
    """(hidden states incl. embeddings, hidden size) from the model's config, without weights."""
    if entry.source.startswith("tiny:"):
        cfg = tiny_model(entry.source[len("tiny:"):])[1].config
    else:
        from transformers import AutoConfig

        kw = {"revision": entry.revision} if entry.revision else {}
        cfg = AutoConfig.from_pretrained(loading.model_folder(entry), trust_remote_code=False, **kw)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return int(text.num_hidden_layers) + 1, int(text.hidden_size)


# ----------------------------------------------------------------------------- items
def _items(shard_rows: dict[str, list[tuple[int, RowKey, str]]], ex: ExecutionConfig,
           batch_tokens: int, whole: bool) -> list[dict[str, Any]]:
    """Work items: texts of one shard, longest first, cut by count and by an approximate token
    budget (so an item of long texts is not many times the work of one of short texts)."""
    budget = max(batch_tokens, 1) * 8 * CHARS_PER_ITEM_TOKEN
    items: list[dict[str, Any]] = []
    for shard, rows in shard_rows.items():
        rows = sorted(rows, key=lambda r: -len(r[2]))
        cur: list[tuple[int, RowKey, str]] = []
        chars = 0
        for r in rows:
            if cur and not whole and (len(cur) >= ex.item_texts or chars + len(r[2]) > budget):
                items.append(_item(shard, cur))
                cur, chars = [], 0
            cur.append(r)
            chars += len(r[2])
        if cur:
            items.append(_item(shard, cur))
    return items


def _item(shard: str, rows: list[tuple[int, RowKey, str]]) -> dict[str, Any]:
    return {"shard": shard, "rows": [r[0] for r in rows], "ids": [r[1][0] for r in rows],
            "hashes": [r[1][1] for r in rows], "texts": [r[2] for r in rows]}


def _chunks(keys: list[RowKey], size: int) -> Iterator[list[RowKey]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


# ----------------------------------------------------------------------------- the actor
def load_for_extract(entry: ModelEntry, device: str, dtype: str) -> tuple[Any, Any, ModelEntry]:
    """(tokenizer, model, entry) loaded once, on ``device`` in the engine's weight dtype for
    ``dtype`` (fp32 weights under bf16 autocast), ready for ``extract`` as a loaded triple."""
    import torch

    dev = resolve_device(device)
    tok, model, _ = loading.load_model(entry, device=dev, dtype=dtype.replace("-autocast", ""))
    target = torch.float32 if dtype.endswith("autocast") else {
        "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return tok, model.to(device=dev, dtype=target).eval(), entry


def _trim_heap() -> None:
    """Return freed heap to the OS after each item (glibc ``malloc_trim``): items have different
    shapes, so freed blocks pile up and a long-lived actor's RSS creeps up with the corpus."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class ExtractActor:
    """One model replica; ``__call__`` takes a Ray Data batch of JSON work items."""

    def __init__(self, *, entry: ModelEntry, fingerprint: str, device: str, dtype: str,
                 layers: list[int] | None, max_length: int, chunking: str, batch_tokens: int,
                 key: str, dest: str, remote: bool, n_store: int, hidden: int,
                 fault: str | None = None) -> None:
        self.dev = resolve_device(device)
        self.triple = load_for_extract(entry, self.dev, dtype)
        self.kw = {"fingerprint": fingerprint, "layers": layers, "max_length": max_length,
                   "chunking": chunking, "batch_tokens": batch_tokens, "dtype": dtype,
                   "device": self.dev}
        self.key, self.dest, self.remote = key, dest, remote
        self.n_store, self.hidden = n_store, hidden
        self.fault = fault
        self.items_done = 0

    def _vectors(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(layers x n x hidden) float32 and (n x 3) stats of ``texts`` from the local engine."""
        tmp = tempfile.mkdtemp(prefix="learnerprobe-ray-")
        try:
            acts = extract(texts, self.triple, cache_dir=tmp, progress=False, durable=False,
                           **self.kw)
            if Path(acts.cache_path).name != self.key:  # type: ignore[arg-type]
                raise LearnerprobeError("actor and driver disagree on the activation cache key "
                                        f"({Path(acts.cache_path).name} vs {self.key}); "  # type: ignore[arg-type]
                                        "same torch/transformers versions on every node?")
            store = ActivationCache(Path(acts.cache_path))  # type: ignore[arg-type]
            locs = store.locate(list(zip(acts.ids, acts.hashes, strict=True)))
            stats = store.stats_for(locs)  # type: ignore[arg-type]
            return np.array(acts.array, dtype=np.float32), stats, acts.tokens_computed
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _write_in_place(self, item: dict[str, Any]) -> int:
        vecs, stats, tokens = self._vectors(item["texts"])
        shard = Shard.open(Path(self.dest) / self.key / "shards" / item["shard"])
        for r, i, h in zip(item["rows"], item["ids"], item["hashes"], strict=True):
            if (shard.ids[r], shard.hashes[r]) != (i, h):
                raise LearnerprobeError(f"shard {shard.path} row {r} is not {i}")
        w = ShardWriter(shard, durable=True)
        try:
            w.write(item["rows"], vecs, stats)
            w.finish()
        finally:
            w.close()
        return tokens

    def _write_remote(self, item: dict[str, Any]) -> int:
        """Build the whole shard locally in the cache format, then upload it, COMPLETE last."""
        tmp = tempfile.mkdtemp(prefix="learnerprobe-shard-")
        try:
            staging = ActivationCache(Path(tmp) / self.key)
            keys = list(zip(item["ids"], item["hashes"], strict=True))
            si = staging.new_shard(keys, self.n_store, self.hidden)
            vecs, stats, tokens = self._vectors(item["texts"])
            w = ShardWriter(staging.shards[si], durable=False)
            try:
                w.write(list(range(len(keys))), vecs, stats)
                w.finish()
            finally:
                w.close()
            _upload_shard(staging.shards[si].path, self.dest, self.key, item["shard"])
            return tokens
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import resource

        out: dict[str, list] = {k: [] for k in ("shard", "texts", "tokens", "seconds", "pid",
                                                "peak_rss_mb")}
        for blob in batch["item"]:
            item = json.loads(str(blob))
            t0 = time.perf_counter()
            tokens = self._write_remote(item) if self.remote else self._write_in_place(item)
            out["shard"].append(item["shard"])
            out["texts"].append(len(item["rows"]))
            out["tokens"].append(tokens)
            out["seconds"].append(time.perf_counter() - t0)
            out["pid"].append(os.getpid())
            out["peak_rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            _trim_heap()
            self.items_done += 1
            self._maybe_fail()
        return {k: np.asarray(v) for k, v in out.items()}

    def _maybe_fail(self) -> None:
        if not self.fault:
            return
        how, marker = self.fault.split(":", 1)
        if os.path.exists(marker):
            return
        Path(marker).write_text(str(os.getpid()))
        if how == "exit":
            os._exit(1)  # a lost worker: no cleanup, no exception
        raise RuntimeError("injected failure (test hook)")


# ----------------------------------------------------------------------------- remote fs
def _fs(uri: str) -> tuple[Any, str]:
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:  # noqa: BLE001 -- pyarrow raises several kinds; one message
        raise ConfigError(f"cannot open cache destination {uri!r}: {e}") from None


def _upload_shard(local: Path, uri: str, key: str, name: str) -> None:
    fs, base = _fs(uri)
    dest = f"{base.rstrip('/')}/{key}/shards/{name}"
    fs.create_dir(dest, recursive=True)
    for fname in ("rows.json", "acts.npy", "stats.npy", "done.bin", "COMPLETE"):
        with open(local / fname, "rb") as src, fs.open_output_stream(f"{dest}/{fname}") as dst:
            shutil.copyfileobj(src, dst, length=16 << 20)


def _remote_shards(uri: str, key: str) -> tuple[dict[str, list[RowKey]], set[str]]:
    """Complete shards (name -> keys) and the names of every shard folder at the destination."""
    from pyarrow import fs as pafs

    fs, base = _fs(uri)
    sel = pafs.FileSelector(f"{base.rstrip('/')}/{key}/shards", allow_not_found=True)
    complete: dict[str, list[RowKey]] = {}
    names: set[str] = set()
    for info in fs.get_file_info(sel):
        if info.type != pafs.FileType.Directory:
            continue
        name = info.base_name
        names.add(name)
        if fs.get_file_info(f"{info.path}/COMPLETE").type != pafs.FileType.File:
            continue
        with fs.open_input_stream(f"{info.path}/rows.json") as f:
            meta = json.loads(f.read().decode())
        complete[name] = list(zip(meta["ids"], meta["hashes"], strict=True))
    return complete, names


def sync_cache(uri: str, key: str, local_root: str | Path | None = None) -> Path:
    """Copy the complete shards of ``key`` at ``uri`` into a local activation cache folder (the
    local engine and the study read from there); shards already there are skipped."""
    fs, base = _fs(uri)
    root = Path(local_root) if local_root is not None else activations_dir()
    complete, _ = _remote_shards(uri, key)
    dest = root / key
    (dest / "shards").mkdir(parents=True, exist_ok=True)
    src_key = f"{base.rstrip('/')}/{key}"
    if not (dest / "config.json").exists():
        with fs.open_input_stream(f"{src_key}/config.json") as f:
            (dest / "config.json").write_bytes(f.read())
    for name in sorted(complete):
        final = dest / "shards" / name
        if (final / "COMPLETE").exists():
            continue
        tmp = dest / "shards" / f".sync-{name}-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        for fname in ("rows.json", "acts.npy", "stats.npy", "done.bin", "COMPLETE"):
            with fs.open_input_stream(f"{src_key}/shards/{name}/{fname}") as src, \
                    open(tmp / fname, "wb") as dst:
                shutil.copyfileobj(src, dst, length=16 << 20)
        os.replace(tmp, final)
    return dest


# ----------------------------------------------------------------------------- driver
def cluster_extract(
    records: Sequence[LearnerText | str],
    model: str | ModelEntry,
    *,
    execution: ExecutionConfig,
    layers: Sequence[int] | None = None,
    batch_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    max_length: int | None = None,
    chunking: str = "truncate",
    cache_dir: str | Path | None = None,
    log: Any = None,
) -> ClusterResult:
    """Fill the activation cache for ``records`` on Ray; returns what was computed.

    The destination is ``execution.cache_uri`` if set, else ``cache_dir``, else the local
    activation cache folder. Afterwards ``extract.extract`` with the same settings (and that
    folder as ``cache_dir``) is a cache hit with the vectors the local backend would compute.
    """
    t0 = time.perf_counter()
    rows = as_rows(records)
    if not rows:
        raise ConfigError("no texts to extract")
    if chunking not in ("truncate", "chunks"):
        raise ConfigError(f"chunking must be one of ('truncate', 'chunks'), not {chunking!r}")
    entry = _entry(model)
    fingerprint = loading.weights_fingerprint(entry)
    dev, dt = _device_and_dtype(device, dtype, entry, execution)
    max_len = int(max_length or entry.max_length)
    layer_list = _ordered_layers(layers)
    bt = int(execution.batch_tokens or batch_tokens or 16384)
    material = cache_material(SimpleNamespace(entry=entry, fingerprint=fingerprint),
                              layers=layer_list, max_length=max_len, dtype=dt, chunking=chunking)
    key = cache_key(material)
    dest = str(execution.cache_uri or cache_dir or activations_dir())
    remote = "://" in dest
    keys = [(i, text_hash(t)) for i, t in rows]
    text_of = {k: t for k, (_, t) in zip(keys, rows, strict=True)}
    common = dict(entry=entry, fingerprint=fingerprint, device=dev, dtype=dt, layers=layer_list,
                  max_length=max_len, chunking=chunking, batch_tokens=bt, key=key, dest=dest,
                  remote=remote, fault=_FAULT)
    run = _run_remote if remote else _run_in_place
    computed, job, shards, n_items = run(keys, text_of, material, common, execution, bt)
    return ClusterResult(cache_path=f"{dest.rstrip('/')}/{key}", key=key, n_texts=len(rows),
                         texts_computed=computed, tokens_computed=job.get("tokens", 0),
                         shards_written=shards, items=n_items, seconds=time.perf_counter() - t0,
                         workers=execution.workers, dtype=dt, device=dev,
                         busy_seconds=job.get("busy_seconds", 0.0),
                         worker_peak_rss_mb=job.get("worker_peak_rss_mb", {}))


def fill_models(records: Sequence[LearnerText | str], models: Sequence[str], *,
                execution: ExecutionConfig, layers: Sequence[int] | None,
                extraction: dict[str, Any], log: Any = print) -> list[dict[str, Any]]:
    """Fill the activation cache of every model for ``records`` on Ray (the study runner's and
    ``prefill_activations``' one path); a remote ``cache_uri`` is copied back to the local cache
    folder, which the readers use. Texts already cached are not recomputed (nothing runs)."""
    out = []
    for m in models:
        res = cluster_extract(records, m, execution=execution, layers=layers, **extraction)
        log(f"  ray extraction {m}: {res.texts_computed}/{res.n_texts} texts computed "
            f"on {res.workers} worker(s), {res.shards_written} shard(s) in {res.seconds:.1f} s")
        if execution.cache_uri:
            sync_cache(execution.cache_uri, res.key)
        out.append(res.summary())
    return out


def _shape(material: dict[str, Any], entry: ModelEntry, layers: list[int] | None) -> tuple[int, int]:
    """(layers stored, hidden size); records the model's hidden-state count in the material."""
    n_hidden, hidden = model_shape(entry)
    material["n_hidden_states"] = n_hidden
    if layers is not None:
        bad = [x for x in layers if not -n_hidden <= x < n_hidden]
        if bad:
            raise ConfigError(f"layers {bad} out of range for {entry.name} (0..{n_hidden - 1})")
    return (n_hidden if layers is None else len(layers)), hidden


def _run_in_place(keys: list[RowKey], text_of: dict[RowKey, str], material: dict[str, Any],
                  common: dict[str, Any], ex: ExecutionConfig, bt: int) -> tuple[int, dict, int, int]:
    """Shared-disk destination: shards created here, filled in place by the actors."""
    store = ActivationCache.for_material(Path(common["dest"]), material)
    with store.lock():  # no local engine fills this key meanwhile (actors do not take it)
        store.refresh()
        missing = [k for k, loc in zip(keys, store.locate(keys), strict=True) if loc is None]
        missing = list(dict.fromkeys(missing))
        if not missing:
            return 0, {}, 0, 0
        n_store, hidden = _shape(material, common["entry"], common["layers"])
        by_shard: dict[str, list[tuple[int, RowKey, str]]] = {}
        resumed: set[RowKey] = set()
        for si, r, k in store.pending(set(missing)):
            sh = store.shards[si]
            if sh.n_layers != n_store or sh.hidden_size != hidden:
                raise LearnerprobeError(f"cache shard {sh.path} does not match the model's shape")
            by_shard.setdefault(sh.path.name, []).append((r, k, text_of[k]))
            resumed.add(k)
        rest = [k for k in missing if k not in resumed]
        new = 0
        for chunk in _chunks(rest, ex.shard_texts):
            si = store.new_shard(chunk, n_store, hidden)
            by_shard[store.shards[si].path.name] = [(r, k, text_of[k]) for r, k in enumerate(chunk)]
            new += 1
        items = _items(by_shard, ex, bt, whole=False)
        job = _map(items, common | {"n_store": n_store, "hidden": hidden}, ex)
        store.refresh()
        for sh in store.shards:  # rows written by several actors: the driver marks completion
            if not sh.complete and sh.done.all():
                w = ShardWriter(sh, durable=True)
                try:
                    w.finish()
                finally:
                    w.close()
        left = [k for k, loc in zip(missing, store.locate(missing), strict=True) if loc is None]
        if left:
            raise LearnerprobeError(f"{len(left)} rows still missing after the cluster job; rerun")
        return len(missing), job, len(by_shard), len(items)


def _run_remote(keys: list[RowKey], text_of: dict[RowKey, str], material: dict[str, Any],
                common: dict[str, Any], ex: ExecutionConfig, bt: int) -> tuple[int, dict, int, int]:
    """pyarrow.fs destination: one item per shard, uploaded whole by its actor."""
    complete, names = _remote_shards(common["dest"], common["key"])
    have = {k for ks in complete.values() for k in ks}
    missing = list(dict.fromkeys(k for k in keys if k not in have))
    if not missing:
        return 0, {}, 0, 0
    n_store, hidden = _shape(material, common["entry"], common["layers"])
    fs, base = _fs(common["dest"])
    kdir = f"{base.rstrip('/')}/{common['key']}"
    fs.create_dir(kdir, recursive=True)
    with fs.open_output_stream(f"{kdir}/config.json") as f:
        f.write(json.dumps(material, indent=2, sort_keys=True, default=str).encode())
    start = 1 + max((int(n) for n in names if n.isdigit()), default=-1)
    by_shard = {f"{start + j:06d}": [(r, k, text_of[k]) for r, k in enumerate(chunk)]
                for j, chunk in enumerate(_chunks(missing, ex.shard_texts))}
    items = _items(by_shard, ex, bt, whole=True)
    for it in items:  # upload order = row order of the shard
        order = np.argsort(it["rows"])
        for f in ("rows", "ids", "hashes", "texts"):
            it[f] = [it[f][i] for i in order]
    job = _map(items, common | {"n_store": n_store, "hidden": hidden}, ex)
    return len(missing), job, len(by_shard), len(items)


def _map(items: list[dict[str, Any]], actor_kw: dict[str, Any],
         ex: ExecutionConfig) -> dict[str, Any]:
    """Run the items through ``map_batches`` on the actor pool; tokens computed, actor busy
    seconds and peak RSS per actor process."""
    ensure_ray(ex)
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ds = ray.data.from_items([{"item": json.dumps(it)} for it in items],
                             override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(
        ExtractActor, fn_constructor_kwargs=actor_kw, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(ex.workers, len(items))),
        num_gpus=ex.gpus_per_worker or None,
        num_cpus=ex.cpus_per_worker,
    )
    tokens, busy, peak = 0, 0.0, {}
    try:
        for row in ds.iter_rows():
            tokens += int(row["tokens"])
            busy += float(row["seconds"])
            pid = int(row["pid"])
            peak[pid] = max(peak.get(pid, 0.0), float(row["peak_rss_mb"]))
    except BaseException:
        # A failed job's actor pool can outlive it and keep its CPUs/GPUs: a rerun in this
        # process then waited forever for them (seen once in the killed-job test). Disconnecting
        # the driver releases every actor it owns; the next call connects again (ensure_ray).
        ray.shutdown()
        raise
    return {"tokens": tokens, "busy_seconds": busy, "worker_peak_rss_mb": peak}

