"""Seeded, leakage-free splits: no author on both sides, classes stratified where possible.

Why: several texts by one learner share topics, names and idiosyncrasies; if they land in both
train and test a probe can recognise the writer instead of the proficiency level or the L1.
Texts without an author id (``None``/NaN/"") are treated as their own single-text group.
All functions return integer index arrays into the inputs; the same seed gives the same split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from learnerprobe.errors import ConfigError

Split = tuple[np.ndarray, np.ndarray]


def resolve_groups(groups: Sequence[Any] | None, n: int) -> np.ndarray:
    """Group labels as strings; a missing group becomes a unique per-row group."""
    if groups is None:
        return np.array([f"__row{i}" for i in range(n)], dtype=object)
    if len(groups) != n:
        raise ConfigError(f"groups has {len(groups)} entries but y has {n}")
    out = np.empty(n, dtype=object)
    for i, g in enumerate(groups):
        missing = g is None or (isinstance(g, float) and math.isnan(g)) or g == ""
        out[i] = f"__row{i}" if missing else f"g:{g}"
    return out


def grouped_stratified_kfold(
    y: Sequence[Any], groups: Sequence[Any] | None = None, n_splits: int = 5, seed: int = 0
) -> list[Split]:
    """k folds stratified by ``y`` with no group split across train and test (sklearn
    ``StratifiedGroupKFold`` with shuffling)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y_arr = np.asarray(y).astype(str)
    g = resolve_groups(groups, len(y_arr))
    n_groups = len(set(g))
    if n_splits < 2 or n_groups < n_splits:
        raise ConfigError(f"cannot make {n_splits} folds from {n_groups} groups")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y_arr)), y_arr, g)]


def grouped_holdout(
    y: Sequence[Any], groups: Sequence[Any] | None = None, test_size: float = 0.2, seed: int = 0
) -> Split:
    """One stratified, grouped train/test split; the test share is ~``test_size``.

    Implemented as the first fold of ``round(1 / test_size)`` stratified group folds, which keeps
    both guarantees (grouping exact, stratification approximate).
    """
    if not 0 < test_size < 1:
        raise ConfigError(f"test_size must be between 0 and 1, not {test_size}")
    n_splits = max(2, round(1 / test_size))
    return grouped_stratified_kfold(y, groups, n_splits=n_splits, seed=seed)[0]


def inner_validation_split(
    y: Sequence[Any],
    groups: Sequence[Any] | None = None,
    *,
    within: Sequence[int] | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> Split:
    """A validation split drawn from training data only, for picking layers/hyper-parameters.

    Pass the full ``y``/``groups`` and the outer training indices as ``within``; the returned
    (fit, validation) indices are indices into the full arrays and are subsets of ``within``,
    so the outer test fold is never looked at.
    """
    y_arr = np.asarray(y, dtype=object)
    g_all = resolve_groups(groups, len(y_arr))
    base = np.arange(len(y_arr)) if within is None else np.asarray(within, dtype=int)
    fit, val = grouped_holdout(y_arr[base], list(g_all[base]), test_size=test_size, seed=seed)
    return base[fit], base[val]


def leave_one_group_out(values: Sequence[Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, train_idx, test_idx) per distinct value, e.g. leave-one-corpus-out or
    leave-one-language-out; names sorted so the order is reproducible."""
    arr = np.asarray([str(v) for v in values], dtype=object)
    names = sorted(set(arr))
    if len(names) < 2:
        raise ConfigError(f"leave-one-out needs at least 2 distinct values, got {names}")
    return [(n, np.flatnonzero(arr != n), np.flatnonzero(arr == n)) for n in names]


# Name used in docs/ARCHITECTURE.md.
leave_one_out = leave_one_group_out
