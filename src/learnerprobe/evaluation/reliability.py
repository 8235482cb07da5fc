"""Calibration of predicted probabilities: expected calibration error (ECE) and the binned
data of a reliability diagram, on the top label (the probability a user reads next to the
predicted level or language).

ECE = sum over confidence bins of (bin share) x |accuracy in bin - mean confidence in bin|,
with ``n_bins`` equal-width bins on [0, 1] (the usual 15 or 10; 10 here, studies have a few
hundred texts per fold). 0 is perfect; a model whose 0.8-confident answers are right 60 % of
the time adds about 0.2 x their share.
"""

from __future__ import annotations

import numpy as np

N_BINS = 10


def reliability_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS
                     ) -> dict[str, np.ndarray]:
    """Per bin: ``count``, mean ``confidence`` and ``accuracy`` of the top label (NaN where a
    bin is empty), and the bin ``edges``."""
    p = np.asarray(proba, dtype=float)
    conf = p.max(axis=1)
    hit = (p.argmax(axis=1) == np.asarray(y, dtype=int)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=hit, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": acc}


def ece(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the top label (NaN without texts)."""
    if len(y) == 0:
        return float("nan")
    r = reliability_bins(proba, y, n_bins)
    w = r["count"] / r["count"].sum()
    gap = np.abs(r["accuracy"] - r["confidence"])
    return float(np.nansum(w * gap))
