"""Classifier cells: a method over texts or records (NLI), fitted on the training fold.

The ``"classifier"`` cell provider. A cell fits a fresh estimator (``make(cell)``) on the
fold's whole training part (``fit_all``, down-sampled when the class balance says so) and
predicts class probabilities for the fold's test texts, aligned to the task's labels. A method
too slow to predict every text scores a bounded sample (``eval_idx``). Whatever choice an
estimator makes inside (a probe's layer on an inner validation split, a stacking ensemble's
combiner on inner out-of-fold predictions) is the cell's nested choice, reported as
``layer_id`` and ``notes``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learnerprobe.engine.cells import Cell, CellOutput
from learnerprobe.estimators.nli._base import align_proba
from learnerprobe.evaluation.splits import balance_indices
from learnerprobe.records import LearnerText


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class Classifier:
    """Fresh estimators per cell over ``records`` with labels ``y`` (class names, ``labels``
    their order). ``make(cell)`` builds a fresh estimator of the cell's method; ``key(cell)`` is
    its cache key (None: not cached); ``eval_idx[method]`` the test texts a slow method scores
    (absent: all)."""

    records: Sequence[LearnerText]
    y: np.ndarray
    groups: np.ndarray
    labels: list[str]
    make: Callable[[Cell], Any]
    balance: str
    key: Callable[[Cell], dict[str, Any] | None] = lambda cell: None
    eval_idx: Mapping[str, np.ndarray] = field(default_factory=dict)
    kind: str = "classifier"
    parallel: bool = False  # a method may be a whole language model: cells one at a time

    def cache_key(self, cell: Cell) -> dict[str, Any] | None:
        return self.key(cell)

    def cache_prefix(self, cell: Cell) -> str:
        """``METHOD-seedS-foldF-``: which cell a file of the run's NLI cache holds."""
        return f"{cell.method.replace('/', '_')}-seed{cell.seed}-fold{cell.fold}-"

    def job(self, cell: Cell) -> tuple[Callable[..., CellOutput], tuple]:
        raise TypeError("classifier cells run in this process")

    def layer_names(self, cell: Cell) -> list[str]:
        return ["none"]

    def compute(self, cell: Cell) -> CellOutput:
        sp = cell.split
        te = np.asarray(sp.test)
        wanted = self.eval_idx.get(cell.method)
        if wanted is not None:
            te = te[np.isin(te, wanted)]
        tr = np.asarray(sp.fit_all)
        tr = tr[balance_indices(self.y[tr], self.balance, cell.seed)]
        labels = np.asarray(self.labels, dtype=object)
        if len(te) == 0:
            return CellOutput(np.zeros((1, 0), np.int64), np.zeros((1, 0, len(labels))),
                              np.zeros(0), None, 0.0, idx=te)
        est = self.make(cell)
        fit_kw = {"groups": self.groups[tr]} if _accepts(est.fit, "groups") else {}
        est.fit([self.records[i] for i in tr], self.y[tr], **fit_kw)
        p = est.predict_proba([self.records[i] for i in te])
        proba = align_proba(np.asarray(p), np.asarray(est.classes_, dtype=object), labels)
        notes: dict[str, Any] = {}
        if hasattr(est, "meta_choice_"):
            notes = {"fold": cell.fold, "meta_choice": est.meta_choice_,
                     "meta_scores": dict(est.meta_scores_)}
        layer = int(est.layer_index_) if hasattr(est, "layer_index_") else None
        return CellOutput(np.argmax(proba, axis=1)[None].astype(np.int64), proba[None],
                          np.zeros(0), None, 0.0, layer_id=layer, notes=notes, idx=te)
