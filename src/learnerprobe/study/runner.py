"""`learnerprobe run`: extract -> probe -> evaluate -> report, resumable cell by cell.

A *cell* is one (model, mode, seed, protocol, fold, probe): all layers are fitted on the inner
training part of the fold, predicted on the inner validation part (used only to choose the layer)
and on the test fold. Each finished cell is cached under ``cache_root()/study-cells`` as an
``.npz`` (no pickle) keyed by a hash of everything that determines it, so a crashed run continues
and a finished one reruns in seconds.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w
from joblib import Parallel, delayed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from learnerprobe.config.corpus import CorpusConfig
from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.config.study import ExtractionConfig, Layers, PrepConfig, StudyConfig
from learnerprobe.corpora.registry import load_corpus_config
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.estimators.probes.all_layers import engine_key
from learnerprobe.estimators.probes.precision import probe_precision, with_precision_column
from learnerprobe.estimators.probes.surface import SurfaceBaseline, surface_features
from learnerprobe.evaluation.cell_cache import CellCache, content_key, read_npz, write_npz
from learnerprobe.evaluation.per_corpus import corpus_mean_rows
from learnerprobe.evaluation.protocols import Split, check_disjoint, make_splits
from learnerprobe.evaluation.results import (
    NO_LAYER,
    SELECTED,
    HookResult,
    Pooled,
    prediction_frame,
    results_frame,
    score_rows,
)
from learnerprobe.evaluation.splits import check_class_sizes
from learnerprobe.evaluation.trust_rows import trust_rows
from learnerprobe.execution.cells import map_cells
from learnerprobe.extract import get_activations
from learnerprobe.outputs import converting_write_errors
from learnerprobe.paths import cache_root
from learnerprobe.prep.clean import clean
from learnerprobe.prep.mask import mask_records
from learnerprobe.records import LearnerText
from learnerprobe.selection.validation import fit_layers, select_layer
from learnerprobe.study import report as study_report
from learnerprobe.study.adapt import run_adapt
from learnerprobe.study.check import load_study
from learnerprobe.study.rundir import abandon, begin_run, publish
from learnerprobe.study.transfer import Fitting, Scoring, run_transfer
from learnerprobe.tasks import TaskData, get_task

CELL_VERSION = 1
SURFACE = "surface"



# --------------------------------------------------------------------------- timing
@dataclass
class Timer:
    """Per-stage wall time, printed and saved to timings.json."""

    stages: dict[str, float] = field(default_factory=dict)
    log: Callable[[str], None] = print

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.stages[name] = self.stages.get(name, 0.0) + dt
        self.log(f"[stage] {name}: {dt:.1f} s")


# --------------------------------------------------------------------------- data
#: Records with encoded labels and the arrays protocols need (``learnerprobe.tasks.TaskData``).
StudyData = TaskData


def load_records(corpora: Sequence[CorpusConfig], prep: PrepConfig
                 ) -> tuple[list[LearnerText], dict[str, Any]]:
    """Load the configured corpora (``StudyConfig.corpus_configs``) and prepare them as
    ``[prep]`` says (clean, dedupe, mask)."""
    records: list[LearnerText] = []
    info: dict[str, Any] = {"loaded": {}}
    for corpus in corpora:
        # An entry carries its own root and loader options; its study name is `as` or `name`.
        name = corpus.study_name
        recs = load_corpus_config(corpus)
        info["loaded"][name] = len(recs)
        report = getattr(recs, "report", None)  # what the loader skipped or could not read
        if report:
            info.setdefault("load_report", {})[name] = report.to_dict()
        # The study's corpus is the configured name (merlin-cs, not the loader's "merlin"), so
        # protocols and tables tell sub-corpora apart; the loader's name stays in meta.
        records.extend(
            r if r.corpus == name else replace(r, corpus=name, meta={**r.meta,
                                                                     "corpus_loader": r.corpus})
            for r in recs)
    if prep.clean:
        records, report = clean(records)
        info["clean"] = _jsonable(report)
    if prep.dedupe:
        seen: set[str] = set()
        kept = []
        for r in records:
            if r.hash not in seen:
                seen.add(r.hash)
                kept.append(r)
        info["duplicates_dropped"] = len(records) - len(kept)
        records = kept
    if prep.mask:
        records, counts = mask_records(records)
        info["mask"] = _jsonable(counts)
    return records, info


def encode(cfg: StudyConfig, records: list[LearnerText], task: str | None = None
           ) -> StudyData:
    """The task's data (``learnerprobe.tasks``; ``task``: default the config's): labels
    mapped, unlabelled texts dropped, classes checked; the one place that hands a task its
    sections of the config."""
    return get_task(task or cfg.task).prepare(records, labels=cfg.labels,
                                              corpora=cfg.corpus_names, prep=cfg.prep,
                                              nli=cfg.nli_config)


# --------------------------------------------------------------------------- activations
@dataclass
class Acts:
    """The runner's view of an Activations object: layers x texts x hidden, in record order."""

    array: np.ndarray
    layers: list[int]
    key: str
    width: int
    meta: dict[str, Any]


def _acts_key(a: Any) -> str:
    """The activation cache folder's name (it is the cache key), else a hash of the array."""
    path = getattr(a, "cache_path", None)
    if path:
        return Path(path).name
    h = hashlib.sha256(np.ascontiguousarray(a.array).tobytes())
    return "array-" + h.hexdigest()[:16]


def adapt_activations(a: Any, data: StudyData, cfg_layers: Layers) -> Acts:
    """Align an Activations object to the records and pick the configured layers."""
    arr = a.array
    ids = getattr(a, "ids", None)
    if ids is not None and list(ids) != list(data.ids):
        pos = {str(i): k for k, i in enumerate(ids)}
        missing = [i for i in data.ids if str(i) not in pos]
        if missing:
            raise LearnerprobeError(f"activations lack {len(missing)} texts, e.g. {missing[:3]}")
        arr = arr[:, [pos[str(i)] for i in data.ids]]
    avail = [int(x) for x in (getattr(a, "layers", None) or range(arr.shape[0]))]
    if cfg_layers == "all":
        want = avail
    else:
        bad = [x for x in cfg_layers if x not in avail]
        if bad:
            raise ConfigError(f"layers {bad} not extracted; available: {avail}")
        want = list(cfg_layers)
    rows = [avail.index(x) for x in want]
    if rows != list(range(arr.shape[0])):
        arr = arr[rows]
    meta = {k: getattr(a, k) for k in ("cache_hit", "n_truncated", "cache_path")
            if getattr(a, k, None) is not None}
    meta = _jsonable(meta)
    return Acts(np.asarray(arr, dtype=np.float32), want, _acts_key(a),
                int(getattr(a, "hidden_size", arr.shape[-1])), meta)


def extract_all(data: StudyData, models: Sequence[str], *, layers: Layers,
                extraction: ExtractionConfig, execution: ExecutionConfig,
                log: Callable[[str], None], progress: bool = True) -> dict[str, Any]:
    """Activations of the records for every configured model (cached by the extract module)."""
    out = {}
    kw = extraction.kwargs()
    wanted = None if layers == "all" else layers
    if execution.is_ray:  # Ray Data actors fill the cache; the reads below are then hits
        from learnerprobe.execution.ray_extract import fill_models  # heavy optional: ray

        fill_models(data.records, list(models), execution=execution, layers=wanted,
                    extraction=kw, log=log)
    for m in models:
        t0 = time.perf_counter()
        out[m] = get_activations(data.records, m, layers=wanted, progress=progress, **kw)
        hit = getattr(out[m], "cache_hit", None)
        log(f"  activations {m}: {out[m].array.shape} cache_hit={hit} "
            f"({time.perf_counter() - t0:.1f} s)")
    return out


# --------------------------------------------------------------------------- cells
def fit_predict(X_train, y_train, X_test, probe, *, mode, n_classes, seed, width, n_jobs=1):
    """All layers of one probe: ``{"pred": layers x m, "proba": layers x m x K | None}``.

    ``learnerprobe.estimators.probes.all_layers``: tuned mode shares standardisation and closed-form ridge across
    layers; reference mode is the plain per-layer loop of the published protocol.
    """
    return fit_layers(X_train, y_train, X_test, probe, mode=mode, n_classes=n_classes,
                      seed=seed, width=width, n_jobs=n_jobs)


def surface_fit_predict(F_train, y_train, F_test, *, mode, n_classes, seed):
    """Surface baseline (gradient boosting on length features) as one pseudo-layer.

    It keeps its defaults in both modes, so it is the same yardstick everywhere."""
    # OpenMP threads buy nothing on a few thousand rows x 3 features and, on a busy machine,
    # oversubscription made one fit take 50 s instead of 0.4 s.
    with threadpool_limits(1, user_api="openmp"):
        est = SurfaceBaseline(n_classes=n_classes, random_state=seed).fit(F_train, y_train)
        proba = np.asarray(est.predict_proba(F_test), dtype=np.float32)
    pred = np.argmax(proba, axis=1).astype(np.int64)
    return {"pred": pred[None], "proba": proba[None]}


@dataclass
class CellResult:
    pred: np.ndarray  # layers x m (test fold)
    proba: np.ndarray | None  # layers x m x K
    val_scores: np.ndarray  # layers
    selected: int  # index into layers
    seconds: float
    cached: bool = False
    val_proba: np.ndarray | None = None  # layers x n_val x K: conformal calibration (trust_rows)


_CELL_ARRAYS = ("pred", "proba", "has_proba", "val_scores", "selected", "seconds")


def _cell_path(key: str) -> Path:
    return CellCache(cache_root() / "study-cells", shard=True).path(key)


def load_cell(path: Path) -> CellResult | None:
    z = read_npz(path, required=_CELL_ARRAYS)  # unreadable (e.g. half-written): None, recompute
    if z is None:
        return None
    proba = z["proba"] if z["has_proba"] else None
    if "val_proba" not in z:  # cached before coverage rows existed: recompute once
        return None
    val_proba = z["val_proba"] if z["val_proba"].size else None
    return CellResult(z["pred"], proba, z["val_scores"], int(z["selected"]),
                      float(z["seconds"]), cached=True, val_proba=val_proba)


def save_cell(path: Path, r: CellResult) -> None:
    write_npz(path, {"pred": r.pred, "proba": r.proba if r.proba is not None else np.zeros(0),
                     "has_proba": r.proba is not None, "val_scores": r.val_scores,
                     "selected": r.selected, "seconds": r.seconds,
                     "val_proba": r.val_proba if r.val_proba is not None else np.zeros(0)})


def run_cell(X: np.ndarray, y: np.ndarray, split: Split, probe: str, *, mode: str,
             n_classes: int, seed: int, width: int, metric: str, refit: bool,
             n_jobs: int = 1) -> CellResult:
    """Fit all layers on the inner training part; choose the layer on validation only."""
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"mode": mode, "seed": seed}
    if probe == SURFACE:  # features (texts x f) as one pseudo-layer
        XL, fit = X[None], _surface_layer
    else:
        XL, fit = X, fit_predict
        kw.update(width=width, n_jobs=n_jobs)
    sel = select_layer(XL[:, split.train], y[split.train], XL[:, split.val], y[split.val], probe,
                       metric=metric, n_classes=n_classes, X_test=XL[:, split.test], fit=fit,
                       **kw)
    pred_t, proba_t = sel.test_pred, sel.test_proba
    if refit:
        out = fit(XL[:, split.fit_all], y[split.fit_all], XL[:, split.test], probe,
                  n_classes=n_classes, **kw)
        pred_t = np.asarray(out["pred"])
        proba_t = None if out.get("proba") is None else np.asarray(out["proba"])
    return CellResult(pred_t.astype(np.int64),
                      None if proba_t is None else proba_t.astype(np.float32),
                      sel.scores, sel.layer_index, time.perf_counter() - t0,
                      val_proba=None if sel.val_proba is None or refit
                      else np.asarray(sel.val_proba, dtype=np.float32))


def _surface_layer(F_train, y_train, F_test, probe, *, mode, n_classes, seed):
    """:func:`surface_fit_predict` with the layer axis of the probes (one pseudo-layer)."""
    return surface_fit_predict(F_train[0], y_train, F_test[0], mode=mode, n_classes=n_classes,
                               seed=seed)


def _compute_cell(ck: tuple, X: np.ndarray, y: np.ndarray, sp: Split, probe: str,
                  kw: dict[str, Any], path: Path | None, threads: int) -> tuple[tuple, CellResult]:
    """Worker: one cell with a bounded BLAS/OpenMP thread pool, saved as soon as it is done.

    Cells run side by side (``n_jobs``); unbounded thread pools oversubscribe the cores (on a
    busy 2-core machine a logistic fit went from 0.3 s to 3 s)."""
    with threadpool_limits(threads):
        r = run_cell(X, y, sp, probe, **kw)
    if path is not None:
        save_cell(path, r)
    return ck, r


# --------------------------------------------------------------------------- study
@dataclass
class RunResult:
    out: Path
    results: pd.DataFrame
    timings: dict[str, Any]
    manifest: dict[str, Any]


def _jsonable(x: Any) -> Any:
    try:
        return json.loads(json.dumps(x, default=lambda o: getattr(o, "__dict__", str(o))))
    except (TypeError, ValueError):
        return str(x)


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
    manifest = {
        "name": cfg.name, "task": cfg.task, "date": _dt.datetime.now(_dt.UTC).isoformat(),
        "config_digest": cfg.digest(), "n_boot": cfg.n_boot, "seeds": cfg.seeds,
        "versions": _versions(), "git": _git_rev(),
        "activation_cache_keys": acts_keys, "n_texts": int(len(data.y)),
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
        timings = {"stages": timer.stages, "total": time.perf_counter() - t_all}
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


def _holdout(reference_split: str, mode: str) -> bool:
    """Whether IID in ``mode`` is the one 80/20 holdout split (else ``folds`` folds)."""
    return mode == "reference" and reference_split == "holdout"


def _iid_kfold(cfg: StudyConfig) -> bool:
    """Whether some IID evaluation of the study uses ``folds`` folds."""
    return "iid" in cfg.protocols and not all(_holdout(cfg.reference_split, m)
                                              for m in cfg.modes)


def _evaluate_task(cfg: StudyConfig, data: StudyData, stage: Path, out_dir: Path, *,
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
                      shared_levels=cfg.shared_levels)
    with timer.stage("evaluate"):
        rows, preds = _evaluate(scoring, data, pooled, log, n_jobs=cfg.n_jobs)
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
                           task=cfg.task, log=log)
        rows, extra = rows + ad.rows, {**extra, **ad.manifest}
    if task.label_kind == "ordinal":  # mean per-corpus QWK beside the pooled one
        rows += corpus_mean_rows(pooled, data.y, data.corpora, task=cfg.task,
                                 n_classes=data.n_classes, n_boot=cfg.n_boot,
                                 seed=cfg.seeds[0])
    return _Evaluated(rows, preds, [], pooled, {m: a.key for m, a in acts.items()}, extra)


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


def _probe_stage(cfg: StudyConfig, data: StudyData, acts: dict[str, Acts], timer: Timer,
                 log: Callable[[str], None], progress: bool) -> list[Pooled]:
    """Compute (or load) every cell, then pool out-of-fold predictions per layer."""
    jobs: list[tuple[str, str, int, Split, str]] = []
    split_cache: dict[tuple, list[Split]] = {}
    for mode in cfg.modes:
        for seed in cfg.seeds:
            for proto in cfg.protocols:
                holdout = _holdout(cfg.reference_split, mode)
                k = (proto, seed, holdout)
                if k not in split_cache:
                    split_cache[k] = make_splits(
                        proto, data.y, data.groups, data.corpora, data.languages,
                        folds=cfg.folds, seed=seed, val_size=cfg.selection.val_size,
                        holdout=holdout, labels=data.labels)
                for sp in split_cache[k]:
                    check_disjoint(data.groups, sp.train, sp.test, f"{proto} {sp.fold}")
                    check_disjoint(data.groups, sp.val, sp.test, f"{proto} {sp.fold}")
                    for m in cfg.models:
                        for p in cfg.probe_names:
                            jobs.append((m, mode, seed, sp, p))
                    if cfg.with_surface:
                        jobs.append((SURFACE, mode, seed, sp, SURFACE))
    F = None
    if cfg.with_surface:
        F = np.asarray(surface_features([r.text for r in data.records]), dtype=np.float32)
    y_hash = hashlib.sha256(data.y.tobytes() + "|".join(data.ids).encode()).hexdigest()[:16]
    metric = get_task(cfg.task).selection_metric(cfg.selection)  # else the task's default
    results: dict[tuple, CellResult] = {}
    per_mode: dict[str, float] = {}
    per_probe: dict[str, float] = {}
    pending = []
    for m, mode, seed, sp, p in jobs:
        key_src = {
            "v": CELL_VERSION, "acts": "surface" if p == SURFACE else acts[m].key,
            "layers": [] if p == SURFACE else acts[m].layers, "probe": p, "mode": mode,
            "seed": seed, "split": sp.digest(), "y": y_hash, "K": data.n_classes,
            "metric": metric, "refit": cfg.selection.refit, **engine_key(p, mode),
        }
        key = content_key(key_src)
        path = _cell_path(key)
        r = load_cell(path) if cfg.cache_cells else None
        ck = (m, mode, seed, sp.protocol, sp.fold, p)
        if r is None:
            X = F if p == SURFACE else acts[m].array
            kw = dict(mode=mode, n_classes=data.n_classes, seed=seed,
                      width=1 if p == SURFACE else acts[m].width,
                      metric=metric, refit=cfg.selection.refit,
                      n_jobs=cfg.sweep_jobs)
            pending.append((ck, X, sp, p, kw, path if cfg.cache_cells else None))
        else:
            results[ck] = r
    n_cached = len(results)
    with timer.stage("probe"), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not progress, transient=False,
    ) as bar:
        task = bar.add_task("probing", total=len(jobs), completed=n_cached)
        # local: a plain loop (n_jobs 1) or joblib processes; ray: one Ray task per cell
        done = map_cells(_compute_cell, [(ck, X, data.y, sp, p, kw, path, cfg.threads)
                                         for ck, X, sp, p, kw, path in pending],
                         n_jobs=cfg.n_jobs, execution=cfg.execution)
        for ck, r in done:
            results[ck] = r
            mode, p = ck[1], ck[5]
            per_mode[mode] = per_mode.get(mode, 0.0) + r.seconds
            per_probe[f"{mode}.{p}"] = per_probe.get(f"{mode}.{p}", 0.0) + r.seconds
            bar.update(task, advance=1, description=f"{mode} {ck[3]}:{ck[4]} {ck[0]} {p}")
    log(f"  cells: {len(jobs)} ({n_cached} from cache)")
    for k, v in sorted(per_probe.items()):
        log(f"  fit time {k}: {v:.1f} s")
    timer.extra = {"cells": len(jobs), "cells_cached": n_cached,  # type: ignore[attr-defined]
                   "fit_seconds_by_mode": per_mode, "fit_seconds_by_probe": per_probe}
    return _pool(cfg, data, acts, split_cache, results)


def _pool(cfg: StudyConfig, data: StudyData, acts: dict[str, Acts],
          split_cache: dict[tuple, list[Split]], results: dict[tuple, CellResult]
          ) -> list[Pooled]:
    """Concatenate out-of-fold test predictions per (model, mode, seed, protocol, probe, layer)."""
    pooled: list[Pooled] = []
    for mode in cfg.modes:
        for seed in cfg.seeds:
            for proto in cfg.protocols:
                holdout = _holdout(cfg.reference_split, mode)
                splits = split_cache[(proto, seed, holdout)]
                models = [(m, p) for m in cfg.models for p in cfg.probe_names]
                if cfg.with_surface:
                    models.append((SURFACE, SURFACE))
                for m, p in models:
                    cells = [results[(m, mode, seed, proto, sp.fold, p)] for sp in splits]
                    idx = np.concatenate([sp.test for sp in splits])
                    fold = np.concatenate([[sp.fold] * len(sp.test) for sp in splits])
                    train_labels = np.concatenate([data.y[sp.fit_all] for sp in splits])
                    shared = np.concatenate([
                        np.isin(data.y[sp.test], np.unique(data.y[sp.fit_all])) for sp in splits
                    ])
                    priors = {sp.fold: data.y[sp.fit_all] for sp in splits}
                    layers = [NO_LAYER] if p == SURFACE else [str(x) for x in acts[m].layers]
                    base = {"model": m, "mode": mode, "seed": seed, "protocol": proto,
                            "probe": p}

                    def cat(li, cells=cells):
                        pr = np.concatenate([c.pred[li] for c in cells])
                        pb = None
                        if all(c.proba is not None for c in cells):
                            pb = np.concatenate([c.proba[li] for c in cells])
                        return pr, pb

                    for li, lname in enumerate(layers):
                        pr, pb = cat(li)
                        pooled.append(Pooled({**base, "layer": lname}, idx, pr, pb, fold,
                                             shared, train_labels, fold_priors=priors,
                                             **_calibration(cells, splits, [li] * len(cells))))
                    if p != SURFACE:
                        pr = np.concatenate([c.pred[c.selected] for c in cells])
                        pb = None
                        if all(c.proba is not None for c in cells):
                            pb = np.concatenate([c.proba[c.selected] for c in cells])
                        sel = [int(acts[m].layers[c.selected]) for c in cells]
                        cal = _calibration(cells, splits, [c.selected for c in cells])
                        pooled.append(Pooled({**base, "layer": SELECTED}, idx, pr, pb, fold,
                                             shared, train_labels, selected_layers=sel,
                                             fold_priors=priors, **cal))
    return pooled


def _calibration(cells: list[CellResult], splits: list[Split], layer: list[int]
                 ) -> dict[str, Any]:
    """Each fold's validation texts and their probabilities at ``layer[i]`` (Pooled.cal_*),
    empty when a cell kept none (no probabilities, refit, or cached without them)."""
    if any(c.val_proba is None for c in cells):
        return {}
    return {"cal_idx": np.concatenate([sp.val for sp in splits]),
            "cal_proba": np.concatenate([c.val_proba[li] for c, li in zip(cells, layer, strict=True)]),
            "cal_fold": np.concatenate([[sp.fold] * len(sp.val) for sp in splits])}


def _evaluate(scoring: Scoring, data: StudyData, pooled: list[Pooled],
              log: Callable[[str], None], *, n_jobs: int) -> tuple[list[dict], pd.DataFrame]:
    """Bootstrap every pooled cell (in parallel over cells, ``n_jobs`` threads) and collect
    predictions."""
    kind = get_task(scoring.task).label_kind

    def one(p: Pooled) -> list[dict]:
        return score_rows(p, data.y, data.corpora, task=scoring.task, kind=kind,
                          n_classes=data.n_classes, n_boot=scoring.n_boot, seed=scoring.seed,
                          shared_levels=scoring.shared_levels) + trust_rows(
            p, data.y, data.corpora, task=scoring.task, kind=kind)

    parts = Parallel(n_jobs=n_jobs if n_jobs > 0 else -1, prefer="threads")(
        delayed(one)(p) for p in pooled)
    rows = [r for part in parts for r in part]
    preds = pd.concat([prediction_frame(p, data.ids, data.corpora, data.y, scoring.task)
                       for p in pooled], ignore_index=True) if pooled else pd.DataFrame()
    log(f"  {len(rows)} result rows, {len(preds)} prediction rows")
    return rows, preds
