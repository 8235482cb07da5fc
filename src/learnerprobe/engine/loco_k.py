"""Adapt cells: one adaptation method on one ``loco_k`` fold (the ``"adapt"`` cell provider).

A cell is one adapt method (``methods.registry``, task ``adapt``) on one leave-one-corpus-out
fold of one model and seed. The fold's *source* probe (``[adapt] source``) chooses its layer on
the fold's inner validation part and is fitted on the training corpora, as the probe stage's
LOCO cell is (so k = 0 is the LOCO cell); it is fitted once per (model, seed, fold) and shared
by the methods of that fold. The method then predicts every draw of
:func:`learnerprobe.evaluation.protocols.make_adapt_splits` (k x repeat), fitted on the k
labelled texts only. The output's :class:`Draws` carry the predictions of every draw, so a
finished cell is cached like any other.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.engine.cells import Cell, CellOutput, Draws
from learnerprobe.engine.data import Acts
from learnerprobe.engine.providers import labels_digest
from learnerprobe.estimators.probes import make_probe
from learnerprobe.estimators.probes.all_layers import engine_key
from learnerprobe.evaluation.protocols import AdaptSplit, Split, make_adapt_splits
from learnerprobe.methods.registry import BuildContext, get_method
from learnerprobe.selection.validation import select_layer
from learnerprobe.tasks import TaskData

ADAPT_VERSION = 1
PROTOCOL = "loco_k"
ADAPTED = "adapted"  # value of `layer` for loco_k rows (the source's layer is in selected_*)
SOURCE_MODE = "tuned"


def uses_text(name: str) -> bool:
    """Whether an adapt method reads the surface columns instead of activations."""
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
                       metric=metric, n_classes=n_classes, mode=SOURCE_MODE, seed=seed)
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


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


@dataclass
class Adapt:
    """Adapt methods on ``loco_k`` folds; ``S``: the surface columns (texts x 3) that text
    methods and the surface source read. Serial: the source fit of a fold is shared by its
    methods through ``sources`` (a memo of this run)."""

    ac: AdaptConfig
    acts: dict[str, Acts]
    data: TaskData
    S: np.ndarray
    metric: str
    refit: bool
    kind: str = "adapt"
    parallel: bool = False
    sources: dict[tuple, Source] = field(default_factory=dict)
    _draws: dict[tuple, list[AdaptSplit]] = field(default_factory=dict)

    def draws(self, cell: Cell) -> list[AdaptSplit]:
        """The fold's draws (k x repeat), in the protocol's order."""
        key = (cell.seed, cell.split.digest())
        if key not in self._draws:
            self._draws[key] = make_adapt_splits([cell.split], self.data.y, self.data.groups,
                                                 ks=self.ac.k, repeats=self.ac.repeats,
                                                 seed=cell.seed)
        return self._draws[key]

    def cache_key(self, cell: Cell) -> dict[str, Any]:
        a = self.acts[cell.model]
        ds = self.draws(cell)
        return {"v": ADAPT_VERSION, "acts": a.key, "layers": a.layers, "method": cell.method,
                "protocol": PROTOCOL, "seed": cell.seed, "split": cell.split.digest(),
                "draws": _digest(*(x for d in ds for x in (d.adapt, d.test))),
                "y": labels_digest(self.data), "K": self.data.n_classes,
                "surface": _digest(self.S), "k": list(self.ac.k), "repeats": self.ac.repeats,
                "source": self.ac.source, "metric": self.metric, "refit": self.refit,
                **engine_key(self.ac.source, SOURCE_MODE)}

    def cache_prefix(self, cell: Cell) -> str:
        return ""

    def source(self, cell: Cell) -> Source:
        key = (cell.model, cell.seed, cell.split.digest())
        if key not in self.sources:
            a = self.acts[cell.model]
            with threadpool_limits(1):
                self.sources[key] = fit_source(
                    self.ac, a.array, list(a.layers), self.S, self.data.y, cell.split,
                    n_classes=self.data.n_classes, seed=cell.seed, metric=self.metric,
                    refit=self.refit)
        return self.sources[key]

    def job(self, cell: Cell) -> tuple[Any, tuple]:
        return self.compute, (cell,)

    def compute(self, cell: Cell) -> CellOutput:
        t0 = time.perf_counter()
        src = self.source(cell)
        text = uses_text(cell.method)
        a = self.acts[cell.model]
        X = self.S if text else a.array[list(a.layers).index(src.layer)]
        done: list[tuple[AdaptSplit, np.ndarray]] = []
        for d in self.draws(cell):
            with threadpool_limits(1):
                pred = predict_draw(cell.method, d, X, self.data.y,
                                    src.surface if text else src.hidden,
                                    n_classes=self.data.n_classes, seed=cell.seed)
            if pred is not None:
                done.append((d, np.asarray(pred, dtype=np.int64)))
        return CellOutput(np.zeros((1, 0), dtype=np.int64), None, np.zeros(0), None,
                          time.perf_counter() - t0, layer_id=src.layer,
                          draws=Draws.of([(d.k, d.repeat, d.test, p) for d, p in done]))

    def layer_names(self, cell: Cell) -> list[str]:
        return [ADAPTED]
