"""Evaluation protocols as explicit index splits, so leakage can be checked and tested.

Every split carries the indices of the outer training fold, an inner *validation* part of that
fold (grouped by author, used only to choose a layer) and the outer test fold. The test fold is
never passed to the layer selector.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from learnerprobe.errors import LearnerprobeError


class LeakageError(LearnerprobeError):
    """A split puts the same author (group) in training and test data."""


@dataclass(frozen=True)
class Split:
    """One outer fold with its inner selection split (all indices into the study's records)."""

    protocol: str  # iid | loco | lolo
    fold: str  # "0".."k-1" for iid; the held-out corpus/language for loco/lolo
    train: np.ndarray  # inner training part: probes are fitted on it
    val: np.ndarray  # inner validation part: only used to choose the layer
    test: np.ndarray  # outer test fold
    test_corpus: str  # "all" for pooled iid folds, else the held-out corpus/language

    @property
    def fit_all(self) -> np.ndarray:
        """The whole outer training fold (inner train + validation)."""
        return np.sort(np.concatenate([self.train, self.val]))

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.train, self.val, self.test):
            h.update(np.asarray(a, dtype=np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()[:16]


def _kfold(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    try:
        from learnerprobe.prep.splits import grouped_stratified_kfold
    except ImportError:  # prep area not installed yet: same algorithm straight from sklearn
        from sklearn.model_selection import StratifiedGroupKFold

        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(cv.split(np.zeros(len(y)), y, groups))
    return list(grouped_stratified_kfold(y, groups, n_splits=n_splits, seed=seed))


def _holdout(y: np.ndarray, groups: np.ndarray, test_size: float, seed: int):
    """Grouped, stratified holdout; falls back to sklearn when the prep module is absent."""
    try:
        from learnerprobe.prep.splits import grouped_holdout
    except ImportError:
        from sklearn.model_selection import StratifiedGroupKFold

        n = max(2, round(1 / test_size))
        cv = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
        return next(iter(cv.split(np.zeros(len(y)), y, groups)))
    tr, te = grouped_holdout(y, groups, test_size=test_size, seed=seed)
    return np.asarray(tr), np.asarray(te)


def check_disjoint(groups: np.ndarray, a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise LeakageError when an author appears on both sides."""
    shared = set(groups[a].tolist()) & set(groups[b].tolist())
    if shared:
        ex = ", ".join(sorted(map(str, shared))[:5])
        raise LeakageError(f"{what}: {len(shared)} author(s) on both sides, e.g. {ex}")


def inner_split(
    y: np.ndarray, groups: np.ndarray, train: np.ndarray, val_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split an outer training fold into inner train / validation, grouped by author."""
    y_tr, g_tr = y[train], groups[train]
    # Stratification needs each class twice; rare classes simply go where the groups put them.
    counts = np.unique(y_tr, return_counts=True)[1]
    if len(counts) > 1 and counts.min() >= 2:
        a, b = _holdout(y_tr, g_tr, val_size, seed)
    else:
        from sklearn.model_selection import GroupShuffleSplit

        a, b = next(GroupShuffleSplit(1, test_size=val_size, random_state=seed).split(y_tr,
                                                                                     groups=g_tr))
    return np.sort(train[np.asarray(a)]), np.sort(train[np.asarray(b)])


def make_splits(
    protocol: str,
    y: np.ndarray,
    groups: np.ndarray,
    corpora: np.ndarray,
    languages: np.ndarray,
    *,
    folds: int,
    seed: int,
    val_size: float,
    holdout: bool = False,
) -> list[Split]:
    """All outer splits of a protocol, each with its inner selection split.

    ``holdout`` (reference mode) makes IID a single grouped, stratified 80/20 split.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    outer: list[tuple[str, np.ndarray, np.ndarray, str]] = []
    if protocol == "iid":
        if holdout:
            tr, te = _holdout(y, groups, 0.2, seed)
            outer.append(("0", np.asarray(tr), np.asarray(te), "all"))
        else:
            for i, (tr, te) in enumerate(_kfold(y, groups, folds, seed)):
                outer.append((str(i), np.asarray(tr), np.asarray(te), "all"))
    elif protocol in ("loco", "lolo"):
        values = np.asarray(corpora if protocol == "loco" else languages)
        uniq = list(dict.fromkeys(values.tolist()))
        if len(uniq) < 2:
            raise LearnerprobeError(
                f"protocol {protocol!r} needs at least two "
                f"{'corpora' if protocol == 'loco' else 'languages'}; got {uniq}"
            )
        for v in uniq:
            te = np.flatnonzero(values == v)
            tr = np.flatnonzero(values != v)
            # An author who wrote in two corpora must not straddle the split.
            tr = tr[~np.isin(groups[tr], groups[te])]
            outer.append((str(v), tr, te, str(v)))
    else:
        raise LearnerprobeError(f"unknown protocol {protocol!r}; known: iid, loco, lolo")
    splits = []
    for fold, tr, te, tc in outer:
        check_disjoint(groups, tr, te, f"{protocol} fold {fold}")
        itr, iva = inner_split(y, groups, np.sort(tr), val_size, seed)
        check_disjoint(groups, itr, iva, f"{protocol} fold {fold} (inner)")
        splits.append(Split(protocol, fold, itr, iva, np.sort(te), tc))
    return splits
