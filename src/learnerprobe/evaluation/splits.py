"""Seeded, leakage-free splits and class balancing: the one implementation for both tasks.

Why one module: several texts by one learner share topics, names and idiosyncrasies; if they
land on both sides of a split a probe can recognise the writer instead of the proficiency level
or the L1. The CEFR study, the NLI protocol, the NLI methods' inner validation splits and the
bundle trainer all split through these functions, so they group and stratify alike.

* Group keys are ``corpus:author`` (:func:`group_keys`), falling back to the text id, so two
  corpora that both number their authors 1, 2, 3 never share a group.
* Texts without a group (``None``/NaN/"") are their own single-text group.
* Functions return integer index arrays into the inputs; the same seed gives the same split.
  Group labels are compared as strings (``"g:<key>"``); scikit-learn's ``StratifiedGroupKFold``
  sorts the unique labels, so a common prefix (one corpus) keeps the fold assignment unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from learnerprobe.errors import ConfigError
from learnerprobe.records import LearnerText

Split = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- group keys
def group_key(item: Any, i: int) -> str:
    """The author group of one item: ``corpus:author`` (``corpus:text id`` where the author
    is unknown) for a :class:`LearnerText` or a dict with those fields; ``#i`` (its position)
    for anything else, e.g. a plain string."""
    if isinstance(item, LearnerText):
        return f"{item.corpus}:{item.author_id or item.id}"
    if isinstance(item, dict) and (item.get("author_id") or item.get("id")):
        return f"{item.get('corpus') or ''}:{item.get('author_id') or item.get('id')}"
    return f"#{i}"


def group_keys(items: Sequence[Any]) -> np.ndarray:
    """:func:`group_key` of every item, as an object array (what every split here takes)."""
    return np.array([group_key(x, i) for i, x in enumerate(items)], dtype=object)


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


# --------------------------------------------------------------------------- k-fold / holdout
def _stratified_group_folds(y: np.ndarray, g: np.ndarray, n_splits: int,
                            seed: int) -> Iterator[Split]:
    """scikit-learn's ``StratifiedGroupKFold`` with shuffling (lazy: the first fold costs one)."""
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cv.split(np.zeros(len(y)), y, g)


def grouped_stratified_kfold(
    y: Sequence[Any], groups: Sequence[Any] | None = None, n_splits: int = 5, seed: int = 0
) -> list[Split]:
    """k folds stratified by ``y`` (compared as strings) with no group split across train and
    test; a ConfigError when there are fewer groups than folds, or when scikit-learn cannot
    stratify at all (every class smaller than ``n_splits``)."""
    y_arr = np.asarray(y).astype(str)
    g = resolve_groups(groups, len(y_arr))
    n_groups = len(set(g))
    if n_splits < 2 or n_groups < n_splits:
        raise ConfigError(f"cannot make {n_splits} folds from {n_groups} groups")
    try:
        return [(tr, te) for tr, te in _stratified_group_folds(y_arr, g, n_splits, seed)]
    except ValueError as e:  # "n_splits=5 cannot be greater than the number of members ..."
        raise ConfigError(f"cannot make {n_splits} stratified folds: {e}") from None


class SmallClassWarning(UserWarning):
    """A class has fewer texts than the outer folds: some test folds miss it."""


def check_class_sizes(y: Sequence[Any], n_splits: int, labels: Sequence[str] | None = None,
                      *, strict: bool = True) -> None:
    """Before any fitting: a class with fewer texts than the outer folds is missing from some
    test folds, and with one text from a training fold, so a probe never sees it there.

    ``strict`` (NLI, where ``min_texts_per_l1`` decides which classes enter): a ConfigError
    naming the class and what to change. Otherwise (CEFR levels come from the data, e.g. the
    one A1 text of MERLIN Czech): a SmallClassWarning, and a ConfigError only when every class
    is that small, where no stratified split exists. ``labels`` names the indices of an
    encoded ``y``."""
    names, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    small = [(str(n), int(c)) for n, c in zip(names, counts, strict=True) if c < n_splits]
    if not small:
        return
    if labels is not None:
        small = [(str(labels[int(n)]) if n.isdigit() and int(n) < len(labels) else n, c)
                 for n, c in small]
    shown = ", ".join(f"{n!r} has {c}" for n, c in small[:5])
    msg = (f"cannot make {n_splits} folds: every class needs at least {n_splits} texts, but "
           f"{shown}; lower `folds`, merge or drop the class, or add texts")
    if strict or len(small) == len(names):
        raise ConfigError(msg)
    warnings.warn(f"{msg} (those classes are scored only in the folds that hold them)",
                  SmallClassWarning, stacklevel=2)


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


def _group_shuffle(g: np.ndarray, test_size: float, seed: int) -> Split:
    from sklearn.model_selection import GroupShuffleSplit

    gss = GroupShuffleSplit(1, test_size=test_size, random_state=seed)
    return next(gss.split(np.zeros(len(g)), groups=g))


def inner_validation_split(
    y: Sequence[Any],
    groups: Sequence[Any] | None = None,
    *,
    within: Sequence[int] | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    fallback: Literal["rare_class", "unsplittable"] = "rare_class",
) -> Split:
    """A grouped validation split drawn from training data only (choosing layers, early stopping).

    Pass the full ``y``/``groups`` and the outer training indices as ``within``; the returned
    (fit, validation) indices are sorted indices into the full arrays and subsets of ``within``,
    so the outer test fold is never looked at. The split is the first of ``round(1/test_size)``
    stratified group folds. When stratification is impossible a plain grouped shuffle split
    (``GroupShuffleSplit``) is used; ``fallback`` says when, and each caller keeps its rule so
    its published numbers reproduce:

    * ``"rare_class"`` (study protocols): when the training part has one class or a class with
      fewer than two texts; ``y`` compared as strings, fewer groups than folds is an error.
    * ``"unsplittable"`` (NLI methods' layer choice and fine-tuning): when scikit-learn refuses
      the stratified split (``ValueError``); ``y`` is used as given.
    """
    y_all = np.asarray(y)
    base = np.arange(len(y_all)) if within is None else np.asarray(within, dtype=int)
    g_all = (np.asarray(groups, dtype=object) if groups is not None
             else np.full(len(y_all), None, dtype=object))
    y_in, g_in = y_all[base], resolve_groups(list(g_all[base]), len(base))
    if fallback == "rare_class":
        counts = np.unique(y_in.astype(str), return_counts=True)[1]
        if len(counts) > 1 and counts.min() >= 2:
            fit, val = grouped_holdout(y_in, list(g_all[base]), test_size=test_size, seed=seed)
        else:
            fit, val = _group_shuffle(g_in, test_size, seed)
    elif fallback == "unsplittable":
        try:
            fit, val = next(iter(_stratified_group_folds(
                y_in, g_in, max(2, round(1 / test_size)), seed)))
        except ValueError:  # e.g. fewer members than folds in every class
            fit, val = _group_shuffle(g_in, test_size, seed)
    else:
        raise ConfigError(f"fallback must be 'rare_class' or 'unsplittable', not {fallback!r}")
    return np.sort(base[np.asarray(fit, dtype=int)]), np.sort(base[np.asarray(val, dtype=int)])


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


# --------------------------------------------------------------------------- class balance
def downsample(
    y: Sequence[Any],
    strategy: Literal["mean", "min"] = "mean",
    seed: int | np.random.Generator = 0,
    *,
    rounding: Literal["floor", "round"] = "floor",
    draw_all: bool = False,
) -> np.ndarray:
    """Indices of a class-balanced subsample, sorted.

    ``"min"`` cuts every class to the size of the smallest one; ``"mean"`` cuts classes larger
    than the mean class size to that size and keeps smaller classes whole. The rows kept are
    random but fixed by ``seed`` (an int, or a generator the caller goes on using).

    ``rounding`` turns the mean class size into a count: ``"floor"`` (the NLI protocol's
    ``balance = "mean"``, as the reference work did) or ``"round"`` (half to even; the
    fine-tuner's ``downsample = "mean"``). ``draw_all`` draws for every class, also one kept
    whole, which advances the generator differently (the fine-tuner's stream, whose later
    draws order its batches). Both options exist only so each caller keeps its numbers.
    """
    arr = np.asarray(y)
    if arr.dtype == object:
        arr = arr.astype(str)
    if len(arr) == 0:
        return np.zeros(0, dtype=int)
    labels, inverse, sizes = np.unique(arr, return_inverse=True, return_counts=True)
    if strategy == "min":
        target = int(sizes.min())
    elif strategy == "mean":
        if rounding == "floor":
            target = int(sizes.mean())
        elif rounding == "round":
            target = int(round(float(sizes.mean())))
        else:
            raise ConfigError(f"rounding must be 'floor' or 'round', not {rounding!r}")
    else:
        raise ConfigError(f"downsample strategy must be 'mean' or 'min', not {strategy!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for k in range(len(labels)):
        idx = np.flatnonzero(inverse.ravel() == k)
        if draw_all or len(idx) > target:
            idx = rng.choice(idx, size=min(target, len(idx)), replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def balance_indices(y: Sequence[Any], strategy: str | None, seed: int = 0) -> np.ndarray:
    """Indices of a down-sampled training set ("mean"/"min"), or all indices for None/"none"/
    "weights" (class weights are the estimator's business)."""
    y = np.asarray(y)
    if strategy in (None, "none", "weights"):
        return np.arange(len(y))
    if strategy not in ("mean", "min"):
        raise ConfigError(f"balance must be none, weights, mean or min; got {strategy!r}")
    return downsample(y, strategy=strategy, seed=seed)


def class_weights(y: Sequence[Any]) -> dict[Any, float]:
    """sklearn's "balanced" weights, n / (k * n_c), as a label -> weight dict."""
    from sklearn.utils.class_weight import compute_class_weight

    arr = np.asarray(y)
    classes = np.unique(arr)
    w = compute_class_weight("balanced", classes=classes, y=arr)
    return {c.item() if hasattr(c, "item") else c: float(v) for c, v in zip(classes, w, strict=True)}
