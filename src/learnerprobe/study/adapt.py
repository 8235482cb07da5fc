"""The adaptation stage: the ``loco_k`` protocol for the ``[adapt]`` table.

The work runs through the engine's loop (:func:`learnerprobe.engine.loop.run_cells`): one
cell per adapt method, model, seed and held-out corpus, computed by the ``"adapt"`` provider
(:mod:`learnerprobe.engine.loco_k`) and cached; this module builds the cells and scores the
draws they return.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.engine.cells import Cell, CellOutput, CellStore
from learnerprobe.engine.data import Acts
from learnerprobe.engine.loco_k import ADAPTED, PROTOCOL, SOURCE_MODE, Adapt, uses_text
from learnerprobe.engine.loop import run_cells
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.metrics import (
    bootstrap_indices,
    interval,
    resampled_metric,
    score_all,
)
from learnerprobe.evaluation.per_corpus import CORPUS_MEAN
from learnerprobe.evaluation.protocols import make_splits
from learnerprobe.methods.registry import method_names
from learnerprobe.tasks import TaskData

METRICS = ("qwk", "accuracy", "adjacent_accuracy", "mae")
__all__ = ["ADAPTED", "PROTOCOL", "AdaptResult", "Draw", "adapt_methods", "paired_rows",
           "run_adapt", "summary_rows"]


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


def adapt_cells(names: list[str], models: Sequence[str], data: TaskData, *,
                seeds: Sequence[int], folds: int, val_size: float) -> list[Cell]:
    """One cell per model, seed, LOCO fold (held-out corpus) and adapt method."""
    cells = []
    for m in models:
        for seed in seeds:
            loco = make_splits("loco", data.y, data.groups, data.corpora, data.languages,
                               folds=folds, seed=seed, val_size=val_size)
            cells += [Cell(m, SOURCE_MODE, seed, PROTOCOL, n, sp) for sp in loco for n in names]
    return cells


def _draws(cell: Cell, out: CellOutput) -> list[Draw]:
    assert out.draws is not None, "an adapt cell without draws"
    return [Draw(cell.fold, k, r, test, pred) for k, r, test, pred in out.draws]


def run_adapt(ac: AdaptConfig, data: TaskData, acts: dict[str, Acts], *, seeds: Sequence[int],
              folds: int, val_size: float, refit: bool, metric: str, task: str,
              store: CellStore | None = None, log: Callable[[str], None] = print
              ) -> AdaptResult:
    """Every adapt method x model x seed under ``loco_k`` through the engine's loop (cached
    cells loaded from ``store``); result rows (module docstring)."""
    S = surface_columns(np.asarray(surface_features([r.text for r in data.records]),
                                   dtype=np.float64))
    names = adapt_methods(ac)
    provider = Adapt(ac, acts, data, S, metric, refit)
    cells = adapt_cells(names, list(acts), data, seeds=seeds, folds=folds, val_size=val_size)
    outs = run_cells(cells, dict.fromkeys(names, provider), store=store)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    layers_chosen: dict[str, dict[str, int]] = {}
    K = data.n_classes
    for m in acts:
        for seed in seeds:
            mine = [c for c in cells if c.model == m and c.seed == seed]
            run = f"{m}.seed{seed}"
            chosen = layers_chosen.setdefault(run, {})
            draws: dict[str, list[Draw]] = {n: [] for n in names}
            for c in mine:
                chosen.setdefault(c.fold, int(outs[c.key].layer_id))
                draws[c.method] += _draws(c, outs[c.key])
            key = {"task": task, "model": m, "mode": SOURCE_MODE, "seed": seed,
                   "protocol": PROTOCOL, "layer": ADAPTED}
            for n in names:
                sel = None if uses_text(n) else list(chosen.values())
                rows += summary_rows({**key, "probe": n}, draws[n], data.y, K, sel)
            for n in names:
                if n in ac.baselines:
                    continue
                for b in ac.baselines:
                    rows += paired_rows({**key, "probe": n}, draws[n], draws[b], b, data.y,
                                        K, n_boot=ac.n_boot, seed=seed)
            outs_run = [outs[c.key] for c in mine]
            timings[run] = sum((o.seconds for o in outs_run if not o.cached), 0.0)
            n_cached = sum(o.cached for o in outs_run)
            log(f"  adapt {m} seed {seed}: {len(names)} methods x k {ac.k} x {ac.repeats} "
                f"repeats, source layers {chosen}, {timings[run]:.1f} s"
                + (f", {n_cached}/{len(outs_run)} cells cached" if n_cached else ""))
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
