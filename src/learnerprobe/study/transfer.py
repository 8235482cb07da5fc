"""The transfer stage: transfer methods under nested leave-one-corpus-out selection.

Runs after the probe stage when a config has a ``[transfer]`` table. Every configured transfer
method (``learnerprobe.methods.registry``, ``tasks = ("transfer",)``) is a ``"nested"`` cell
provider (:mod:`learnerprobe.engine.nested`): on every outer LOCO fold it chooses the method's
variant (a grid point of its options) and layer on the training corpora only (each held out in
turn), refits the choice on all training corpora and predicts the held-out corpus. The cells go
through the engine's one loop (:func:`learnerprobe.engine.loop.run_cells`); the pooled
held-out predictions are scored like every other cell (layer ``nested``) and compared, on the
same texts, to the plain probe and to the surface baseline by a paired bootstrap (rows
``diff_qwk_vs_plain`` and ``diff_qwk_vs_surface``, per held-out corpus and pooled). Rows carry
``transductive`` (the method adapts to the unlabeled held-out texts) and ``chosen`` (the
variant per fold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnerprobe.config.transfer import TransferConfig
from learnerprobe.engine.cells import Cell, CellOutput, pool
from learnerprobe.engine.data import Acts
from learnerprobe.engine.folds import protocol_folds
from learnerprobe.engine.loop import run_cells
from learnerprobe.engine.nested import NESTED, Fitting, Nested
from learnerprobe.engine.providers import SURFACE, Features
from learnerprobe.engine.score import Scoring, paired_rows, score
from learnerprobe.estimators.probes.surface import surface_features
from learnerprobe.evaluation.results import Pooled, prediction_frame
from learnerprobe.methods.registry import get_method, method_names
from learnerprobe.tasks import TaskData

#: Rows that choose the method itself by nested LOCO (over the configured methods):
#: ``nested_best`` among the inductive ones, ``nested_best_tta`` among all of them.
BEST = "nested_best"
BEST_TTA = "nested_best_tta"


def method_list(tc: TransferConfig) -> list[str]:
    """The plain probe first, then the configured methods (all registered transfer methods
    when ``methods`` is not given) in config order."""
    methods = tc.methods if tc.methods is not None else method_names(task="transfer")
    return [tc.plain] + [m for m in methods if m != tc.plain]


def best_sets(tc: TransferConfig) -> dict[str, list[str]]:
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


@dataclass
class TransferResult:
    rows: list[dict[str, Any]]
    predictions: pd.DataFrame
    pooled: list[Pooled]
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def run_transfer(tc: TransferConfig, data: TaskData, acts: dict[str, Acts], *,
                 seeds: Sequence[int], folds: int, val_size: float, with_surface: bool,
                 scoring: Scoring, fitting: Fitting,
                 log: Callable[[str], None] = print) -> TransferResult:
    """Every transfer method x model x seed, nested LOCO; rows, predictions, pooled cells.

    ``tc``: the ``[transfer]`` table; ``seeds``, ``folds``, ``val_size`` make the outer
    leave-one-corpus-out splits as the probe stage makes them; ``with_surface``: the probe
    stage already scored the surface baseline (else its rows are added here)."""
    F = np.asarray(surface_features([r.text for r in data.records]), dtype=np.float64)
    names = method_list(tc)
    best = best_sets(tc)
    prov = Nested(tc, data, acts, fitting, members=best)
    providers: dict[str, Any] = {n: prov for n in [*names, *best]}
    providers[SURFACE] = Features(F, data, tc.metric, refit=True, fit_on="fit_all")
    res = TransferResult([], pd.DataFrame(), [])
    preds: list[pd.DataFrame] = []
    chosen: dict[str, Any] = {}
    for m in acts:
        for seed in seeds:
            splits = protocol_folds("loco", data, folds=folds, seed=seed, val_size=val_size)
            cells = [Cell(m, "tuned", seed, "loco", n, sp)
                     for n in [*names, *best, SURFACE] for sp in splits]
            t0: dict[str, float] = {}
            done = run_cells(cells, providers, store=None, n_jobs=1,
                             on_done=_progress(prov, t0, res.timings, m, log))
            pooled = {n: _pool(m, seed, n, splits, [done[c.key] for c in cells
                                                    if c.method == n], data)
                      for n in [*names, *best, SURFACE]}
            for n in [*names, *best]:
                outs = [done[c.key] for c in cells if c.method == n]
                chosen[f"{m}.seed{seed}.{n}"] = {sp.fold: o.chosen
                                                 for sp, o in zip(splits, outs, strict=True)}
            base = pooled.pop(SURFACE)
            res.rows += _rows(scoring, data, pooled, base, tc, chosen, m, seed)
            res.pooled += list(pooled.values())
            preds += [prediction_frame(p, np.asarray(data.ids), data.corpora, data.y,
                                       scoring.task) for p in pooled.values()]
            if not with_surface:
                res.rows += _tag(score(scoring, base, data), False, None)
                res.pooled.append(base)
    res.predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    res.manifest = {"transfer_chosen": chosen}
    return res


def _progress(prov: Nested, t0: dict[str, float], timings: dict[str, float], model: str,
              log: Callable[[str], None]) -> Callable[[Cell, CellOutput], None]:
    """Per-method timing and a log line when a method's last fold is done."""
    seen: dict[str, list[str]] = {}
    start = [time.perf_counter()]

    def on_done(cell: Cell, out: CellOutput) -> None:
        if cell.method == SURFACE:
            return
        now = time.perf_counter()
        key = f"{model}.{cell.method}"
        timings[key] = timings.get(key, 0.0) + now - start[0]
        start[0] = now
        seen.setdefault(cell.method, []).append(f"{cell.fold}: {out.chosen}")
        st = prov.stats.get(cell.method, {})
        if len(seen[cell.method]) == _n_folds(prov):
            log(f"  transfer {cell.method}: {int(st.get('fits', 0))} fits "
                f"({int(st.get('cached', 0))} cached), {timings[key]:.1f} s; chosen "
                + "; ".join(seen.pop(cell.method)))

    return on_done


def _n_folds(prov: Nested) -> int:
    return len(dict.fromkeys(np.asarray(prov.data.corpora).tolist()))


def _pool(model: str, seed: int, name: str, splits: list, outs: list[CellOutput],
          data: TaskData) -> Pooled:
    if name == SURFACE:
        base = {"model": SURFACE, "mode": "tuned", "seed": seed, "protocol": "loco",
                "probe": SURFACE}
        return pool(base, splits, outs, data, ["none"])[0]
    ids = [o.layer_id for o in outs]
    base = {"model": model, "mode": "tuned", "seed": seed, "protocol": "loco", "probe": name}
    return pool(base, splits, outs, data, [NESTED],
                layer_ids=None if any(i is None for i in ids) else [int(i) for i in ids])[0]


def _tag(rows: list[dict[str, Any]], transductive: bool, chosen: str | None
         ) -> list[dict[str, Any]]:
    for r in rows:
        r["transductive"] = transductive
        r["chosen"] = chosen
    return rows


def _rows(scoring: Scoring, data: TaskData, cells: dict[str, Pooled], surface: Pooled,
          tc: TransferConfig, chosen: dict[str, Any], model: str, seed: int
          ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    plain = cells[tc.plain]
    for name, p in cells.items():
        tr = is_transductive(name)
        label = "; ".join(f"{k}: {v}" for k, v in chosen[f"{model}.seed{seed}.{name}"].items())
        out += _tag(score(scoring, p, data), tr, label)
        refs = [("surface", surface)] + ([] if name == tc.plain else [("plain", plain)])
        out += _tag(paired_rows(tc.metric, scoring, data, p, refs), tr, label)
    return out
