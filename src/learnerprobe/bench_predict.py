"""Prediction benchmark: single-text latency percentiles and batch throughput of loaded bundles."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# A 200-word learner-like German text (synthetic, written for this benchmark).
_WORDS = (
    "Liebe Maria ich schreibe dir weil ich nächste Woche nach Berlin fahre und dich gerne "
    "besuchen möchte . Ich habe viel gearbeitet und jetzt habe ich endlich Urlaub . Wir können "
    "zusammen ins Kino gehen oder in einem Restaurant essen . Was denkst du ? "
).split()


def sample_text(n_words: int = 200) -> str:
    reps = n_words // len(_WORDS) + 1
    return " ".join((_WORDS * reps)[:n_words])


def run_bench(bundles: list[Path], *, n: int = 50, batch: int = 200) -> dict:
    from learnerprobe.predict import Predictor

    t0 = time.perf_counter()
    pred = Predictor.load(*bundles)
    load_s = time.perf_counter() - t0
    text = sample_text(200)
    pred.predict([text])  # warm-up
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        pred.predict([text])
        lat.append(time.perf_counter() - t)
    texts = [sample_text(150 + (i % 100)) for i in range(batch)]
    t = time.perf_counter()
    for i in range(0, batch, 32):
        pred.predict(texts[i : i + 32])
    batch_s = time.perf_counter() - t
    return {
        "tasks": pred.tasks,
        "load_seconds": round(load_s, 3),
        "latency_p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
        "latency_p95_ms": round(1000 * float(np.percentile(lat, 95)), 2),
        "batch_texts_per_s": round(batch / batch_s, 1),
        "n_single": n,
        "n_batch": batch,
    }
