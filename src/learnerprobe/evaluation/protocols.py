"""Evaluation protocols (IID, LOCO, LOLO) as explicit index splits, so leakage can be checked.

Lives in ``evaluation`` (below ``study`` and ``nli``) so every task builds its folds the same
way, from :mod:`learnerprobe.evaluation.splits`. Every split carries the indices of the outer
training fold, an inner *validation* part of that fold (grouped by author, used only to choose
a layer) and the outer test fold. The test fold is never passed to the layer selector.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from learnerprobe.errors import LearnerprobeError
from learnerprobe.evaluation.splits import (
    check_class_sizes,
    grouped_holdout,
    grouped_stratified_kfold,
    inner_validation_split,
)


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


def check_disjoint(groups: np.ndarray, a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise LeakageError when an author appears on both sides."""
    shared = set(groups[a].tolist()) & set(groups[b].tolist())
    if shared:
        ex = ", ".join(sorted(map(str, shared))[:5])
        raise LeakageError(f"{what}: {len(shared)} author(s) on both sides, e.g. {ex}")


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
    labels: list[str] | None = None,
) -> list[Split]:
    """All outer splits of a protocol, each with its inner selection split.

    ``holdout`` (reference mode) makes IID a single grouped, stratified 80/20 split. IID k-fold
    warns about a class with fewer texts than ``folds`` and refuses when every class is that
    small (``labels``: class names for the message).
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    outer: list[tuple[str, np.ndarray, np.ndarray, str]] = []
    if protocol == "iid":
        if holdout:
            tr, te = grouped_holdout(y, groups, test_size=0.2, seed=seed)
            outer.append(("0", np.asarray(tr), np.asarray(te), "all"))
        else:
            check_class_sizes(y, folds, labels, strict=False)
            for i, (tr, te) in enumerate(grouped_stratified_kfold(y, groups, folds, seed)):
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
            # An author who wrote in two corpora must not straddle the split. Compared as
            # strings: np.isin compares object arrays pair by pair (quadratic), strings by sorting
            tr = tr[~np.isin(groups[tr].astype(str), groups[te].astype(str))]
            outer.append((str(v), tr, te, str(v)))
    else:
        raise LearnerprobeError(f"unknown protocol {protocol!r}; known: iid, loco, lolo")
    splits = []
    for fold, tr, te, tc in outer:
        check_disjoint(groups, tr, te, f"{protocol} fold {fold}")
        itr, iva = inner_validation_split(y, groups, within=np.sort(tr), test_size=val_size,
                                          seed=seed, fallback="rare_class")
        check_disjoint(groups, itr, iva, f"{protocol} fold {fold} (inner)")
        splits.append(Split(protocol, fold, itr, iva, np.sort(te), tc))
    return splits
