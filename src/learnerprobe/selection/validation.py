"""Fit a probe on every layer and choose the layer on validation data: the one selection step.

"The best layer" means one thing for the study runner, the NLI hidden-state probe and CEFR and
L1 bundle training:

- **score**: each layer's validation predictions are scored by one named metric
  (:func:`score_layers`); ordinal metrics on the ``0..K-1`` scale as the study reports them,
  nominal ones as scikit-learn defines them (macro-F1 over the labels present);
- **rule** (:func:`best_index`): the best score wins (the highest; the lowest for
  :data:`LOWER_IS_BETTER` metrics); **ties go to the earliest candidate** (the lowest index on
  the layer axis, i.e. the shallowest layer); a NaN score never wins; all NaN gives the first.

Only validation data reach the selector: the test rows a caller passes are predicted alongside
but never scored here.

The fitting engine is :func:`learnerprobe.estimators.probes.all_layers.fit_predict_layers` for
the built-in probes; a probe added through :mod:`learnerprobe.methods.registry` is fitted layer
by layer from its registry entry (:func:`fit_layers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from learnerprobe.evaluation.metrics import LOWER_IS_BETTER, ORDINAL_METRICS, macro_f1, score_all
from learnerprobe.methods.registry import get_method

NOMINAL_METRICS = ("macro_f1", "accuracy")
Target = Literal["ordinal", "nominal"]
#: ``fit(X_train, y_train, X_test, probe, *, n_classes, **kw) -> {"pred": layers x m, ...}``
LayerFitter = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Selection:
    """The validation-chosen layer of one probe and everything the choice was made from.

    ``layer_index`` indexes the layer axis of the arrays given (not a hidden-state number);
    ``scores`` holds every layer's validation score; ``val_pred`` / ``test_pred`` are
    ``layers x m`` predictions (``test_pred`` None without test rows), ``*_proba`` likewise
    ``layers x m x K`` or None for a method without probabilities.
    """

    layer_index: int
    scores: np.ndarray
    val_pred: np.ndarray
    test_pred: np.ndarray | None = None
    val_proba: np.ndarray | None = None
    test_proba: np.ndarray | None = None
    info: Any = None

    @property
    def score(self) -> float:
        """The chosen layer's validation score."""
        return float(self.scores[self.layer_index])


def best_index(scores: Sequence[float] | np.ndarray, *, lower_is_better: bool = False) -> int:
    """THE tie rule: index of the best score, the earliest among equals; NaN never wins
    (all NaN: 0)."""
    s = np.asarray(scores, dtype=float)
    s = np.nan_to_num(s, nan=np.inf if lower_is_better else -np.inf)
    return int(np.argmin(s) if lower_is_better else np.argmax(s))


def score_layers(y_val: np.ndarray, pred_val: np.ndarray, metric: str, *, n_classes: int,
                 target: Target = "ordinal") -> np.ndarray:
    """Validation score of each layer's predictions (``pred_val``: layers x m)."""
    if target == "nominal":
        if metric not in NOMINAL_METRICS:
            raise ValueError(f"unknown nominal selection metric {metric!r}; known: "
                             f"{', '.join(NOMINAL_METRICS)}")
        if metric == "accuracy":
            return np.array([float(np.mean(y_val == p)) for p in pred_val])
        return np.array([macro_f1(y_val, p) for p in pred_val])
    if metric not in ORDINAL_METRICS:
        raise ValueError(f"unknown selection metric {metric!r}; known: {', '.join(ORDINAL_METRICS)}")
    return np.array([float(score_all(y_val, p, labels=n_classes)[metric]) for p in pred_val])


def select_from_predictions(y_val: np.ndarray, pred_val: np.ndarray, metric: str, *,
                            n_classes: int, target: Target = "ordinal") -> Selection:
    """Choose among layers whose validation predictions (``layers x m``) are already made."""
    scores = score_layers(y_val, pred_val, metric, n_classes=n_classes, target=target)
    best = best_index(scores, lower_is_better=metric in LOWER_IS_BETTER)
    return Selection(best, scores, np.asarray(pred_val))


def select_layer(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray,
                 y_val: np.ndarray, probe: str, *, metric: str = "qwk", n_classes: int,
                 target: Target = "ordinal", X_test: np.ndarray | None = None,
                 fit: LayerFitter | None = None, **fit_kw: Any) -> Selection:
    """Fit ``probe`` on every layer of ``X_train`` (layers x n x d), predict the validation rows
    (and ``X_test`` in the same pass, never scored), and choose the layer on validation.

    ``fit`` is the all-layer fitting engine (default :func:`fit_layers`); ``fit_kw`` go to it
    (``mode``, ``seed``, ``width``, ``n_jobs`` for probes).
    """
    fit = fit_layers if fit is None else fit
    nv = X_val.shape[1]
    X_pred = X_val if X_test is None else np.concatenate([X_val, X_test], axis=1)
    out = fit(X_train, y_train, X_pred, probe, n_classes=n_classes, **fit_kw)
    pred = np.asarray(out["pred"])
    proba = None if out.get("proba") is None else np.asarray(out["proba"])
    sel = select_from_predictions(y_val, pred[:, :nv], metric, n_classes=n_classes,
                                  target=target)
    has_test = X_test is not None
    return Selection(
        sel.layer_index, sel.scores, pred[:, :nv], pred[:, nv:] if has_test else None,
        None if proba is None else proba[:, :nv],
        None if proba is None or not has_test else proba[:, nv:], out.get("info"))


# --------------------------------------------------------------------------- fitting engine
def fit_layers(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, probe: str, *,
               n_classes: int, mode: str = "tuned", seed: int = 0, width: int | None = None,
               n_jobs: int | None = 1) -> dict[str, Any]:
    """All layers of a registered probe: the shared-work engine for the built-in probes
    (:func:`learnerprobe.estimators.probes.all_layers.fit_predict_layers`), else a per-layer loop
    over fresh estimators from the probe's registry entry."""
    entry = get_method(probe, kind="probe")
    if entry.layer_engine is not None:
        return entry.fit_layers(X_train, y_train, X_test, probe, mode=mode, n_classes=n_classes,
                                seed=seed, width=width, n_jobs=n_jobs)
    preds, probas = [], []
    for i in range(np.asarray(X_train).shape[0]):
        est = entry.build(mode=mode, n_classes=n_classes, width=width, seed=seed)
        est.fit(X_train[i], y_train)
        preds.append(np.asarray(est.predict(X_test[i])).astype(int))
        if entry.proba:
            probas.append(aligned_proba(est, X_test[i], n_classes))
    return {"pred": np.stack(preds), "proba": np.stack(probas) if probas else None, "info": []}


def aligned_proba(est: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per level ``0..n_classes-1`` (absent levels get 0)."""
    p = np.asarray(est.predict_proba(X), dtype=float)
    classes = np.asarray(getattr(est, "classes_", np.arange(p.shape[1]))).astype(int)
    out = np.zeros((p.shape[0], n_classes))
    out[:, classes] = p
    return out
