"""Class balancing: seeded down-sampling (as the NLI reference work did) and class weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from learnerprobe.errors import ConfigError


def downsample(
    y: Sequence[Any], strategy: Literal["mean", "min"] = "mean", seed: int = 0
) -> np.ndarray:
    """Indices of a class-balanced subsample, sorted.

    ``"min"`` cuts every class to the size of the smallest one; ``"mean"`` cuts classes larger
    than the mean class size to that size (rounded down) and keeps smaller classes whole. The
    choice of rows is random but fixed by ``seed``.
    """
    y = np.asarray(y, dtype=object)
    if len(y) == 0:
        return np.zeros(0, dtype=int)
    labels, inverse, sizes = np.unique(y.astype(str), return_inverse=True, return_counts=True)
    if strategy == "min":
        target = int(sizes.min())
    elif strategy == "mean":
        target = int(sizes.mean())
    else:
        raise ConfigError(f"downsample strategy must be 'mean' or 'min', not {strategy!r}")
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for k in range(len(labels)):
        idx = np.flatnonzero(inverse == k)
        if len(idx) > target:
            idx = rng.choice(idx, size=target, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def class_weights(y: Sequence[Any]) -> dict[Any, float]:
    """sklearn's "balanced" weights, n / (k * n_c), as a label -> weight dict."""
    from sklearn.utils.class_weight import compute_class_weight

    arr = np.asarray(y)
    classes = np.unique(arr)
    w = compute_class_weight("balanced", classes=classes, y=arr)
    return {c.item() if hasattr(c, "item") else c: float(v) for c, v in zip(classes, w, strict=True)}
