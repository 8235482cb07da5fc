"""Streaming probes during extraction: pooled vectors go straight into per-layer sufficient
statistics (``estimators.probes.online.LayerStats``) chunk by chunk, and no layer is stored.

The local engine runs each chunk with its cache off (a chunk's vectors live in a temporary file
only until they are folded in), on a model loaded once. On Ray the texts are split into one
partition per worker, each worker streams its partition, and the statistics are summed on the
driver -- exact, since every statistic is a sum. From them ``LayerStats.ridge_path`` gives ridge
for every alpha and ``lda`` an LDA probe, for every layer, without the 357 GB all-layer cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.estimators.probes.online import LayerStats
from learnerprobe.execution.ray_extract import load_for_extract
from learnerprobe.execution.session import ensure_ray
from learnerprobe.extract.engine import extract
from learnerprobe.models import loading, registry
from learnerprobe.models.entry import ModelEntry
from learnerprobe.records import LearnerText


def stream_layer_stats(records: Sequence[LearnerText | str], y: Sequence[int],
                       model: str | ModelEntry, *, n_classes: int, chunk_texts: int = 512,
                       device: str = "cpu", dtype: str = "float32", **extract_kw: Any) -> LayerStats:
    """LayerStats of ``records`` (labels ``y``) from every extracted layer, chunk by chunk."""
    entry = registry.get_model(model) if isinstance(model, str) else model
    triple = load_for_extract(entry, device, dtype)
    fp = loading.weights_fingerprint(entry)
    y = np.asarray(y)
    stats: LayerStats | None = None
    for i in range(0, len(records), chunk_texts):
        acts = extract(list(records[i : i + chunk_texts]), triple, fingerprint=fp, cache=False,
                       progress=False, device=device, dtype=dtype, **extract_kw)
        if stats is None:
            stats = LayerStats(acts.n_layers, acts.hidden_size, n_classes)
        stats.update(np.asarray(acts.array), y[i : i + chunk_texts])
        del acts
    if stats is None:
        raise ValueError("no records to stream")
    return stats


def cluster_layer_stats(records: Sequence[LearnerText | str], y: Sequence[int],
                        model: str | ModelEntry, *, n_classes: int, execution: ExecutionConfig,
                        device: str = "auto", dtype: str = "float32",
                        **kw: Any) -> LayerStats:
    """:func:`stream_layer_stats` on Ray: one task per worker, statistics summed here."""
    ray = ensure_ray(execution)
    dev = device if device != "auto" else ("cuda" if execution.gpus_per_worker > 0 else "cpu")
    task = ray.remote(num_cpus=execution.cpus_per_worker,
                      num_gpus=execution.gpus_per_worker or None)(stream_layer_stats)
    parts = np.array_split(np.arange(len(records)), execution.workers)
    y = np.asarray(y)
    refs = [task.remote([records[i] for i in p], y[p], model, n_classes=n_classes, device=dev,
                        dtype=dtype, **kw) for p in parts if len(p)]
    total: LayerStats | None = None
    for r in refs:  # in partition order: the float sums are reproducible
        part = ray.get(r)
        total = part if total is None else total.merge(part)
    assert total is not None
    return total
