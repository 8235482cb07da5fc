"""Prediction benchmark: cold-process wall time, single-text latency percentiles and batch
throughput of loaded bundles.

The cold figure is what a user of `learnerprobe predict --bundle B TEXT` waits: a fresh
interpreter that imports the CLI, loads and verifies the bundles and predicts one text. It runs
in a subprocess (its peak RSS is that child's). Every figure comes with the load average, since
on a shared machine the wall times depend on it.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.predict import Predictor

HEAVY = ("torch", "transformers", "sklearn", "skops", "scipy", "onnxruntime", "pandas",
         "matplotlib")

# A 200-word learner-like German text (synthetic, written for this benchmark).
_WORDS = (
    "Liebe Maria ich schreibe dir weil ich nächste Woche nach Berlin fahre und dich gerne "
    "besuchen möchte . Ich habe viel gearbeitet und jetzt habe ich endlich Urlaub . Wir können "
    "zusammen ins Kino gehen oder in einem Restaurant essen . Was denkst du ? "
).split()


def sample_text(n_words: int = 200) -> str:
    reps = n_words // len(_WORDS) + 1
    return " ".join((_WORDS * reps)[:n_words])


def cold_predict(bundles: list[Path], text: str, *, timeout: float = 600.0,
                 encoder: str = "auto") -> dict[str, Any]:
    """Wall seconds and peak RSS of `learnerprobe predict --bundle ... TEXT` in a new process,
    and which of torch / scikit-learn / skops / onnxruntime it imported (``-X importtime``)."""
    cmd = [sys.executable, "-X", "importtime", "-m", "learnerprobe.cli", "predict", "--json",
           "--encoder", encoder]
    for b in bundles:
        cmd += ["--bundle", str(b)]
    cmd.append(text)
    load = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # top-level packages of every module imported (a package imported through importlib by
    # another one can miss its own line, never its submodules')
    imported = {m.split(".")[0] for m in
                re.findall(r"import time:\s*\d+ \|\s*\d+ \|\s*([\w.]+)", proc.stderr)}
    stderr = [x for x in proc.stderr.splitlines() if "import time:" not in x]
    return {
        "wall_seconds": round(wall, 3),
        "imported": sorted(m for m in HEAVY if m in imported),
        "cpu_seconds": round((after.ru_utime + after.ru_stime)
                             - (before.ru_utime + before.ru_stime), 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024.0, 1),
        "returncode": proc.returncode,
        "error": stderr[-1] if proc.returncode and stderr else None,
        "load_avg_before": [round(x, 2) for x in load],
    }


def run_bench(bundles: list[Path], *, n: int = 50, batch: int = 200, cold: bool = True,
              encoder: str = "auto", arrays: bool = True) -> dict:
    """Cold one-text CLI run (optional), then in this process: load, p50/p95 latency of a
    200-word text, texts/s over ``batch`` texts of 150-249 words in batches of 32.
    ``encoder``/``arrays``: as :meth:`learnerprobe.predict.Predictor.load` (the cold run takes
    ``encoder`` and the bundles' array forms where they have one)."""
    cold_res = cold_predict(bundles, sample_text(200), encoder=encoder) if cold else None
    load_before = os.getloadavg()
    c0 = time.process_time()
    t0 = time.perf_counter()
    pred = Predictor.load(*bundles, encoder=encoder, arrays=arrays)
    load_s = time.perf_counter() - t0
    text = sample_text(200)
    t = time.perf_counter()
    pred.predict([text])  # first call: loads what the bundles need (the encoder)
    first_s = time.perf_counter() - t
    load_cpu_s = time.process_time() - c0
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
        "bench": "predict",
        "bundles": [str(b) for b in bundles],
        "tasks": pred.tasks,
        "engines": pred.engines,
        "cold_cli_one_text": cold_res,
        "load_seconds": round(load_s, 3),
        "first_call_seconds": round(first_s, 3),
        "load_and_first_call_cpu_seconds": round(load_cpu_s, 3),
        "latency_p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
        "latency_p95_ms": round(1000 * float(np.percentile(lat, 95)), 2),
        "batch_texts_per_s": round(batch / batch_s, 1),
        "n_single": n,
        "n_batch": batch,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
    }
