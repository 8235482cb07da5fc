"""Cold `learnerprobe predict` with a CEFR and an L1 bundle: wall and CPU seconds of fresh
processes, which heavy libraries each imported, and whether the fast path (ONNX, no torch) ran.

Target (issue 20): <= 3 s wall on a quiet 2-core machine, with or without native bf16 -- a
bf16-trained bundle takes the fp32 ONNX graph when its manifest records an accepted fp32 check
(learnerprobe.bundles.fp32_check). Prints a table and writes the figures as JSON (with the load
average before each run: on a shared machine wall time follows the load, CPU time much less).

Run: PYTHONPATH=src python3 benchmarks/cold_start.py --bundle runs/bundles/cefr-merlin \
         --bundle runs/bundles/l1-merlin-de --runs 5 --out cold_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", action="append", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--encoder", default="auto", choices=("auto", "onnx", "torch"))
    ap.add_argument("--out", type=Path, default=Path("cold_start.json"))
    a = ap.parse_args(argv)
    from learnerprobe.bench_predict import cold_predict, sample_text
    from learnerprobe.extract.engine import cpu_has_native_bf16

    cold_predict(a.bundle, sample_text(200), encoder=a.encoder)  # page cache warm, graph exported
    runs = [cold_predict(a.bundle, sample_text(200), encoder=a.encoder) for _ in range(a.runs)]
    bad = [r for r in runs if r["returncode"]]
    if bad:
        print(f"predict failed: {bad[0]['error']}", file=sys.stderr)
        return 1
    walls = [r["wall_seconds"] for r in runs]
    cpus = [r["cpu_seconds"] for r in runs]
    manifests = [json.loads((b / "manifest.json").read_text()) for b in a.bundle]
    res = {
        "bench": "cold_start", "bundles": [str(b) for b in a.bundle], "encoder": a.encoder,
        "trained_dtypes": [((m.get("preprocessing") or {}).get("extraction") or {}).get("dtype")
                           for m in manifests],
        "fp32_checks": [((m.get("preprocessing") or {}).get("extraction") or {}).get("fp32_graph")
                        for m in manifests],
        "wall_seconds_median": statistics.median(walls), "wall_seconds": walls,
        "cpu_seconds_median": statistics.median(cpus), "cpu_seconds": cpus,
        "imported": runs[-1]["imported"], "torch_imported": "torch" in runs[-1]["imported"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "load_avg_before": [r["load_avg_before"] for r in runs],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "native_bf16": cpu_has_native_bf16()},
    }
    print(f"cold predict, {len(a.bundle)} bundles, {a.runs} runs: wall median "
          f"{res['wall_seconds_median']:.2f} s (target <= 3 s quiet), CPU median "
          f"{res['cpu_seconds_median']:.2f} s; imported: {', '.join(res['imported']) or '-'}; "
          f"load before: {runs[0]['load_avg_before'][0]:.1f}")
    a.out.write_text(json.dumps(res, indent=2))
    print(f"saved {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
