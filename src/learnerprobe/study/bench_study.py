"""`learnerprobe bench study CONFIG`: where a study's time and memory go, stage by stage.

The study is run as configured (both modes when the config says so) with the cell cache off,
so every cell is fitted, into a throw-away folder; the figures are the runner's own stage
timings (load, extract, probe, evaluate, transfer, report), the peak resident memory of each
stage (this process, and with its worker processes: :mod:`learnerprobe.study.memory`) and of
the whole run, and its fitting seconds per mode and per probe (summed over cells, i.e. CPU-side
seconds of work, not wall time when cells run side by side). Load averages before and after,
the core count and the thread settings are recorded with them: on a shared machine the same
code is several times slower, and a figure without its load is not comparable.

``synthetic`` (``--synthetic CORPORAxTEXTSxLAYERSxHIDDEN``) runs the config on a synthetic
study of that size (:mod:`learnerprobe.study.synthetic`: memory-mapped random activations, no
corpus, no model), to measure a study's memory at a given size anywhere.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learnerprobe.config.study import StudyConfig
from learnerprobe.outputs import atomic_write_text
from learnerprobe.study.check import load_study
from learnerprobe.study.memory import PeakRSS
from learnerprobe.study.runner import run
from learnerprobe.study.synthetic import SyntheticShape, synthetic_study


def bench_study(config: str | Path | StudyConfig, *, cache_cells: bool = False,
                log: Callable[[str], None] = print, progress: bool = False,
                report: bool = True, records: Any = None,
                activations: Any = None, synthetic: SyntheticShape | None = None
                ) -> dict[str, Any]:
    """Run the study once (no cell cache unless ``cache_cells``) and return its timing and
    memory figures.

    ``records`` / ``activations`` go to :func:`learnerprobe.study.runner.run` (tests);
    ``synthetic`` replaces the corpora and the model by a synthetic study of that size."""
    cfg = config if isinstance(config, StudyConfig) else load_study(config)
    cfg = cfg.model_copy(update={"cache_cells": cache_cells})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lp-bench-study-") as tmp:
        if synthetic is not None:
            cfg, records, activations = synthetic_study(cfg, synthetic, Path(tmp) / "acts")
        acts_mb = sum(a.array.nbytes for a in (activations or {}).values()) / (1 << 20)
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            res = run(cfg, Path(tmp) / "run", records=records, activations=activations,
                      log=log, progress=progress, report=report)
        wall = time.perf_counter() - t0
    t = res.timings
    by_stage = t.get("memory", {})
    return {
        "config": cfg.name, "config_digest": cfg.digest(), "modes": list(cfg.modes),
        "synthetic": synthetic.label if synthetic is not None else None,
        "cells": t.get("cells"), "cells_cached": t.get("cells_cached"),
        "stages_s": {k: round(v, 2) for k, v in t.get("stages", {}).items()},
        "peak_rss_mb": round(mem.peak_mb, 1), "peak_rss_tree_mb": round(mem.tree_mb, 1),
        "peak_rss_mb_by_stage": {k: v["peak_rss_mb"] for k, v in by_stage.items()},
        "peak_rss_tree_mb_by_stage": {k: v["peak_rss_tree_mb"] for k, v in by_stage.items()},
        "activations_mb": round(acts_mb, 1) if activations else None,
        "probe_plus_evaluate_s": round(sum(t.get("stages", {}).get(k, 0.0)
                                           for k in ("probe", "evaluate")), 2),
        "fit_s_by_mode": {k: round(v, 2) for k, v in t.get("fit_seconds_by_mode", {}).items()},
        "fit_s_by_probe": {k: round(v, 2) for k, v in
                           sorted(t.get("fit_seconds_by_probe", {}).items())},
        "total_s": round(wall, 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "n_jobs": cfg.n_jobs, "threads": cfg.threads, "sweep_jobs": cfg.sweep_jobs,
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
    }


def write_bench(figures: dict[str, Any], out: str | Path) -> Path:
    """The figures as JSON, written atomically."""
    return atomic_write_text(out, json.dumps(figures, indent=2) + "\n")


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """Plain-text summary: stages (time, peak RSS), then fitting seconds per probe."""
    m = figures["machine"]
    lines = [f"study {figures['config']}: {figures['cells']} cells, {figures['total_s']:.1f} s "
             f"in all (load {m['loadavg_before'][0]:.2f} -> {m['loadavg_after'][0]:.2f}, "
             f"{m['cpus']} cpus, n_jobs {m['n_jobs']}, threads {m['threads']})"]
    acts = figures.get("activations_mb")
    lines.append(f"  peak RSS {figures['peak_rss_mb']:.0f} MB, with workers "
                 f"{figures['peak_rss_tree_mb']:.0f} MB"
                 + (f" (activations {acts:.0f} MB)" if acts else ""))
    mem = figures.get("peak_rss_mb_by_stage", {})
    tree = figures.get("peak_rss_tree_mb_by_stage", {})
    lines += [f"  stage {k}: {v:.1f} s" + (f", peak RSS {mem[k]:.0f} MB (with workers "
                                          f"{tree[k]:.0f} MB)" if k in mem else "")
              for k, v in figures["stages_s"].items()]
    lines.append(f"  probe + evaluate: {figures['probe_plus_evaluate_s']:.1f} s")
    lines += [f"  fit {k}: {v:.1f} s" for k, v in figures["fit_s_by_probe"].items()]
    return lines
