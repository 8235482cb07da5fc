"""Cells: one method on one outer fold; what the loop fits, caches and pools.

A :class:`Cell` names the work (model, mode, seed, protocol, fold, method); its provider
(:mod:`learnerprobe.engine.providers`) turns it into a :class:`CellOutput`: predictions of the
fold's test texts on every layer the method has (one pseudo-layer for methods without a layer
axis), the inner-validation scores and the chosen layer where the method chooses one, and for a
nested provider the chosen variant; an adapt cell (:mod:`learnerprobe.engine.loco_k`)
carries its draws' predictions instead (:class:`Draws`). :func:`pool` concatenates a
method's outputs over the folds of a protocol into :class:`learnerprobe.evaluation.results.
Pooled` cells, which are scored by :func:`learnerprobe.evaluation.results.score_rows`.

Finished cells are cached as ``.npz`` (no pickle) in one :class:`CellStore` per run kind,
keyed by a hash of everything that determines them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.evaluation.cell_cache import CellCache, read_npz, write_npz
from learnerprobe.evaluation.protocols import Split
from learnerprobe.evaluation.results import SELECTED, Pooled
from learnerprobe.tasks import TaskData


@dataclass(frozen=True)
class Cell:
    """One method on one outer fold (``split``) of a protocol."""

    model: str
    mode: str
    seed: int
    protocol: str
    method: str
    split: Split = field(compare=False, hash=False)

    @property
    def fold(self) -> str:
        return self.split.fold

    @property
    def key(self) -> tuple:
        """Identity of the cell inside one run (the loop's result dictionary key)."""
        return (self.model, self.mode, self.seed, self.protocol, self.split.fold, self.method)


@dataclass(frozen=True)
class Draws:
    """Predictions of several draws of one cell (an adapt cell: one per k and repeat), the test
    indices and predictions of draw ``i`` at ``offsets[i]:offsets[i + 1]``."""

    k: np.ndarray  # n_draws
    repeat: np.ndarray  # n_draws
    offsets: np.ndarray  # n_draws + 1
    test: np.ndarray  # record indices, all draws concatenated
    pred: np.ndarray  # predictions, aligned with ``test``

    @classmethod
    def of(cls, items: list[tuple[int, int, np.ndarray, np.ndarray]]) -> Draws:
        """From ``(k, repeat, test, pred)`` per draw."""
        sizes = [len(t) for _, _, t, _ in items]
        cat = (lambda xs: np.concatenate(xs).astype(np.int64)) if items else (
            lambda xs: np.zeros(0, dtype=np.int64))
        return cls(np.asarray([i[0] for i in items], dtype=np.int64),
                   np.asarray([i[1] for i in items], dtype=np.int64),
                   np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
                   cat([i[2] for i in items]), cat([i[3] for i in items]))

    def __iter__(self):
        """``(k, repeat, test, pred)`` per draw."""
        for i in range(len(self.k)):
            a, b = self.offsets[i], self.offsets[i + 1]
            yield int(self.k[i]), int(self.repeat[i]), self.test[a:b], self.pred[a:b]


_DRAWS = ("k", "repeat", "offsets", "test", "pred")


@dataclass
class CellOutput:
    """What a provider gives for one cell (``L``: the method's layers, 1 without a layer axis).

    ``selected``: the layer index the method chose on its inner validation part (None: no
    choice, or the choice is the provider's own, as a nested one's); ``layer_id``: the
    hidden-state index a nested provider chose (None: none, or a mix of layers);
    ``chosen``: a nested provider's choice as text; ``notes``: anything else to report."""

    pred: np.ndarray  # L x m (test texts of the fold)
    proba: np.ndarray | None  # L x m x K
    val_scores: np.ndarray  # L (empty without a validation choice)
    selected: int | None
    seconds: float
    cached: bool = False
    layer_id: int | None = None
    chosen: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    idx: np.ndarray | None = None  # the test texts predicted, when not all of the fold's
    # every layer's probabilities on the fold's validation texts (L x n_val x K), from the fit
    # that predicted the test fold: the conformal calibration set (evaluation.trust_rows);
    # None without probabilities or when the test fold was predicted by a refit
    val_proba: np.ndarray | None = None
    # the chosen layer's validation predictions (not cached: ``learnerprobe train``'s card)
    val_pred: np.ndarray | None = None
    draws: Draws | None = None  # an adapt cell's predictions per draw (``pred`` then empty)

    def rows(self, split: Split) -> np.ndarray:
        """Record indices of the predicted texts."""
        return split.test if self.idx is None else self.idx


_ARRAYS = ("pred", "proba", "has_proba", "val_scores", "selected", "seconds")


class CellStore:
    """The cell cache of one kind of cell (``cache_root()/study-cells`` for probe cells, a
    run's ``nli/cache`` for NLI cells): sharded ``.npz`` files named by the cell's key."""

    def __init__(self, folder: str | Path, *, shard: bool = True) -> None:
        self.cache = CellCache(folder, shard=shard)

    def path(self, key: str, prefix: str = "") -> Path:
        return self.cache.path(key, prefix=prefix)

    def load(self, path: Path) -> CellOutput | None:
        """The cached output, or None when absent or unreadable (then it is recomputed)."""
        return load_output(path)

    def save(self, path: Path, out: CellOutput) -> None:
        save_output(path, out)

    @staticmethod
    def save_to(path: Path, out: CellOutput) -> None:
        """Save without a store object (worker processes get the path only)."""
        save_output(path, out)


def load_output(path: Path) -> CellOutput | None:
    z = read_npz(path, required=_ARRAYS)
    if z is None or "val_proba" not in z:  # cached before coverage rows existed: recompute
        return None
    proba = z["proba"] if z["has_proba"] else None
    sel = int(z["selected"])
    layer_id = int(z["layer_id"]) if "layer_id" in z else None
    try:
        notes = json.loads(str(z["notes"])) if "notes" in z else {}
    except ValueError:
        return None
    draws = (Draws(*(z[f"draws_{f}"] for f in _DRAWS))
             if all(f"draws_{f}" in z for f in _DRAWS) else None)
    return CellOutput(z["pred"], proba, z["val_scores"], None if sel < 0 else sel,
                      float(z["seconds"]), cached=True, layer_id=layer_id, notes=notes,
                      idx=z["idx"] if "idx" in z else None,
                      val_proba=z["val_proba"] if z["val_proba"].size else None, draws=draws)


def save_output(path: Path, r: CellOutput) -> None:
    """Written atomically (``evaluation.cell_cache.write_npz``)."""
    arrays: dict[str, Any] = {
        "pred": r.pred, "proba": r.proba if r.proba is not None else np.zeros(0),
        "has_proba": r.proba is not None, "val_scores": r.val_scores,
        "selected": -1 if r.selected is None else r.selected, "seconds": r.seconds,
        "val_proba": r.val_proba if r.val_proba is not None else np.zeros(0)}
    if r.layer_id is not None:
        arrays["layer_id"] = r.layer_id
    if r.notes:
        arrays["notes"] = np.asarray(json.dumps(r.notes, default=str))
    if r.idx is not None:
        arrays["idx"] = np.asarray(r.idx, dtype=np.int64)
    if r.draws is not None:
        arrays.update({f"draws_{f}": np.asarray(getattr(r.draws, f), dtype=np.int64)
                       for f in _DRAWS})
    write_npz(path, arrays)


# --------------------------------------------------------------------------- pooling
def calibration(splits: list[Split], outs: list[CellOutput], pick) -> dict[str, Any]:
    """Each fold's validation texts and their probabilities at layer ``pick(output)``
    (``Pooled.cal_*``), empty when an output kept none (no probabilities, refit, or a provider
    without a validation part)."""
    if any(c.val_proba is None for c in outs):
        return {}
    return {"cal_idx": np.concatenate([sp.val for sp in splits]),
            "cal_proba": np.concatenate([c.val_proba[pick(c)] for c in outs]),
            "cal_fold": np.concatenate([[sp.fold] * len(sp.val) for sp in splits])}


def pool(base: dict[str, Any], splits: list[Split], outs: list[CellOutput], data: TaskData,
         layer_names: list[str], *, selected_ids: list[int] | None = None,
         layer_ids: list[int] | None = None, row_order: bool = False) -> list[Pooled]:
    """One method's outputs over the folds of a protocol, concatenated per layer.

    ``base``: the key columns (model, mode, seed, protocol, probe); ``layer_names``: the
    ``layer`` value of each layer; ``selected_ids``: also a cell of each fold's
    validation-chosen layer (``layer = "selected"``), these its hidden-state indices;
    ``layer_ids``: the hidden-state layers chosen per fold (a
    nested provider's), reported as ``selected_layers``; ``row_order``: texts in record order
    instead of fold order (NLI's tables)."""
    rows = [c.rows(sp) for sp, c in zip(splits, outs, strict=True)]
    idx = np.concatenate(rows)
    fold = np.concatenate([[sp.fold] * len(r) for sp, r in zip(splits, rows, strict=True)])
    train_labels = np.concatenate([data.y[sp.fit_all] for sp in splits])
    shared = np.concatenate([np.isin(data.y[r], np.unique(data.y[sp.fit_all]))
                             for sp, r in zip(splits, rows, strict=True)])
    priors = {sp.fold: data.y[sp.fit_all] for sp in splits}
    order = np.argsort(idx, kind="stable") if row_order else slice(None)

    def cat(pick) -> tuple[np.ndarray, np.ndarray | None]:
        pr = np.concatenate([c.pred[pick(c)] for c in outs])
        pb = None
        if all(c.proba is not None for c in outs):
            pb = np.concatenate([c.proba[pick(c)] for c in outs])
        return pr[order], None if pb is None else pb[order]

    def one(layer: str, pick, sel: list[int] | None) -> Pooled:
        pr, pb = cat(pick)
        return Pooled({**base, "layer": layer}, idx[order], pr, pb, fold[order], shared[order],
                      train_labels, selected_layers=sel, fold_priors=priors,
                      **calibration(splits, outs, pick))

    out = [one(name, lambda c, li=li: li, layer_ids) for li, name in enumerate(layer_names)]
    if selected_ids is not None:
        out.append(one(SELECTED, lambda c: c.selected, selected_ids))
    return out
