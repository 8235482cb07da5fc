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


def serve_throughput(pred: Predictor, make_app: Any, n_texts: int = 96, concurrency: int = 16,
                     max_batch: int = 64) -> dict[str, Any]:
    """Texts/s of the web API over ``n_texts`` single-text requests, ``concurrency`` at a time
    (what a page with many users sends), through the app in this process (no sockets): wall
    and CPU seconds, and how many predictor calls the batching made of them. ``make_app``:
    ``learnerprobe.serve.app.create_app`` (the caller's: the server sits beside this module)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    app = make_app(pred, max_batch=max_batch, max_queue=max(32, concurrency), timeout_s=600)
    texts = [sample_text(150 + (i % 100)) for i in range(n_texts)]
    with TestClient(app) as client:
        client.post("/api/predict", json={"text": texts[0]})  # first request: app start-up
        calls0 = app.state.batcher.calls if app.state.batcher else 0
        c0, t0 = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(concurrency) as ex:
            codes = list(ex.map(lambda t: client.post("/api/predict", json={"text": t})
                                .status_code, texts))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if set(codes) != {200}:
        raise RuntimeError(f"serve benchmark: HTTP statuses {sorted(set(codes))}")
    calls = (app.state.batcher.calls - calls0) if app.state.batcher else n_texts
    return {"serve_texts_per_s": round(n_texts / wall, 1),
            "serve_cpu_seconds_per_text": round(cpu / n_texts, 4),
            "serve_requests": n_texts, "serve_concurrency": concurrency,
            "serve_predictor_calls": calls}


def dtype_rows(bundles: list[Path], make_app: Any, *, batch: int = 64, serve_n: int = 64,
               concurrency: int = 16) -> dict[str, dict[str, Any]]:
    """Throughput of both precisions: ``fp32`` = the bundles' fast path (the fp32 ONNX graph
    where it applies), ``bf16`` = the torch encoder in bfloat16 (what a bf16-trained bundle runs
    without an accepted fp32 check). Only a CPU with native bf16 (AMX / AVX512-BF16) or a GPU
    runs the bf16 row at speed; elsewhere torch emulates it."""
    from learnerprobe.extract.engine import cpu_has_native_bf16

    out: dict[str, dict[str, Any]] = {}
    for name, kw in (("fp32", {"encoder": "auto"}),
                     ("bf16", {"encoder": "torch", "torch_dtype": "bfloat16"})):
        pred = Predictor.load(*bundles, **kw)
        pred.warm()
        texts = [sample_text(150 + (i % 100)) for i in range(batch)]
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(0, batch, 32):
            pred.predict(texts[i : i + 32])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = {"engines": pred.engines, "batch_texts_per_s": round(batch / wall, 1),
                     "batch_cpu_seconds_per_text": round(cpu / batch, 4),
                     **serve_throughput(pred, make_app, serve_n, concurrency)}
    out["native_bf16"] = {"cpu": cpu_has_native_bf16()}
    return out


def run_bench(bundles: list[Path], *, n: int = 50, batch: int = 200, cold: bool = True,
              encoder: str = "auto", arrays: bool = True, dtypes: bool = True,
              make_app: Any = None) -> dict:
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
    serve = serve_throughput(pred, make_app, n_texts=min(batch, 96)) if make_app else {}
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
        **serve,
        "dtypes": dtype_rows(bundles, make_app, batch=min(batch, 64)) if dtypes and make_app
        else None,
        "n_single": n,
        "n_batch": batch,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
    }
