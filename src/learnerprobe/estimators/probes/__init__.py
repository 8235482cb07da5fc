"""Proficiency probes: five sklearn estimators over ordinal levels, a surface baseline, and an
efficient all-layer sweep (:mod:`learnerprobe.estimators.probes.all_layers`).

``make_probe(name, mode=...)`` is the one place that defines the two protocols:

- ``reference``: the published protocol -- sklearn/mord defaults, no feature scaling, MLP hidden
  size = model width (``width``; sklearn's 100 when unknown); the MLPs are sklearn's
  ``MLPClassifier``/``MLPRegressor`` defaults re-implemented in torch (same initialisation,
  shuffles, Adam and stopping rule; :mod:`learnerprobe.estimators.probes._sklearn_mlp`), so that the
  layer sweep can train all layers at once;
- ``tuned`` (default): StandardScaler inside the estimator, regularisation chosen by inner CV on
  the training data only (ridge: leave-one-out over ``RIDGE_ALPHAS``; logistic: 3-fold log-loss
  over ``LOGISTIC_CS``; ordinal: 3-fold log-loss over ``ORDINAL_ALPHAS``), MLPs trained in torch
  with early stopping on an internal validation split, seeded.
"""

from __future__ import annotations

import numpy as np

from learnerprobe.estimators.probes.level_probes import (
    LogisticProbe,
    MLPClfProbe,
    MLPRegProbe,
    OrdinalLogisticAT,
    RidgeOrdinal,
)
from learnerprobe.estimators.probes.surface import SurfaceBaseline, surface_features

PROBES: tuple[str, ...] = ("ridge", "logistic", "ordinal", "mlp_reg", "mlp_clf")
MODES: tuple[str, ...] = ("tuned", "reference")
RIDGE_ALPHAS: tuple[float, ...] = tuple(np.logspace(-2, 5, 15).tolist())
LOGISTIC_CS: tuple[float, ...] = tuple(np.logspace(-4, 1, 6).tolist())
ORDINAL_ALPHAS: tuple[float, ...] = tuple(np.logspace(-1, 4, 6).tolist())
TUNED_MLP_HIDDEN = 256  # tuned-mode hidden size when the model width is unknown

__all__ = [
    "PROBES", "MODES", "make_probe", "RidgeOrdinal", "LogisticProbe", "OrdinalLogisticAT",
    "MLPRegProbe", "MLPClfProbe", "SurfaceBaseline", "surface_features",
]


def make_probe(
    name: str,
    *,
    mode: str = "tuned",
    n_classes: int | None = None,
    width: int | None = None,
    seed: int = 0,
    scale: bool | None = None,
):
    """A fresh, unfitted probe ``name`` (one of :data:`PROBES`) configured for ``mode``.

    ``scale`` overrides the mode's standardisation (the layer sweep standardises once per layer
    and passes ``scale=False``).
    """
    if mode not in MODES:
        raise ValueError(f"unknown probe mode {mode!r}; known: {', '.join(MODES)}")
    ref = mode == "reference"
    sc = (not ref) if scale is None else bool(scale)
    if name == "ridge":
        return RidgeOrdinal(alpha=1.0, alphas=None if ref else RIDGE_ALPHAS, scale=sc,
                            n_classes=n_classes)
    if name == "logistic":
        if ref:
            return LogisticProbe(C=1.0, scale=sc, n_classes=n_classes, random_state=seed)
        return LogisticProbe(Cs=LOGISTIC_CS, cv=3, scale=sc, max_iter=300, n_classes=n_classes,
                             random_state=seed)
    if name == "ordinal":
        if ref:
            return OrdinalLogisticAT(alpha=1.0, scale=sc, n_classes=n_classes)
        return OrdinalLogisticAT(alphas=ORDINAL_ALPHAS, cv=3, scale=sc, tol=1e-6,
                                 n_classes=n_classes, random_state=seed)
    if name in ("mlp_reg", "mlp_clf"):
        cls = MLPRegProbe if name == "mlp_reg" else MLPClfProbe
        if ref:
            return cls(hidden_layer_size=int(width or 100), backend="sklearn_torch", scale=sc,
                       n_classes=n_classes, random_state=seed)
        return cls(hidden_layer_size=int(width or TUNED_MLP_HIDDEN), backend="torch", scale=sc,
                   n_classes=n_classes, random_state=seed)
    raise ValueError(f"unknown probe {name!r}; known: {', '.join(PROBES)}")
