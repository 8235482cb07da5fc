"""`learnerprobe run`: load -> extract -> probe -> evaluate -> transfer -> report.

The stages are the evaluation engine's (:mod:`learnerprobe.engine`) one loop over cells, run
with the study's config: the probe stage is every (model, mode, seed, protocol, fold, probe)
cell (``"layers"`` and ``"features"`` providers: all layers fitted on the inner training part
of the fold, the layer chosen on the inner validation part, the test fold predicted), cached
under ``cache_root()/study-cells`` as ``.npz`` (no pickle) keyed by a hash of everything that
determines it, so a crashed run continues and a finished one reruns in seconds; the transfer
stage (:mod:`learnerprobe.study.transfer`) is the same loop over ``"nested"`` cells; a task with
its own protocol (NLI: :mod:`learnerprobe.nli.run`) runs its ``"classifier"`` cells through it.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from learnerprobe.config.study import StudyConfig
from learnerprobe.engine.cells import Cell, CellOutput, CellStore, pool
from learnerprobe.engine.data import Acts, adapt_activations, encode, extract_all, load_records
from learnerprobe.engine.folds import protocol_folds
from learnerprobe.engine.loop import run_cells
from learnerprobe.engine.nested import Fitting
from learnerprobe.engine.providers import SURFACE, Features, LayerSweep
from learnerprobe.engine.score import Scoring, score_pooled
from learnerprobe.estimators.probes.precision import (
    probe_precision,
    with_dtype_column,
    with_precision_column,
)
from learnerprobe.estimators.probes.surface import surface_features
from learnerprobe.evaluation.per_corpus import corpus_mean_rows
from learnerprobe.evaluation.protocols import Split
from learnerprobe.evaluation.results import HookResult, Pooled, results_frame
from learnerprobe.evaluation.splits import check_class_sizes
from learnerprobe.outputs import converting_write_errors
from learnerprobe.paths import cache_root
from learnerprobe.records import LearnerText
from learnerprobe.study import report as study_report
from learnerprobe.study.adapt import run_adapt
from learnerprobe.study.check import load_study
from learnerprobe.study.memory import PeakRSS
from learnerprobe.study.rundir import abandon, begin_run, publish
from learnerprobe.study.transfer import run_transfer
from learnerprobe.tasks import TaskData, get_task


# --------------------------------------------------------------------------- timing
@dataclass
class Timer:
    """Per-stage wall time and peak resident memory, printed and saved to timings.json.

    ``memory[stage]``: ``peak_rss_mb`` of this process and ``peak_rss_tree_mb`` with its worker
    processes (:class:`learnerprobe.study.memory.PeakRSS`; stages do not nest)."""

    stages: dict[str, float] = field(default_factory=dict)
    log: Callable[[str], None] = print
    memory: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            yield
        dt = time.perf_counter() - t0
        self.stages[name] = self.stages.get(name, 0.0) + dt
        prev = self.memory.get(name, {})
        self.memory[name] = {
            "peak_rss_mb": round(max(mem.peak_mb, prev.get("peak_rss_mb", 0.0)), 1),
            "peak_rss_tree_mb": round(max(mem.tree_mb, prev.get("peak_rss_tree_mb", 0.0)), 1)}
        self.log(f"[stage] {name}: {dt:.1f} s, peak RSS {mem.peak_mb:.0f} MB")


# --------------------------------------------------------------------------- study
@dataclass
class RunResult:
    out: Path
    results: pd.DataFrame
    timings: dict[str, Any]
    manifest: dict[str, Any]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("learnerprobe", "numpy", "scikit-learn", "mord", "torch", "transformers",
                "pandas", "pyarrow", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def run(
    config: StudyConfig | str | Path,
    out: str | Path | None = None,
    *,
    source: str | Path | None = None,
    records: list[LearnerText] | None = None,
    activations: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    report: bool = True,
) -> RunResult:
    """Run a study and write results.csv/.parquet, predictions.parquet, report.html,
    timings.json, manifest.json and config.toml into ``out``.

    ``config``: a loaded config (``study.check.load_study``), or its TOML file (loaded here).
    ``source``: the file a loaded config was read from, copied as config.toml (else the
    config is written out). ``records`` / ``activations`` (model name -> object with ``.array``
    layers x texts x hidden, ``.ids``, ``.layers``) bypass loading and extraction; tests use
    them to stay fast.
    """
    src_path = Path(source) if source is not None else None
    if not isinstance(config, StudyConfig):
        src_path = Path(config)
        config = load_study(src_path)
    cfg = config
    out_dir = Path(out or cfg.output or Path("runs") / cfg.name)
    # Fails at once (before any compute) when the folder cannot be written. Outputs go to a
    # staging folder and are published together, manifest.json (the completion marker) last.
    stage = begin_run(out_dir)
    try:
        with probe_precision(cfg.probe_precision):  # MLP cells: fp32 or bf16 autocast
            return _run_staged(cfg, src_path, out_dir, stage, records=records,
                               activations=activations, log=log, progress=progress,
                               report=report)
    except BaseException:
        abandon(stage)
        raise


def _run_staged(cfg: StudyConfig, src_path: Path | None, out_dir: Path, stage: Path, *,
                records: list[LearnerText] | None, activations: dict[str, Any] | None,
                log: Callable[[str], None], progress: bool, report: bool) -> RunResult:
    """The body of :func:`run`: every output is written under ``stage``, then published."""
    timer = Timer(log=log)
    t_all = time.perf_counter()

    with timer.stage("load"):
        if records is None:
            records, prep_info = load_records(cfg.corpus_configs, cfg.prep)
        else:
            prep_info = {"injected": len(records)}
        data = encode(cfg, records)
        counts = pd.crosstab(data.corpora, np.array(data.labels)[data.y])
        log(f"  {len(data.y)} labelled texts\n{counts.to_string()}")

    ev = _evaluate_task(cfg, data, stage, out_dir, activations=activations, timer=timer,
                        log=log, progress=progress)
    rows, preds, sections, pooled = ev.rows, ev.predictions, ev.sections, ev.pooled
    acts_keys, extra_manifest = ev.acts_keys, ev.manifest

    df = with_precision_column(results_frame(rows))  # which precision fitted each cell
    df = with_dtype_column(df, ev.dtypes)  # and which dtype extracted its activations
    manifest = {
        "name": cfg.name, "task": cfg.task, "date": _dt.datetime.now(_dt.UTC).isoformat(),
        "config_digest": cfg.digest(), "n_boot": cfg.n_boot, "seeds": cfg.seeds,
        "versions": _versions(), "git": _git_rev(),
        "activation_cache_keys": acts_keys, "extraction_dtypes": ev.dtypes,
        "n_texts": int(len(data.y)),
        "labels": data.labels, "texts_per_corpus": counts.sum(axis=1).astype(int).to_dict(),
        "prep": prep_info, **extra_manifest,
    }
    with converting_write_errors(out_dir, all_errors=True):
        df.to_csv(stage / "results.csv", index=False)
        df.to_parquet(stage / "results.parquet", index=False)
        if preds is not None and len(preds):
            preds.to_parquet(stage / "predictions.parquet", index=False)
        if src_path is not None:
            shutil.copyfile(src_path, stage / "config.toml")
        else:
            (stage / "config.toml").write_text(config_toml(cfg))
        if report:
            with timer.stage("report"):
                study_report.write_report(stage / "report.html", df, pooled, data, sections,
                                          manifest, timer.stages, task=cfg.task, name=cfg.name,
                                          models=cfg.models)
        timings = {"stages": timer.stages, "total": time.perf_counter() - t_all,
                   "memory": timer.memory}
        timings.update(getattr(timer, "extra", {}))
        (stage / "timings.json").write_text(json.dumps(timings, indent=2))
    manifest = publish(out_dir, stage, manifest)  # completion marker written last
    log(f"[stage] total: {timings['total']:.1f} s -> {out_dir}")
    return RunResult(out_dir, df, timings, manifest)


@dataclass
class _Evaluated:
    """What evaluating a task gives the writer: result rows, predictions, report input."""

    rows: list[dict[str, Any]]
    predictions: pd.DataFrame | None
    sections: list[Any]
    pooled: list[Pooled]
    acts_keys: dict[str, str]
    manifest: dict[str, Any]
    dtypes: dict[str, str] = field(default_factory=dict)  # model -> extraction dtype


def _holdout(reference_split: str, mode: str) -> bool:
    """Whether IID in ``mode`` is the one 80/20 holdout split (else ``folds`` folds)."""
    return mode == "reference" and reference_split == "holdout"


def _iid_kfold(cfg: StudyConfig) -> bool:
    """Whether some IID evaluation of the study uses ``folds`` folds."""
    return "iid" in cfg.protocols and not all(_holdout(cfg.reference_split, m)
                                              for m in cfg.modes)


def _evaluate_task(cfg: StudyConfig, data: TaskData, stage: Path, out_dir: Path, *,
                   activations: dict[str, Any] | None, timer: Timer,
                   log: Callable[[str], None], progress: bool) -> _Evaluated:
    """The task's own protocol (NLI) when it has one, else the probe pipeline
    (extract -> cells -> pooled out-of-fold predictions -> score rows)."""
    task = get_task(cfg.task)
    if not task.uses_probes:
        with timer.stage(task.stage):
            # analyses are staged with the other outputs; method results are cached in place
            # (OUT/<stage>/cache) so that a crashed run resumes
            res: HookResult = task.evaluate(cfg, data, stage, out_dir, log=log)
        timer.stages.update({f"{task.stage}.{k}": v for k, v in res.timings.items()})
        return _Evaluated(res.rows, res.predictions, res.sections, [], {}, res.manifest)
    if _iid_kfold(cfg):  # classes smaller than the folds: said (or refused) before extraction
        check_class_sizes(data.y, cfg.folds, data.labels, strict=False)
    with timer.stage("extract"):
        raw = activations if activations is not None else extract_all(
            data, cfg.models, layers=cfg.layers, extraction=cfg.extraction,
            execution=cfg.execution, log=log, progress=progress)
        acts = {m: adapt_activations(raw[m], data, cfg.layers) for m in cfg.models}
    pooled = _probe_stage(cfg, data, acts, timer, log, progress)
    scoring = Scoring(task=cfg.task, n_boot=cfg.n_boot, seed=cfg.seeds[0],
                      shared_levels=cfg.shared_levels, kind=task.label_kind)
    with timer.stage("evaluate"):
        rows, preds = score_pooled(scoring, data, pooled, log, n_jobs=cfg.n_jobs)
    extra: dict[str, Any] = {}
    if cfg.transfer is not None:  # transfer methods, nested LOCO selection
        with timer.stage("transfer"):
            tr = run_transfer(cfg.transfer, data, acts, seeds=cfg.seeds, folds=cfg.folds,
                              val_size=cfg.selection.val_size, with_surface=cfg.with_surface,
                              scoring=scoring, fitting=Fitting(cfg.n_jobs, cfg.threads,
                                                               cfg.cache_cells), log=log)
        rows, pooled, extra = rows + tr.rows, pooled + tr.pooled, tr.manifest
        preds = pd.concat([preds, tr.predictions], ignore_index=True)
        timer.stages.update({f"transfer.{k}": v for k, v in tr.timings.items()})
    if cfg.adapt is not None:  # loco_k: adaptation from k labelled texts per held-out corpus
        with timer.stage("adapt"):
            ad = run_adapt(cfg.adapt, data, acts, seeds=cfg.seeds, folds=cfg.folds,
                           val_size=cfg.selection.val_size, refit=cfg.selection.refit,
                           metric=get_task(cfg.task).selection_metric(cfg.selection),
                           task=cfg.task, log=log,
                           store=CellStore(cache_root() / "adapt-cells")
                           if cfg.cache_cells else None)
        rows, extra = rows + ad.rows, {**extra, **ad.manifest}
    if task.label_kind == "ordinal":  # mean per-corpus QWK beside the pooled one
        rows += corpus_mean_rows(pooled, data.y, data.corpora, task=cfg.task,
                                 n_classes=data.n_classes, n_boot=cfg.n_boot,
                                 seed=cfg.seeds[0])
    return _Evaluated(rows, preds, [], pooled, {m: a.key for m, a in acts.items()}, extra,
                      {m: str(a.meta.get("dtype") or "unknown") for m, a in acts.items()})


def _git_rev() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=5, cwd=Path(__file__).parent)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def config_toml(cfg: StudyConfig) -> str:
    """The config of a programmatic run as TOML that `load_config` reads back to the same config
    (tomli-w, not a hand-written writer: corpus tables and nested option tables must survive)."""
    return tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True, by_alias=True))


def _probe_cells(cfg: StudyConfig, data: TaskData
                 ) -> tuple[list[Cell], dict[tuple, list[Split]]]:
    """Every (model, mode, seed, protocol, fold, probe) cell of the probe stage, and the folds
    of each (protocol, seed, holdout)."""
    cells: list[Cell] = []
    folds: dict[tuple, list[Split]] = {}
    for mode in cfg.modes:
        for seed in cfg.seeds:
            for proto in cfg.protocols:
                holdout = _holdout(cfg.reference_split, mode)
                k = (proto, seed, holdout)
                if k not in folds:
                    folds[k] = protocol_folds(proto, data, folds=cfg.folds, seed=seed,
                                              val_size=cfg.selection.val_size,
                                              holdout=holdout)
                for sp in folds[k]:
                    cells += [Cell(m, mode, seed, proto, p, sp) for m in cfg.models
                              for p in cfg.probe_names]
                    if cfg.with_surface:
                        cells.append(Cell(SURFACE, mode, seed, proto, SURFACE, sp))
    return cells, folds


def _probe_stage(cfg: StudyConfig, data: TaskData, acts: dict[str, Acts], timer: Timer,
                 log: Callable[[str], None], progress: bool) -> list[Pooled]:
    """Every probe cell through the engine's loop (cached cells loaded), then pooled
    out-of-fold predictions per layer and for the validation-chosen layer."""
    cells, folds = _probe_cells(cfg, data)
    metric = get_task(cfg.task).selection_metric(cfg.selection)  # else the task's default
    sweep = LayerSweep(acts, data, metric, cfg.selection.refit, cfg.sweep_jobs)
    providers: dict[str, Any] = {p: sweep for p in cfg.probe_names}
    if cfg.with_surface:
        F = np.asarray(surface_features([r.text for r in data.records]), dtype=np.float32)
        providers[SURFACE] = Features(F, data, metric, cfg.selection.refit)
    store = CellStore(cache_root() / "study-cells") if cfg.cache_cells else None
    per_mode: dict[str, float] = {}
    per_probe: dict[str, float] = {}
    n_cached = [0]
    with timer.stage("probe"), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not progress, transient=False,
    ) as bar:
        task = bar.add_task("probing", total=len(cells))

        def on_done(c: Cell, r: CellOutput) -> None:
            if r.cached:
                n_cached[0] += 1
            else:
                per_mode[c.mode] = per_mode.get(c.mode, 0.0) + r.seconds
                per_probe[f"{c.mode}.{c.method}"] = (per_probe.get(f"{c.mode}.{c.method}", 0.0)
                                                     + r.seconds)
            bar.update(task, advance=1, description=f"{c.mode} {c.protocol}:{c.fold} "
                                                    f"{c.model} {c.method}")

        # local: a plain loop (n_jobs 1) or joblib processes; ray: one Ray task per cell
        results = run_cells(cells, providers, store=store, n_jobs=cfg.n_jobs,
                            threads=cfg.threads, execution=cfg.execution, on_done=on_done)
    log(f"  cells: {len(cells)} ({n_cached[0]} from cache)")
    for k, v in sorted(per_probe.items()):
        log(f"  fit time {k}: {v:.1f} s")
    timer.extra = {"cells": len(cells), "cells_cached": n_cached[0],  # type: ignore[attr-defined]
                   "fit_seconds_by_mode": per_mode, "fit_seconds_by_probe": per_probe}
    return _pool_probes(cfg, data, providers, folds, results)


def _pool_probes(cfg: StudyConfig, data: TaskData, providers: dict[str, Any],
                 folds: dict[tuple, list[Split]], results: dict[tuple, CellOutput]
                 ) -> list[Pooled]:
    """Out-of-fold test predictions per (model, mode, seed, protocol, probe, layer)."""
    pooled: list[Pooled] = []
    for mode in cfg.modes:
        for seed in cfg.seeds:
            for proto in cfg.protocols:
                splits = folds[(proto, seed, _holdout(cfg.reference_split, mode))]
                models = [(m, p) for m in cfg.models for p in cfg.probe_names]
                if cfg.with_surface:
                    models.append((SURFACE, SURFACE))
                for m, p in models:
                    cells = [Cell(m, mode, seed, proto, p, sp) for sp in splits]
                    outs = [results[c.key] for c in cells]
                    prov = providers[p]
                    base = {"model": m, "mode": mode, "seed": seed, "protocol": proto,
                            "probe": p}
                    sel = prov.chosen_layers(cells[0], outs) if p != SURFACE else None
                    pooled += pool(base, splits, outs, data, prov.layer_names(cells[0]),
                                   selected_ids=sel)
    return pooled
