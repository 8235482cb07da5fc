"""The transfer stage: transfer methods under nested leave-one-corpus-out selection.

Runs after the probe stage when a config has a ``[transfer]`` table. For every configured
transfer method (``learnerprobe.methods.registry``, ``tasks = ("transfer",)``) and every
outer LOCO fold, :mod:`learnerprobe.selection.nested` chooses the method's variant (a grid point
of its options) and layer on the training corpora only (each held out in turn), refits the
choice on all training corpora and predicts the held-out corpus. The pooled held-out
predictions are scored like every other cell (``evaluation.results.score_rows``, layer
``nested``) and compared, on the same texts, to the plain probe and to the surface baseline by
a paired bootstrap (``evaluation.metrics.paired_bootstrap_diff``; rows ``diff_qwk_vs_plain`` and
``diff_qwk_vs_surface``, per held-out corpus and pooled). Rows carry ``transductive`` (the
method adapts to the unlabeled held-out texts) and ``chosen`` (the variant per fold).

Every fit is cached (``cache_root()/transfer-cells``, keyed by method, options, layer,
activations, rows and training labels), so a rerun is fast and gives the same numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from learnerprobe.config.transfer import TransferConfig
from learnerprobe.errors import ConfigError
from learnerprobe.estimators.probes.surface import (
    SurfaceBaseline,
    surface_columns,
    surface_features,
)
from learnerprobe.evaluation.cell_cache import CellCache, content_key
from learnerprobe.evaluation.metrics import paired_bootstrap_diff
from learnerprobe.evaluation.protocols import make_splits
from learnerprobe.evaluation.results import Pooled, prediction_frame, score_rows
from learnerprobe.methods.registry import BuildContext, get_method, method_names
from learnerprobe.paths import cache_root
from learnerprobe.selection import nested
from learnerprobe.tasks import TaskData

TRANSFER_VERSION = 1
#: key field of fits made by an estimator's ``fit_predict_layers`` (all candidate layers in one
#: batched training, e.g. dann): its own key, so fits of the per-job engine are not reused
LAYER_BATCHED = "layers-batched-1"
NESTED = "nested"  # value of `layer` for transfer rows: variant and layer chosen by nested LOCO
SURFACE = "surface"
N_SURFACE = 3  # surface columns appended for methods with `n_surface` (log length features)


def method_list(tc: TransferConfig) -> list[str]:
    """The plain probe first, then the configured methods (all registered transfer methods
    when ``methods`` is not given) in config order."""
    methods = tc.methods if tc.methods is not None else method_names(task="transfer")
    return [tc.plain] + [m for m in methods if m != tc.plain]


def _none(v: Any) -> Any:
    return None if isinstance(v, str) and v.lower() == "none" else v


def method_grid(name: str, tc: TransferConfig) -> list[tuple[tuple[str, Any], ...]]:
    """The method's grid points (its registry grid, ``[transfer.grid]`` overrides winning), in
    a fixed order: the order candidates are listed in and ties broken by."""
    grid = dict(get_method(name, task="transfer").grid or {})
    grid.update(tc.grid.get(name, {}))
    keys = list(grid)
    return [tuple((k, _none(v)) for k, v in zip(keys, vals, strict=True))
            for vals in itertools.product(*(grid[k] for k in keys))]


def method_inputs(name: str) -> tuple[bool, bool]:
    """(uses all candidate layers at once, takes surface columns) from the estimator params."""
    params = get_method(name).build(n_classes=2).get_params()
    return "n_layers" in params, "n_surface" in params


# --------------------------------------------------------------------------- fitting
@dataclass
class TransferInputs:
    """What fits read: activations, surface columns, domains, model key."""

    acts: np.ndarray  # layers x n x d (the candidate layers only)
    layers: list[int]
    surface: np.ndarray  # n x N_SURFACE
    domains: np.ndarray
    acts_key: str
    n_classes: int
    seed: int


def design_matrix(inp: TransferInputs, layer: Any, rows: np.ndarray, mix: bool, surf: bool) -> np.ndarray:
    if mix:
        X = np.concatenate([inp.acts[i][rows] for i in range(len(inp.layers))], axis=1)
    else:
        X = inp.acts[int(layer)][rows]
    return np.hstack([X, inp.surface[rows]]) if surf else X


def take_layers(arr: np.ndarray, pos: Sequence[int]) -> np.ndarray:
    """``arr[pos]`` (layers on the first axis) as a view when the positions are evenly spaced,
    as ``layers = "all"`` and ``[4, 6, 8, 10]`` are: memory-mapped activations then stay
    mapped (worker processes get the file, not a copy); else a copy."""
    pos = [int(p) for p in pos]
    step = pos[1] - pos[0] if len(pos) > 1 else 1
    if step > 0 and all(b - a == step for a, b in zip(pos, pos[1:], strict=False)):
        return arr[pos[0]:pos[-1] + 1:step]
    return arr[pos]


def _fit_unit(method: str, options: dict[str, Any], inp: TransferInputs, layers: list[Any],
              train: np.ndarray, y_tr: np.ndarray, predict: np.ndarray, mix: bool, surf: bool,
              batched: bool, threads: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Worker: one variant fitted on ``train`` rows and predicting ``predict`` rows, on each of
    ``layers`` (one layer, or several trained together by the estimator's
    ``fit_predict_layers``, layer for layer the same fit). The design matrices are built here,
    one fit at a time, from the shared activations; the held-out rows come with features and
    corpus names, never labels."""
    opts = dict(options)
    if surf:
        opts["n_surface"] = N_SURFACE
    if mix:
        opts["n_layers"] = len(inp.layers)
    est = get_method(method).build(BuildContext(n_classes=inp.n_classes, seed=inp.seed), opts)
    d_tr, d_te = inp.domains[train], inp.domains[predict]
    with threadpool_limits(threads):
        if batched:
            done = type(est).fit_predict_layers(
                [design_matrix(inp, L, train, False, surf) for L in layers], y_tr, d_tr,
                [design_matrix(inp, L, predict, False, surf) for L in layers], d_te,
                **est.get_params())
        else:
            X_te = design_matrix(inp, layers[0], predict, mix, surf)
            est.fit(design_matrix(inp, layers[0], train, mix, surf), y_tr, domains=d_tr)
            done = [(est.predict(X_te, domains=d_te), est.predict_proba(X_te, domains=d_te))]
    return [(np.asarray(pred, dtype=np.int64), np.asarray(proba, dtype=np.float32))
            for pred, proba in done]


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def make_fit_many(method: str, inp: TransferInputs, *, n_jobs: int, threads: int, cache: bool,
                  stats: dict[str, float]) -> nested.FitMany:
    """``fit_many`` for :func:`learnerprobe.selection.nested.nested_loco`: cached, parallel, lazy.

    The results come one job at a time, in job order, as the caller consumes them; fits are
    dispatched as results are taken (``n_jobs`` workers, a few fits ahead), and each worker
    builds its own design matrices. So memory holds a few fits' inputs, not every fit's: with
    every design matrix built up front, a 7-corpus study of 7,000 texts held gigabytes of them
    (one float64 copy of the training rows per fit)."""
    mix, surf = method_inputs(method)
    store = CellCache(cache_root() / "transfer-cells", shard=True)
    # the method's fixed settings (registry) are part of the key, not only the grid point
    est = get_method(method).build(BuildContext(n_classes=inp.n_classes, seed=inp.seed))
    params = est.get_params()
    # all candidate layers of a variant in one training (dann), else one fit per job
    batched = not mix and hasattr(type(est), "fit_predict_layers")
    fixed = {"domains": _digest(np.array([str(x) for x in inp.domains]).astype("U")),
             "surface": surf and _digest(inp.surface)}

    def key(job: nested.Job) -> str:
        return content_key({
            "v": TRANSFER_VERSION, "method": method, "options": list(job.candidate.options),
            "params": sorted((k, repr(v)) for k, v in params.items()),
            "layer": job.candidate.layer if not mix else inp.layers, "acts": inp.acts_key,
            "layer_id": None if mix else inp.layers[int(job.candidate.layer)],
            "train": _digest(job.train), "y": _digest(job.y_train.astype(np.int64)),
            "predict": _digest(job.predict), "K": inp.n_classes, "seed": inp.seed,
            **fixed, **({"engine": LAYER_BATCHED} if batched else {}),
        })

    def units(jobs: list[nested.Job], todo: list[int]) -> list[list[int]]:
        """Jobs fitted together: one each, or (batched) those that differ only in their
        layer; in the order of their first job."""
        if not batched:
            return [[i] for i in todo]
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            j = jobs[i]
            groups.setdefault((repr(j.candidate.options), _digest(j.train),
                               _digest(j.y_train.astype(np.int64)), _digest(j.predict)),
                              []).append(i)
        return list(groups.values())

    def unit_args(jobs: list[nested.Job], unit: list[int]) -> tuple:
        j = jobs[unit[0]]
        return (method, dict(j.candidate.options), inp,
                [jobs[i].candidate.layer for i in unit], j.train, j.y_train, j.predict, mix,
                surf, batched, threads)

    def run(jobs: list[nested.Job], todo: list[list[int]]) -> Iterator[list[tuple]]:
        args = (unit_args(jobs, u) for u in todo)
        if n_jobs == 1 or len(todo) < 2:
            return (_fit_unit(*a) for a in args)
        return iter(Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fit_unit)(*a) for a in args))

    def fit_many(jobs: Sequence[nested.Job]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        jobs = list(jobs)
        keys = [key(j) for j in jobs]
        hit = [cache and store.path(k).is_file() for k in keys]
        todo = units(jobs, [i for i, h in enumerate(hit) if not h])
        fitted = zip(todo, run(jobs, todo), strict=True)
        ready: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("fits", "cached", "seconds"):
            stats.setdefault(name, 0)

        def take(unit: list[int], results: list[tuple]) -> None:
            for u, r in zip(unit, results, strict=True):
                ready[u] = r
                if cache:
                    store.save(keys[u], {"pred": r[0], "proba": r[1]})
            stats["fits"] += len(unit)

        for i, k in enumerate(keys):
            z = store.load(k, required=("pred", "proba")) if hit[i] else None
            if z is not None:
                stats["cached"] += 1
                yield z["pred"], z["proba"]
                continue
            t0 = time.perf_counter()
            if hit[i]:  # an unreadable entry: refit this job on its own
                take([i], _fit_unit(*unit_args(jobs, [i])))
            while i not in ready:
                take(*next(fitted))
            stats["seconds"] += time.perf_counter() - t0
            yield ready.pop(i)
        if next(fitted, None) is not None:  # every unit was taken; lets the workers finish
            raise RuntimeError("transfer fits outnumber their jobs")

    return fit_many


# --------------------------------------------------------------------------- the stage
@dataclass
class TransferResult:
    rows: list[dict[str, Any]]
    predictions: pd.DataFrame
    pooled: list[Pooled]
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scoring:
    """How the stage's rows are scored: the study's task name, bootstrap draws, seed (the
    study's first) and shared-levels rule, as the probe stage scores its cells."""

    task: str
    n_boot: int
    seed: int
    shared_levels: bool


@dataclass(frozen=True)
class Fitting:
    """How fits run: ``n_jobs`` side by side (-1: one per core), ``threads`` BLAS threads
    each, ``cache``: read and write ``cache_root()/transfer-cells``."""

    n_jobs: int
    threads: int
    cache: bool


def candidate_layers(tc: TransferConfig, layers: list[int]) -> tuple[list[int], list[int]]:
    """``[transfer] layers`` (or every extracted layer) and their positions among ``layers``;
    a ConfigError names the ones not extracted."""
    want = list(layers) if tc.layers == "all" else list(tc.layers)
    bad = [x for x in want if x not in layers]
    if bad:
        raise ConfigError(f"transfer.layers {bad} not extracted; available: {layers}")
    return want, [layers.index(x) for x in want]


def run_transfer(tc: TransferConfig, data: TaskData, acts: dict[str, Any], *,
                 seeds: Sequence[int], folds: int, val_size: float, with_surface: bool,
                 scoring: Scoring, fitting: Fitting,
                 log: Callable[[str], None] = print) -> TransferResult:
    """Every transfer method x model x seed, nested LOCO; rows, predictions, pooled cells.

    ``tc``: the ``[transfer]`` table; ``seeds``, ``folds``, ``val_size`` make the outer
    leave-one-corpus-out splits as the probe stage makes them; ``with_surface``: the probe
    stage already scored the surface baseline (else its rows are added here)."""
    F = np.asarray(surface_features([r.text for r in data.records]), dtype=np.float64)
    S = surface_columns(F)
    rows: list[dict[str, Any]] = []
    preds: list[pd.DataFrame] = []
    pooled: list[Pooled] = []
    timings: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    for m, a in acts.items():
        want, pos = candidate_layers(tc, a.layers)
        for seed in seeds:
            splits = make_splits("loco", data.y, data.groups, data.corpora, data.languages,
                                 folds=folds, seed=seed, val_size=val_size)
            plans = nested.plan(splits, data.corpora, data.groups)
            inp = TransferInputs(take_layers(a.array, pos), want, S, np.asarray(data.corpora),
                                 a.key, data.n_classes, seed)
            base = _surface_cell(data, F, splits, seed)
            cells: dict[str, Pooled] = {}
            for name in method_list(tc):
                t0 = time.perf_counter()
                stats: dict[str, float] = {}
                nf = _run_method(tc, name, inp, plans, data, stats, fitting)
                cells[name] = _pooled(m, seed, name, nf, splits, data, want)
                dt = time.perf_counter() - t0
                timings[f"{m}.{name}"] = timings.get(f"{m}.{name}", 0.0) + dt
                chosen[f"{m}.seed{seed}.{name}"] = {f.fold: choice_label(f, want) for f in nf}
                log(f"  transfer {name}: {int(stats.get('fits', 0))} fits "
                    f"({int(stats.get('cached', 0))} cached), {dt:.1f} s; chosen "
                    + "; ".join(f"{f.fold}: {choice_label(f, want)}" for f in nf))
            for best, names in _best_sets(tc).items():  # the method itself chosen by nested LOCO
                stats = {}
                nf = _run_methods(tc, names, inp, plans, data, stats, fitting)
                cells[best] = _pooled(m, seed, best, nf, splits, data, want)
                chosen[f"{m}.seed{seed}.{best}"] = {f.fold: choice_label(f, want) for f in nf}
                log(f"  transfer {best}: chosen "
                    + "; ".join(f"{f.fold}: {choice_label(f, want)}" for f in nf))
            rows += _rows(scoring, data, cells, base, tc, chosen, m, seed)
            pooled += list(cells.values())
            preds += [prediction_frame(p, np.asarray(data.ids), data.corpora, data.y,
                                       scoring.task) for p in cells.values()]
            if not with_surface:
                rows += _tag(_score(scoring, base, data), False, None)
                pooled.append(base)
    frame = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    return TransferResult(rows, frame, pooled, timings, {"transfer_chosen": chosen})


#: Rows that choose the method itself by nested LOCO (over the configured methods):
#: ``nested_best`` among the inductive ones, ``nested_best_tta`` among all of them.
BEST = "nested_best"
BEST_TTA = "nested_best_tta"


def _best_sets(tc: TransferConfig) -> dict[str, list[str]]:
    names = method_list(tc)
    inductive = [n for n in names if not get_method(n).transductive]
    out = {}
    if tc.select_best and len(inductive) > 1:
        out[BEST] = inductive
    if tc.select_best and len(names) > len(inductive):
        out[BEST_TTA] = names
    return out


def is_transductive(name: str) -> bool:
    """A method (or a best-of row) that may adapt to the unlabeled held-out texts."""
    if name == BEST:
        return False
    return name == BEST_TTA or get_method(name).transductive


def candidates(tc: TransferConfig, name: str, inp: TransferInputs) -> list[nested.Candidate]:
    mix, _ = method_inputs(name)
    grid = method_grid(name, tc)
    layers = ["mix"] if mix else list(range(len(inp.layers)))
    return [nested.Candidate(g, L) for L in layers for g in grid]


def fitter(name: str, inp: TransferInputs, stats: dict[str, float], fitting: Fitting
           ) -> nested.FitMany:
    n_jobs = 1 if fitting.n_jobs == 1 else (fitting.n_jobs if fitting.n_jobs > 0 else -1)
    return make_fit_many(name, inp, n_jobs=n_jobs, threads=fitting.threads,
                         cache=fitting.cache, stats=stats)


def choice_label(f: nested.NestedFold, layers: list[int]) -> str:
    """The chosen variant as ``option=value,...@layer L`` (hidden-state index, or ``mix``)."""
    c = f.choice
    opts = ",".join(f"{k}={v}" for k, v in c.options) or "defaults"
    where = "mix" if c.layer == "mix" else f"layer {layers[int(c.layer)]}"
    return f"{opts}@{where}"


def _run_method(tc: TransferConfig, name: str, inp: TransferInputs,
                plans: list[nested.OuterPlan], data: TaskData, stats: dict[str, float],
                fitting: Fitting) -> list[nested.NestedFold]:
    return nested.nested_loco(plans, candidates(tc, name, inp), data.y,
                              fitter(name, inp, stats, fitting), metric=tc.metric,
                              n_classes=data.n_classes)


def _run_methods(tc: TransferConfig, names: list[str], inp: TransferInputs,
                 plans: list[nested.OuterPlan], data: TaskData, stats: dict[str, float],
                 fitting: Fitting) -> list[nested.NestedFold]:
    """Nested LOCO over the union of several methods' candidates (the method is one more
    choice, option ``method``); every fit is the method's own, so all come from its cache."""
    cands = [nested.Candidate((("method", n), *c.options), c.layer)
             for n in names for c in candidates(tc, n, inp)]
    fitters = {n: fitter(n, inp, stats, fitting) for n in names}

    def fit_many(jobs: Sequence[nested.Job]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        # candidates are listed method by method, so a run of consecutive jobs is one method's
        for n, run in itertools.groupby(jobs, key=lambda j: j.candidate.options[0][1]):
            yield from fitters[n]([nested.Job(nested.Candidate(j.candidate.options[1:],
                                                               j.candidate.layer),
                                              j.train, j.y_train, j.predict) for j in run])

    return nested.nested_loco(plans, cands, data.y, fit_many, metric=tc.metric,
                              n_classes=data.n_classes)


def _pooled(model: str, seed: int, name: str, folds: list[nested.NestedFold], splits: list,
            data: Any, layers: list[int]) -> Pooled:
    idx = np.concatenate([f.test for f in folds])
    fold = np.concatenate([[f.fold] * len(f.test) for f in folds])
    pred = np.concatenate([f.pred for f in folds])
    proba = None if any(f.proba is None for f in folds) else np.concatenate(
        [f.proba for f in folds])
    by = {sp.fold: sp for sp in splits}
    shared = np.concatenate([np.isin(data.y[f.test], np.unique(data.y[by[f.fold].fit_all]))
                             for f in folds])
    train_labels = np.concatenate([data.y[by[f.fold].fit_all] for f in folds])
    priors = {f.fold: data.y[by[f.fold].fit_all] for f in folds}
    sel = None
    if all(f.choice.layer != "mix" for f in folds):
        sel = [int(layers[int(f.choice.layer)]) for f in folds]
    return Pooled({"model": model, "mode": "tuned", "seed": seed, "protocol": "loco",
                   "probe": name, "layer": NESTED}, idx, pred, proba, fold, shared,
                  train_labels, selected_layers=sel, fold_priors=priors)


def _surface_cell(data: TaskData, F: np.ndarray, splits: list, seed: int) -> Pooled:
    """The surface baseline on the same outer folds (as the probe stage fits it)."""
    parts = []
    with threadpool_limits(1, user_api="openmp"):
        for sp in splits:
            est = SurfaceBaseline(n_classes=data.n_classes, random_state=seed)
            est.fit(F[sp.fit_all], data.y[sp.fit_all])
            proba = np.asarray(est.predict_proba(F[sp.test]), dtype=np.float32)
            parts.append((sp, proba.argmax(1), proba))
    idx = np.concatenate([sp.test for sp, _, _ in parts])
    return Pooled({"model": SURFACE, "mode": "tuned", "seed": seed, "protocol": "loco",
                   "probe": SURFACE, "layer": "none"}, idx,
                  np.concatenate([p for _, p, _ in parts]),
                  np.concatenate([b for _, _, b in parts]),
                  np.concatenate([[sp.fold] * len(sp.test) for sp, _, _ in parts]),
                  np.concatenate([np.isin(data.y[sp.test], np.unique(data.y[sp.fit_all]))
                                  for sp, _, _ in parts]),
                  np.concatenate([data.y[sp.fit_all] for sp, _, _ in parts]),
                  fold_priors={sp.fold: data.y[sp.fit_all] for sp, _, _ in parts})


def _tag(rows: list[dict[str, Any]], transductive: bool, chosen: str | None
         ) -> list[dict[str, Any]]:
    for r in rows:
        r["transductive"] = transductive
        r["chosen"] = chosen
    return rows


def _aligned(p: Pooled, order: np.ndarray) -> np.ndarray:
    """``p.pred`` in the row order ``order`` (record indices)."""
    pos = {int(i): k for k, i in enumerate(p.idx)}
    return p.pred[[pos[int(i)] for i in order]]


def _score(scoring: Scoring, p: Pooled, data: TaskData) -> list[dict[str, Any]]:
    return score_rows(p, data.y, data.corpora, task=scoring.task, kind="ordinal",
                      n_classes=data.n_classes, n_boot=scoring.n_boot, seed=scoring.seed,
                      shared_levels=scoring.shared_levels)


def _rows(scoring: Scoring, data: TaskData, cells: dict[str, Pooled], surface: Pooled,
          tc: TransferConfig, chosen: dict[str, Any], model: str, seed: int
          ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    plain = cells[tc.plain]
    for name, p in cells.items():
        tr = is_transductive(name)
        label = "; ".join(f"{k}: {v}" for k, v in chosen[f"{model}.seed{seed}.{name}"].items())
        out += _tag(_score(scoring, p, data), tr, label)
        refs = [("surface", surface)] + ([] if name == tc.plain else [("plain", plain)])
        out += _tag(paired_rows(tc.metric, scoring, data, p, refs), tr, label)
    return out


def paired_rows(metric: str, scoring: Scoring, data: TaskData, p: Pooled,
                refs: list[tuple[str, Pooled]]) -> list[dict[str, Any]]:
    """``diff_<metric>_vs_<ref>`` rows: paired bootstrap of ``p`` minus each reference on the
    same held-out texts, pooled and per held-out corpus."""
    corp = data.corpora[p.idx]
    groups = [("all", np.ones(len(p.idx), bool))]
    groups += [(c, corp == c) for c in dict.fromkeys(corp.tolist())]
    out = []
    for ref_name, ref in refs:
        ref_pred = _aligned(ref, p.idx)
        for name, m in groups:
            yt = data.y[p.idx[m]]
            d, lo, hi = paired_bootstrap_diff(yt, p.pred[m], ref_pred[m], metric,
                                              n_classes=data.n_classes,
                                              n_boot=scoring.n_boot, seed=scoring.seed)
            out.append({"task": scoring.task, **p.key,
                        "selected_layer": None, "selected_layers": None,
                        "test_corpus": name, "levels": "all",
                        "metric": f"diff_{metric}_vs_{ref_name}", "value": d, "ci_low": lo,
                        "ci_high": hi, "n": int(m.sum())})
    return out
