"""Residual analysis: *how* a probe fails, not just how much.

Out of distribution, proficiency probes tend to stop tracking the level and fall back on what
they learnt the levels' frequencies to be.  These figures make that visible per cell:

- label distributions: predicted, true (test), training prior and uniform; entropy of each (bits)
  and Jensen-Shannon divergence (base 2, in [0, 1]; scipy returns the *distance*, we square it) of
  the predictions to each of the other three;
- mean signed error per true level (``pred - true``): positive at low levels and negative at high
  levels is regression to the mean;
- ``slope``: least-squares slope of the predicted level on the true level (1 = tracks the level,
  0 = ignores it);
- ``collapse`` = ``1 - slope``: 0 for a probe that follows the level, 1 for predictions that are
  flat in the true level (all texts get the same level, or levels assigned at random), above 1
  when the ordering is inverted.  It is the one-number "collapse" figure of the report;
- ``prior_pull`` = ``JS(pred, true) / (JS(pred, true) + JS(pred, prior))``: above 0.5 when the
  predicted distribution looks more like the training prior than like the test distribution;
- ``entropy_ratio`` = ``H(pred) / H(true)``: below 1 when predictions concentrate on fewer levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy


def _dist(y: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(np.asarray(y, dtype=int).ravel(), minlength=k)[:k].astype(float)
    total = counts.sum()
    return counts / total if total > 0 else np.full(k, np.nan)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (squared scipy distance)."""
    if np.isnan(p).any() or np.isnan(q).any():
        return float("nan")
    return float(jensenshannon(p, q, base=2) ** 2)


def residual_analysis(
    y_true,
    y_pred,
    *,
    n_classes: int,
    train_labels,
    labels: Sequence[str] | None = None,
) -> dict:
    """Distributions, entropies, divergences, per-level signed error and collapse of one cell.

    Labels are ordinal indices ``0..n_classes-1``; ``labels`` gives their names for the rows.
    Returns a dict with ``distributions``, ``entropy``, ``js``, ``mean_signed_error`` (per level,
    NaN for levels absent from the test set), ``slope``, ``collapse``, ``prior_pull``,
    ``entropy_ratio`` and ``rows``: the same as tidy ``{"metric", "level", "value"}`` rows
    (``level`` = label name, or ``"all"``) for the results table.
    """
    yt = np.asarray(y_true, dtype=int).ravel()
    yp = np.asarray(y_pred, dtype=int).ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} items but y_pred has {yp.size}")
    k = int(n_classes)
    for name, arr in (("y_true", yt), ("y_pred", yp), ("train_labels", np.asarray(train_labels))):
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError(f"{name} holds values outside 0..{k - 1}")
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} label names for {k} classes")

    dists = {
        "pred": _dist(yp, k),
        "true": _dist(yt, k),
        "prior": _dist(np.asarray(train_labels), k),
        "uniform": np.full(k, 1.0 / k),
    }
    ent = {key: float(entropy(d, base=2)) for key, d in dists.items()}
    js = {
        "pred_true": _js(dists["pred"], dists["true"]),
        "pred_prior": _js(dists["pred"], dists["prior"]),
        "pred_uniform": _js(dists["pred"], dists["uniform"]),
        "true_uniform": _js(dists["true"], dists["uniform"]),
        "true_prior": _js(dists["true"], dists["prior"]),
    }
    err = yp - yt
    mse_level = np.array([err[yt == c].mean() if (yt == c).any() else np.nan for c in range(k)])
    var_t = yt.var()
    slope = float(np.cov(yt, yp, bias=True)[0, 1] / var_t) if var_t > 0 else float("nan")
    collapse = 1.0 - slope
    denom = js["pred_true"] + js["pred_prior"]
    prior_pull = js["pred_true"] / denom if denom > 0 else float("nan")
    entropy_ratio = ent["pred"] / ent["true"] if ent["true"] > 0 else float("nan")

    rows: list[dict] = []
    for key, d in dists.items():
        rows += [{"metric": f"dist_{key}", "level": names[c], "value": float(d[c])}
                 for c in range(k)]
    rows += [{"metric": f"entropy_{key}", "level": "all", "value": v} for key, v in ent.items()]
    rows += [{"metric": f"js_{key}", "level": "all", "value": v} for key, v in js.items()]
    rows += [{"metric": "mean_signed_error", "level": names[c], "value": float(mse_level[c])}
             for c in range(k)]
    rows += [
        {"metric": "mean_signed_error", "level": "all", "value": float(err.mean())},
        {"metric": "slope", "level": "all", "value": slope},
        {"metric": "collapse", "level": "all", "value": collapse},
        {"metric": "prior_pull", "level": "all", "value": prior_pull},
        {"metric": "entropy_ratio", "level": "all", "value": entropy_ratio},
    ]
    return {
        "distributions": dists,
        "entropy": ent,
        "js": js,
        "mean_signed_error": mse_level,
        "slope": slope,
        "collapse": collapse,
        "prior_pull": prior_pull,
        "entropy_ratio": entropy_ratio,
        "rows": rows,
    }
