"""Small helpers shared by the NLI methods (probability shaping, label encoding)."""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row softmax; turns SVM margins into a distribution (order-preserving, not calibrated)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:  # binary decision_function: margin for the positive class
        s = np.column_stack([-s / 2, s / 2])
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def align_proba(proba: np.ndarray, have: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Put columns of ``proba`` (for classes ``have``) in the order of ``want`` (zeros if absent)."""
    out = np.zeros((proba.shape[0], len(want)), dtype=np.float64)
    pos = {c: i for i, c in enumerate(want)}
    for j, c in enumerate(have):
        if c in pos:
            out[:, pos[c]] = proba[:, j]
    return out
