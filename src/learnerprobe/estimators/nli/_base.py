"""Small helpers shared by the NLI methods (their inputs, probability shaping)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from learnerprobe.records import LearnerText


def as_texts(X: Sequence[Any]) -> list[str]:
    """Strings from a list of str, LearnerText or dicts with "text" (methods accept all three)."""
    out: list[str] = []
    for i, x in enumerate(X):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, LearnerText):
            out.append(x.text)
        elif isinstance(x, dict) and "text" in x:
            out.append(str(x["text"]))
        else:
            raise TypeError(f"item {i}: expected str, LearnerText or dict with 'text', got {type(x)}")
    return out


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
