"""Nested cells: transfer methods, their variant and layer chosen inside the training fold.

The ``"nested"`` cell provider. For one outer fold, :mod:`learnerprobe.selection.nested` plans
inner folds inside the fold's training part (each training corpus held out in turn; one corpus:
the fold's own grouped validation split), fits every candidate (a grid point of the method's
options x a candidate layer) on every inner fold, chooses on the pooled inner-validation
predictions, refits the choice on the whole training fold and predicts the test fold. A provider
may choose among several methods at once (``nested_best``: the method is one more option).

Fits stream: each worker builds its own design matrices from the shared (memory-mapped)
activations, and results are scored as they arrive, so memory does not grow with the number of
fits. Every fit is cached (``cache_root()/transfer-cells``, keyed by method, options, layer,
activations, rows and training labels), so a rerun is fast and gives the same numbers.
``learnerprobe train --method`` runs the same choice on :func:`learnerprobe.engine.folds.
whole_fold` and refits it (:func:`choose_and_refit`).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from learnerprobe.config.transfer import TransferConfig
from learnerprobe.engine.cells import Cell, CellOutput
from learnerprobe.engine.data import Acts
from learnerprobe.errors import ConfigError
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.cell_cache import CellCache, content_key
from learnerprobe.evaluation.protocols import Split
from learnerprobe.methods.registry import BuildContext, get_method
from learnerprobe.paths import cache_root
from learnerprobe.selection import nested
from learnerprobe.tasks import TaskData

TRANSFER_VERSION = 1
#: key field of fits made by an estimator's ``fit_predict_layers`` (all candidate layers in one
#: batched training, e.g. dann): its own key, so fits of the per-job engine are not reused
LAYER_BATCHED = "layers-batched-1"
NESTED = "nested"  # value of `layer` for nested rows: variant and layer chosen by nested LOCO
N_SURFACE = 3  # surface columns appended for methods with `n_surface` (log length features)

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


class FitStream:
    """``fit_many`` for :func:`learnerprobe.selection.nested.nested_loco`: cached, parallel, lazy.

    The results come one job at a time, in job order, as the caller consumes them; fits are
    dispatched as results are taken (``n_jobs`` workers, a few fits ahead), and each worker
    builds its own design matrices. So memory holds a few fits' inputs, not every fit's: with
    every design matrix built up front, a 7-corpus study of 7,000 texts held gigabytes of them
    (one float64 copy of the training rows per fit)."""

    def __init__(self, method: str, inp: TransferInputs, *, n_jobs: int, threads: int,
                 cache: bool, stats: dict[str, float]) -> None:
        self.method, self.inp, self.n_jobs, self.threads = method, inp, n_jobs, threads
        self.cache, self.stats = cache, stats
        self.mix, self.surf = method_inputs(method)
        self.store = CellCache(cache_root() / "transfer-cells", shard=True)
        # the method's fixed settings (registry) are part of the key, not only the grid point
        est = get_method(method).build(BuildContext(n_classes=inp.n_classes, seed=inp.seed))
        self.params = sorted((k, repr(v)) for k, v in est.get_params().items())
        # all candidate layers of a variant in one training (dann), else one fit per job
        self.batched = not self.mix and hasattr(type(est), "fit_predict_layers")
        self.fixed = {"domains": _digest(np.array([str(x) for x in inp.domains]).astype("U")),
                      "surface": self.surf and _digest(inp.surface)}

    def key(self, job: nested.Job) -> str:
        inp, mix = self.inp, self.mix
        return content_key({
            "v": TRANSFER_VERSION, "method": self.method,
            "options": list(job.candidate.options), "params": self.params,
            "layer": job.candidate.layer if not mix else inp.layers, "acts": inp.acts_key,
            "layer_id": None if mix else inp.layers[int(job.candidate.layer)],
            "train": _digest(job.train), "y": _digest(job.y_train.astype(np.int64)),
            "predict": _digest(job.predict), "K": inp.n_classes, "seed": inp.seed,
            **self.fixed, **({"engine": LAYER_BATCHED} if self.batched else {}),
        })

    def units(self, jobs: list[nested.Job], todo: list[int]) -> list[list[int]]:
        """Jobs fitted together: one each, or (batched) those that differ only in their
        layer; in the order of their first job."""
        if not self.batched:
            return [[i] for i in todo]
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            j = jobs[i]
            groups.setdefault((repr(j.candidate.options), _digest(j.train),
                               _digest(j.y_train.astype(np.int64)), _digest(j.predict)),
                              []).append(i)
        return list(groups.values())

    def unit_args(self, jobs: list[nested.Job], unit: list[int]) -> tuple:
        j = jobs[unit[0]]
        return (self.method, dict(j.candidate.options), self.inp,
                [jobs[i].candidate.layer for i in unit], j.train, j.y_train, j.predict,
                self.mix, self.surf, self.batched, self.threads)

    def run(self, jobs: list[nested.Job], todo: list[list[int]]) -> Iterator[list[tuple]]:
        args = (self.unit_args(jobs, u) for u in todo)
        if self.n_jobs == 1 or len(todo) < 2:
            return (_fit_unit(*a) for a in args)
        return iter(Parallel(n_jobs=self.n_jobs, return_as="generator")(
            delayed(_fit_unit)(*a) for a in args))

    def __call__(self, jobs: Sequence[nested.Job]
                 ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        jobs = list(jobs)
        keys = [self.key(j) for j in jobs]
        hit = [self.cache and self.store.path(k).is_file() for k in keys]
        todo = self.units(jobs, [i for i, h in enumerate(hit) if not h])
        fitted = zip(todo, self.run(jobs, todo), strict=True)
        ready: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("fits", "cached", "seconds"):
            self.stats.setdefault(name, 0)

        def take(unit: list[int], results: list[tuple]) -> None:
            for u, r in zip(unit, results, strict=True):
                ready[u] = r
                if self.cache:
                    self.store.save(keys[u], {"pred": r[0], "proba": r[1]})
            self.stats["fits"] += len(unit)

        for i, k in enumerate(keys):
            z = self.store.load(k, required=("pred", "proba")) if hit[i] else None
            if z is not None:
                self.stats["cached"] += 1
                yield z["pred"], z["proba"]
                continue
            t0 = time.perf_counter()
            if hit[i]:  # an unreadable entry: refit this job on its own
                take([i], _fit_unit(*self.unit_args(jobs, [i])))
            while i not in ready:
                take(*next(fitted))
            self.stats["seconds"] += time.perf_counter() - t0
            yield ready.pop(i)
        if next(fitted, None) is not None:  # every unit was taken; lets the workers finish
            raise RuntimeError("transfer fits outnumber their jobs")


def make_fit_many(method: str, inp: TransferInputs, *, n_jobs: int, threads: int, cache: bool,
                  stats: dict[str, float]) -> nested.FitMany:
    """A :class:`FitStream` of one method over ``inp``."""
    return FitStream(method, inp, n_jobs=n_jobs, threads=threads, cache=cache, stats=stats)


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


def transfer_inputs(tc: TransferConfig, data: TaskData, acts: Acts, seed: int,
                    surface: np.ndarray | None = None) -> TransferInputs:
    """What every fit of a (model, seed) reads: the candidate layers (a view of the
    activations), the surface columns, the corpora."""
    want, pos = candidate_layers(tc, acts.layers)
    if surface is None:
        surface = surface_columns(np.asarray(surface_features([r.text for r in data.records]),
                                             dtype=np.float64))
    return TransferInputs(take_layers(acts.array, pos), want, surface,
                          np.asarray(data.corpora), acts.key, data.n_classes, seed)


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


def choice_label(f: Any, layers: list[int]) -> str:
    """The chosen variant as ``option=value,...@layer L`` (hidden-state index, or ``mix``)."""
    c = f.choice
    opts = ",".join(f"{k}={v}" for k, v in c.options) or "defaults"
    where = "mix" if c.layer == "mix" else f"layer {layers[int(c.layer)]}"
    return f"{opts}@{where}"


def union_candidates(tc: TransferConfig, names: list[str], inp: TransferInputs,
                     stats: dict[str, float], fitting: Fitting
                     ) -> tuple[list[nested.Candidate], nested.FitMany]:
    """Candidates of several methods at once (the method is one more option, ``method``) and
    their fits, each the method's own (so all come from its cache)."""
    cands = [nested.Candidate((("method", n), *c.options), c.layer)
             for n in names for c in candidates(tc, n, inp)]
    fitters = {n: fitter(n, inp, stats, fitting) for n in names}

    def fit_many(jobs: Sequence[nested.Job]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        # candidates are listed method by method, so a run of consecutive jobs is one method's
        for n, run in itertools.groupby(jobs, key=lambda j: j.candidate.options[0][1]):
            yield from fitters[n]([nested.Job(nested.Candidate(j.candidate.options[1:],
                                                               j.candidate.layer),
                                              j.train, j.y_train, j.predict) for j in run])

    return cands, fit_many


@dataclass
class Nested:
    """The ``"nested"`` provider: one transfer method (or, for a name in ``members``, the best
    of several) per outer fold, chosen on inner folds of the fold's training part.

    ``stats[method]`` counts fits (``fits``, ``cached``, ``seconds``) for the stage's log."""

    tc: TransferConfig
    data: TaskData
    acts: dict[str, Acts]
    fitting: Fitting
    members: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    kind: str = "nested"
    parallel: bool = False  # its fits run side by side inside the cell
    _inputs: dict[tuple[str, int], TransferInputs] = field(default_factory=dict)
    _surface: np.ndarray | None = None

    def inputs(self, model: str, seed: int) -> TransferInputs:
        if (model, seed) not in self._inputs:
            if self._surface is None:
                self._surface = surface_columns(np.asarray(
                    surface_features([r.text for r in self.data.records]), dtype=np.float64))
            self._inputs[(model, seed)] = transfer_inputs(self.tc, self.data, self.acts[model],
                                                          seed, self._surface)
        return self._inputs[(model, seed)]

    def cache_key(self, cell: Cell) -> None:
        return None  # every fit is cached on its own (transfer-cells)

    def cache_prefix(self, cell: Cell) -> str:
        return ""

    def job(self, cell: Cell) -> tuple[Callable[..., CellOutput], tuple]:
        raise TypeError("nested cells run in this process (their fits run side by side)")

    def layer_names(self, cell: Cell) -> list[str]:
        return [NESTED]

    def compute(self, cell: Cell) -> CellOutput:
        inp = self.inputs(cell.model, cell.seed)
        stats = self.stats.setdefault(cell.method, {})
        plan = nested.plan([cell.split], inp.domains, self.data.groups)
        names = self.members.get(cell.method)
        if names is None:
            cands = candidates(self.tc, cell.method, inp)
            fit_many = fitter(cell.method, inp, stats, self.fitting)
        else:
            cands, fit_many = union_candidates(self.tc, names, inp, stats, self.fitting)
        f = nested.nested_loco(plan, cands, self.data.y, fit_many, metric=self.tc.metric,
                               n_classes=self.data.n_classes)[0]
        layer = f.choice.layer
        return CellOutput(f.pred[None], None if f.proba is None else f.proba[None],
                          f.inner_scores, None, 0.0,
                          layer_id=None if layer == "mix" else int(inp.layers[int(layer)]),
                          chosen=choice_label(f, inp.layers))


def choose_and_refit(tc: TransferConfig, method: str, data: TaskData, inp: TransferInputs,
                     split: Split, fitting: Fitting, log: Callable[[str], None]
                     ) -> tuple[nested.InnerChoice, Any]:
    """``(choice, estimator)``: the method's variant and layer chosen on the inner folds of
    ``split``'s training part (``learnerprobe train``: :func:`learnerprobe.engine.folds.
    whole_fold`), then refitted on all of it."""
    K = data.n_classes
    plan = nested.plan([split], inp.domains, data.groups)[0]
    cands = candidates(tc, method, inp)
    stats: dict[str, float] = {}
    ch = nested.choose(plan, cands, data.y, fitter(method, inp, stats, fitting),
                       metric=tc.metric, n_classes=K)
    log(f"  {method}: {len(cands)} candidates x {len(plan.inner)} validation folds "
        f"({int(stats.get('fits', 0))} fits, {int(stats.get('cached', 0))} cached); chosen "
        f"{choice_label(ch, inp.layers)}, validation {tc.metric} "
        f"{ch.scores[ch.chosen]:.3f}")
    mix, surf = method_inputs(method)
    opts = dict(ch.choice.options)  # the worker adds the same two input options
    if surf:
        opts["n_surface"] = N_SURFACE
    if mix:
        opts["n_layers"] = len(inp.layers)
    est = get_method(method).build(BuildContext(n_classes=K, seed=inp.seed), opts)
    with threadpool_limits(fitting.threads):
        est.fit(design_matrix(inp, ch.choice.layer, plan.train, mix, surf), data.y[plan.train],
                domains=inp.domains[plan.train])
    return ch, est
