"""Cell providers: how each method family turns a cell (method x fold) into predictions.

A method's registry entry (:class:`learnerprobe.methods.registry.MethodEntry`) names its
provider kind (``MethodEntry.cell_provider``):

- ``"layers"``: a probe over the layer axis of the activations; every layer is fitted on the
  fold's ``train`` part, the layer is chosen on ``val`` (the choice among candidates on an
  inner fold: the same idea as a nested provider's, with one inner fold and layers as the
  candidates), every layer predicts ``test`` (:class:`LayerSweep`);
- ``"features"``: a baseline on features of the texts, one pseudo-layer (:class:`Features`);
- ``"nested"``: a transfer method; variant and layer chosen by inner leave-one-corpus-out folds
  inside the fold's training part (:class:`learnerprobe.engine.nested.Nested`);
- ``"classifier"``: an NLI method over texts or records (:class:`learnerprobe.engine.
  classifier.Classifier`);
- ``"adapt"``: an adaptation method on a ``loco_k`` fold, fitted on each draw's k labelled
  texts (:class:`learnerprobe.engine.loco_k.Adapt`).

:func:`provider_kind` is the dispatch; the stages build one provider object per family and map
every method name to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.engine.cells import Cell, CellOutput
from learnerprobe.engine.data import Acts
from learnerprobe.estimators.probes.all_layers import engine_key
from learnerprobe.estimators.probes.surface import SurfaceBaseline
from learnerprobe.evaluation.protocols import Split
from learnerprobe.evaluation.results import NO_LAYER
from learnerprobe.methods.registry import get_method
from learnerprobe.selection.validation import fit_layers, select_layer
from learnerprobe.tasks import TaskData

CELL_VERSION = 1
SURFACE = "surface"


def provider_kind(method: str) -> str:
    """The provider kind of a registered method (its entry's ``cell_provider``)."""
    return get_method(method).cell_provider


def probe_cell_key(cell: Cell, acts: str, layers: list[int], data: TaskData, metric: str,
                   refit: bool) -> dict[str, Any]:
    """Everything that determines a probe or surface cell (the study's cell cache key; the
    surface baseline's is ``acts = "surface"`` with no layers)."""
    return {"v": CELL_VERSION, "acts": acts, "layers": layers, "probe": cell.method,
            "mode": cell.mode, "seed": cell.seed, "split": cell.split.digest(),
            "y": labels_digest(data), "K": data.n_classes, "metric": metric,
            "refit": refit, **engine_key(cell.method, cell.mode)}


def labels_digest(data: TaskData) -> str:
    """Hash of the labels and text ids (part of every probe cell's key)."""
    return hashlib.sha256(data.y.tobytes() + "|".join(data.ids).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- workers
def surface_fit_predict(F_train: np.ndarray, y_train: np.ndarray, F_test: np.ndarray, *,
                        n_classes: int, seed: int, **_: Any) -> dict[str, np.ndarray]:
    """Surface baseline (gradient boosting on length features) as one pseudo-layer.

    It keeps its defaults in both modes, so it is the same yardstick everywhere."""
    # OpenMP threads buy nothing on a few thousand rows x 3 features and, on a busy machine,
    # oversubscription made one fit take 50 s instead of 0.4 s.
    with threadpool_limits(1, user_api="openmp"):
        est = SurfaceBaseline(n_classes=n_classes, random_state=seed).fit(F_train, y_train)
        proba = np.asarray(est.predict_proba(F_test), dtype=np.float32)
    pred = np.argmax(proba, axis=1).astype(np.int64)
    return {"pred": pred[None], "proba": proba[None]}


def _surface_layer(F_train, y_train, F_test, probe, *, mode, n_classes, seed):
    """:func:`surface_fit_predict` with the layer axis of the probes (one pseudo-layer)."""
    return surface_fit_predict(F_train[0], y_train, F_test[0], n_classes=n_classes, seed=seed)


def run_cell(X: np.ndarray, y: np.ndarray, split: Split, probe: str, *, mode: str,
             n_classes: int, seed: int, width: int, metric: str, refit: bool,
             n_jobs: int = 1, target: str = "ordinal") -> CellOutput:
    """Fit all layers on the fold's ``train`` part; choose the layer on ``val`` only; predict
    ``test`` (from the ``train`` fit, or refitted on ``fit_all`` when ``refit``).
    ``probe = "surface"``: ``X`` are text features (texts x f), one pseudo-layer."""
    import time

    t0 = time.perf_counter()
    kw: dict[str, Any] = {"mode": mode, "seed": seed}
    if probe == SURFACE:
        XL, fit = X[None], _surface_layer
    else:
        XL, fit = X, fit_layers
        kw.update(width=width, n_jobs=n_jobs)
    sel = select_layer(XL[:, split.train], y[split.train], XL[:, split.val], y[split.val], probe,
                       metric=metric, n_classes=n_classes, X_test=XL[:, split.test], fit=fit,
                       target=target, **kw)
    pred_t, proba_t = sel.test_pred, sel.test_proba
    if refit:
        out = fit(XL[:, split.fit_all], y[split.fit_all], XL[:, split.test], probe,
                  n_classes=n_classes, **kw)
        pred_t = np.asarray(out["pred"])
        proba_t = None if out.get("proba") is None else np.asarray(out["proba"])
    li = sel.layer_index
    return CellOutput(pred_t.astype(np.int64),
                      None if proba_t is None else proba_t.astype(np.float32),
                      sel.scores, li, time.perf_counter() - t0,
                      val_proba=None if sel.val_proba is None or refit
                      else np.asarray(sel.val_proba, dtype=np.float32),
                      val_pred=sel.val_pred[li])


def fit_all_features(F: np.ndarray, y: np.ndarray, split: Split, n_classes: int,
                     seed: int) -> CellOutput:
    """The surface baseline fitted on the whole training fold, predicting the test fold."""
    out = surface_fit_predict(F[split.fit_all], y[split.fit_all], F[split.test],
                              n_classes=n_classes, seed=seed)
    return CellOutput(out["pred"], out["proba"], np.zeros(0), None, 0.0)


# --------------------------------------------------------------------------- providers
@dataclass
class LayerSweep:
    """Probes over every layer, the layer chosen on the fold's validation part."""

    acts: dict[str, Acts]
    data: TaskData
    metric: str
    refit: bool
    sweep_jobs: int = 1
    target: str = "ordinal"  # how validation scores are read (nominal: L1 probes)
    kind: str = "layers"
    parallel: bool = True

    def cache_key(self, cell: Cell) -> dict[str, Any]:
        a = self.acts[cell.model]
        return probe_cell_key(cell, a.key, a.layers, self.data, self.metric, self.refit)

    def cache_prefix(self, cell: Cell) -> str:
        return ""

    def job(self, cell: Cell) -> tuple[Callable[..., CellOutput], tuple]:
        a = self.acts[cell.model]
        return _sweep, (a.array, self.data.y, cell.split, cell.method, cell.mode,
                        self.data.n_classes, cell.seed, a.width, self.metric, self.refit,
                        self.sweep_jobs, self.target)

    def compute(self, cell: Cell) -> CellOutput:
        fn, args = self.job(cell)
        return fn(*args)

    def layer_names(self, cell: Cell) -> list[str]:
        return [str(x) for x in self.acts[cell.model].layers]

    def chosen_layers(self, cell: Cell, outs: list[CellOutput]) -> list[int]:
        """The hidden-state index each fold's validation chose."""
        layers = self.acts[cell.model].layers
        return [int(layers[o.selected]) for o in outs if o.selected is not None]


def _sweep(X, y, split, probe, mode, n_classes, seed, width, metric, refit, n_jobs,
           target="ordinal"):
    return run_cell(X, y, split, probe, mode=mode, n_classes=n_classes, seed=seed, width=width,
                    metric=metric, refit=refit, n_jobs=n_jobs, target=target)


@dataclass
class Features:
    """A baseline on text features (``F``: texts x f), one pseudo-layer.

    ``fit_on = "train"``: as a probe cell (fitted on ``train``, refitted on ``fit_all`` when
    ``refit``), cached; ``"fit_all"``: fitted on the whole training fold only (the transfer
    stage's yardstick), not cached (seconds of work)."""

    F: np.ndarray
    data: TaskData
    metric: str
    refit: bool
    fit_on: str = "train"
    kind: str = "features"
    parallel: bool = True

    def cache_key(self, cell: Cell) -> dict[str, Any] | None:
        if self.fit_on != "train":
            return None
        return probe_cell_key(cell, SURFACE, [], self.data, self.metric, self.refit)

    def cache_prefix(self, cell: Cell) -> str:
        return ""

    def job(self, cell: Cell) -> tuple[Callable[..., CellOutput], tuple]:
        if self.fit_on != "train":
            return fit_all_features, (self.F, self.data.y, cell.split, self.data.n_classes,
                                      cell.seed)
        return _sweep, (self.F, self.data.y, cell.split, cell.method, cell.mode,
                        self.data.n_classes, cell.seed, 1, self.metric, self.refit, 1)

    def compute(self, cell: Cell) -> CellOutput:
        fn, args = self.job(cell)
        return fn(*args)

    def layer_names(self, cell: Cell) -> list[str]:
        return [NO_LAYER]
