"""The adaptation stage: the ``loco_k`` protocol for the ``[adapt]`` table.

For each model, seed and held-out corpus (a leave-one-corpus-out split), the *source* probe
(``[adapt] source``, tuned) chooses its layer on the split's inner validation part and is
fitted on the training corpora ONCE, as the probe stage fits its LOCO cell (so k = 0 is the
LOCO cell). Then, for each k and repeat (:func:`learnerprobe.evaluation.protocols.
make_adapt_splits`), every adapt method (``methods.registry``, task ``adapt``) is fitted on the
k labelled texts only and predicts the rest of that corpus minus the k texts' authors. Methods
that need text (``surface_k``) get the 3 surface columns and a ridge source on them.

Rows (``protocol = "loco_k"``, ``layer = "adapted"``, extra columns ``k`` and ``repeats``): per
method, k and held-out corpus, plus ``corpus_mean`` (the mean over held-out corpora, per
repeat) and ``all`` (pooled), each metric's **median over repeats** in ``value`` and the 95 %
band of the repeats in ``ci_low``/``ci_high``. ``diff_qwk_vs_<baseline>`` rows: the mean
difference over repeats to each same-k baseline, with a paired two-level bootstrap CI (repeats
resampled, and the test texts of each repeat resampled, the same draws for both systems).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.estimators.probes import make_probe
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.metrics import (
    bootstrap_indices,
    interval,
    resampled_metric,
    score_all,
)
from learnerprobe.evaluation.per_corpus import CORPUS_MEAN
from learnerprobe.evaluation.protocols import AdaptSplit, Split, make_adapt_splits, make_splits
from learnerprobe.methods.registry import BuildContext, get_method, method_names
from learnerprobe.selection.validation import select_layer
from learnerprobe.tasks import TaskData

PROTOCOL = "loco_k"
ADAPTED = "adapted"  # value of `layer` for loco_k rows (the source's layer is in selected_*)
METRICS = ("qwk", "accuracy", "adjacent_accuracy", "mae")


@dataclass
class AdaptResult:
    rows: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Draw:
    """One method's predictions on one draw's score set."""

    corpus: str
    k: int
    repeat: int
    test: np.ndarray
    pred: np.ndarray


def adapt_methods(ac: AdaptConfig) -> list[str]:
    """The configured methods (every registered adapt method when none are given), then the
    baselines not already listed."""
    names = ac.methods if ac.methods is not None else method_names(task="adapt")
    return list(dict.fromkeys([*names, *ac.baselines]))


def _uses_text(name: str) -> bool:
    return "activations" not in get_method(name).needs


@dataclass
class Source:
    """The source probes of one held-out corpus: over the chosen layer, and over the surface
    columns (for text methods)."""

    hidden: Any
    layer: int  # hidden-state index
    surface: Any


def fit_source(ac: AdaptConfig, X: np.ndarray, layers: list[int], S: np.ndarray,
               y: np.ndarray, sp: Split, *, n_classes: int, seed: int, metric: str,
               refit: bool) -> Source:
    """The source probe on the training corpora only: the layer chosen on the inner validation
    part, then fitted on the inner training part (``refit``: the whole training fold), as the
    probe stage's LOCO cell is."""
    sel = select_layer(X[:, sp.train], y[sp.train], X[:, sp.val], y[sp.val], ac.source,
                       metric=metric, n_classes=n_classes, mode="tuned", seed=seed)
    rows = sp.fit_all if refit else sp.train
    hidden = make_probe(ac.source, n_classes=n_classes, seed=seed).fit(
        X[sel.layer_index][rows], y[rows])
    surface = make_probe("ridge", n_classes=n_classes, seed=seed).fit(S[rows], y[rows])
    return Source(hidden, layers[sel.layer_index], surface)


def predict_draw(name: str, d: AdaptSplit, X: np.ndarray, y: np.ndarray, source: Any, *,
                 n_classes: int, seed: int) -> np.ndarray | None:
    """One method on one draw: fitted on the k texts only (``X[d.adapt]``, ``y[d.adapt]``),
    predicting the score set; k = 0: the source itself. None when k is below what the method
    needs (a method without a source has nothing to predict with at k = 0)."""
    est = get_method(name, task="adapt").build(BuildContext(n_classes=n_classes, seed=seed,
                                                            source=source))
    if d.k == 0:
        return None if getattr(est, "source", None) is None else source.predict(X[d.test])
    if d.k < getattr(est, "min_texts", 3):
        return None
    est.fit(X[d.adapt], y[d.adapt])
    return np.asarray(est.predict(X[d.test]), dtype=np.int64)


def run_adapt(ac: AdaptConfig, data: TaskData, acts: dict[str, Any], *, seeds: Sequence[int],
              folds: int, val_size: float, refit: bool, metric: str, task: str,
              log: Callable[[str], None] = print) -> AdaptResult:
    """Every adapt method x model x seed under ``loco_k``; result rows (module docstring).
    ``acts``: model -> object with ``.array`` (layers x texts x hidden) and ``.layers``."""
    S = surface_columns(np.asarray(surface_features([r.text for r in data.records]),
                                   dtype=np.float64))
    names = adapt_methods(ac)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    layers_chosen: dict[str, dict[str, int]] = {}
    K = data.n_classes
    for m, a in acts.items():
        for seed in seeds:
            t0 = time.process_time()
            loco = make_splits("loco", data.y, data.groups, data.corpora, data.languages,
                               folds=folds, seed=seed, val_size=val_size)
            draws: dict[str, list[Draw]] = {n: [] for n in names}
            for sp in loco:
                with threadpool_limits(1):
                    src = fit_source(ac, a.array, list(a.layers), S, data.y, sp, n_classes=K,
                                     seed=seed, metric=metric, refit=refit)
                layers_chosen.setdefault(f"{m}.seed{seed}", {})[sp.fold] = src.layer
                Xh = a.array[list(a.layers).index(src.layer)]
                for d in make_adapt_splits([sp], data.y, data.groups, ks=ac.k,
                                           repeats=ac.repeats, seed=seed):
                    for n in names:
                        text = _uses_text(n)
                        with threadpool_limits(1):
                            pred = predict_draw(n, d, S if text else Xh, data.y,
                                                src.surface if text else src.hidden,
                                                n_classes=K, seed=seed)
                        if pred is not None:
                            draws[n].append(Draw(sp.fold, d.k, d.repeat, d.test, pred))
            key = {"task": task, "model": m, "mode": "tuned", "seed": seed,
                   "protocol": PROTOCOL, "layer": ADAPTED}
            chosen = layers_chosen[f"{m}.seed{seed}"]
            for n in names:
                sel = None if _uses_text(n) else list(chosen.values())
                rows += summary_rows({**key, "probe": n}, draws[n], data.y, K, sel)
            for n in names:
                if n in ac.baselines:
                    continue
                for b in ac.baselines:
                    rows += paired_rows({**key, "probe": n}, draws[n], draws[b], b, data.y,
                                        K, n_boot=ac.n_boot, seed=seed)
            timings[f"{m}.seed{seed}"] = time.process_time() - t0
            log(f"  adapt {m} seed {seed}: {len(names)} methods x k {ac.k} x {ac.repeats} "
                f"repeats, source layers {chosen}, {timings[f'{m}.seed{seed}']:.1f} s CPU")
    return AdaptResult(rows, timings, {"adapt_source_layers": layers_chosen})


def _by_cell(draws: list[Draw]) -> dict[tuple[int, str], dict[int, Draw]]:
    out: dict[tuple[int, str], dict[int, Draw]] = {}
    for d in draws:
        out.setdefault((d.k, d.corpus), {})[d.repeat] = d
    return out


def _row(key: dict[str, Any], sel: list[int] | None, corpus: str, k: int, metric: str,
         values: Sequence[float], n: int, repeats: int) -> dict[str, Any]:
    lo, hi = interval(np.asarray(values, dtype=float))
    return {**key, "selected_layer": int(np.bincount(sel).argmax()) if sel else None,
            "selected_layers": ",".join(map(str, sel)) if sel else None,
            "test_corpus": corpus, "levels": "all", "metric": metric,
            "value": float(np.nanmedian(values)), "ci_low": lo, "ci_high": hi, "n": int(n),
            "k": int(k), "repeats": int(repeats)}


def summary_rows(key: dict[str, Any], draws: list[Draw], y: np.ndarray, K: int,
                 sel: list[int] | None) -> list[dict[str, Any]]:
    """Median and 95 % band over repeats per k and corpus, the mean over corpora (per repeat)
    and the pooled score (per repeat)."""
    out = []
    cells = _by_cell(draws)
    for k in sorted({k for k, _ in cells}):
        corpora = [c for kk, c in cells if kk == k]
        per: dict[str, dict[int, dict[str, float]]] = {}
        for c in corpora:
            per[c] = {r: score_all(y[d.test], d.pred, labels=K) for r, d in cells[(k, c)].items()}
            n = int(np.median([len(d.test) for d in cells[(k, c)].values()]))
            for metric in METRICS:
                out.append(_row(key, sel, c, k, metric, [s[metric] for s in per[c].values()],
                                n, len(per[c])))
        reps = sorted(set.intersection(*(set(per[c]) for c in corpora)))
        if len(corpora) < 2 or not reps:
            continue
        n_all = int(sum(np.median([len(d.test) for d in cells[(k, c)].values()])
                        for c in corpora))
        for metric in METRICS:
            out.append(_row(key, sel, CORPUS_MEAN, k, metric,
                            [np.mean([per[c][r][metric] for c in corpora]) for r in reps],
                            n_all, len(reps)))
            pooled = [score_all(np.concatenate([y[cells[(k, c)][r].test] for c in corpora]),
                                np.concatenate([cells[(k, c)][r].pred for c in corpora]),
                                labels=K)[metric] for r in reps]
            out.append(_row(key, sel, "all", k, metric, pooled, n_all, len(reps)))
    return out


def paired_rows(key: dict[str, Any], draws: list[Draw], base: list[Draw], base_name: str,
                y: np.ndarray, K: int, *, n_boot: int, seed: int, metric: str = "qwk"
                ) -> list[dict[str, Any]]:
    """``diff_<metric>_vs_<baseline>`` per k and corpus and for the corpus mean: the mean over
    repeats of (method - baseline) on the same score set; CI from a two-level bootstrap (the
    repeats resampled, each repeat's test texts resampled with draws shared by both)."""
    mine, theirs = _by_cell(draws), _by_cell(base)
    out = []
    rng = np.random.default_rng(seed)
    for k in sorted({k for k, _ in mine if k > 0}):
        corpora = [c for kk, c in mine if kk == k and (k, c) in theirs]
        point: dict[str, float] = {}
        boot: dict[str, np.ndarray] = {}
        sizes: dict[str, int] = {}
        for c in corpora:
            reps = sorted(set(mine[(k, c)]) & set(theirs[(k, c)]))
            if not reps:
                continue
            diffs, full = [], []
            for r in reps:
                a, b = mine[(k, c)][r], theirs[(k, c)][r]
                yt = y[a.test]
                idx = bootstrap_indices(len(yt), n_boot, seed + 7919 * r + k)
                diffs.append(resampled_metric(yt, a.pred, metric, n_classes=K, idx=idx)
                             - resampled_metric(yt, b.pred, metric, n_classes=K, idx=idx))
                full.append(score_all(yt, a.pred, labels=K)[metric]
                            - score_all(yt, b.pred, labels=K)[metric])
            D = np.asarray(diffs)  # repeats x n_boot
            pick = rng.integers(0, len(reps), size=(n_boot, len(reps)))
            boot[c] = D[pick, np.arange(n_boot)[:, None]].mean(1) if n_boot else np.zeros(0)
            point[c] = float(np.mean(full))
            sizes[c] = int(np.median([len(mine[(k, c)][r].test) for r in reps]))
        groups = list(point)
        if len(groups) > 1:
            point[CORPUS_MEAN] = float(np.mean([point[c] for c in groups]))
            boot[CORPUS_MEAN] = np.mean([boot[c] for c in groups], axis=0)
            sizes[CORPUS_MEAN] = sum(sizes[c] for c in groups)
        for c, v in point.items():
            lo, hi = interval(boot[c]) if n_boot else (np.nan, np.nan)
            out.append({**key, "selected_layer": None, "selected_layers": None,
                        "test_corpus": c, "levels": "all",
                        "metric": f"diff_{metric}_vs_{base_name}", "value": v, "ci_low": lo,
                        "ci_high": hi, "n": sizes[c], "k": int(k),
                        "repeats": len(mine[(k, c)]) if c != CORPUS_MEAN else None})
    return out
