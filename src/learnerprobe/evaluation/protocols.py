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


# --------------------------------------------------------------------------- loco_k
@dataclass(frozen=True)
class AdaptSplit:
    """One ``loco_k`` draw: a LOCO split whose held-out corpus lends ``k`` labelled texts.

    ``loco`` is the leave-one-corpus-out split (its ``train``/``val`` hold the training corpora
    only); ``adapt`` are the k labelled texts of the held-out corpus an adaptation method may
    read, and ``test`` the rest of that corpus *minus every text by an author of the k*
    (nothing the adaptation saw, nor its authors, is scored). ``k = 0``: ``adapt`` empty and
    ``test`` the LOCO test fold, so a k = 0 cell is a LOCO cell."""

    loco: Split
    k: int
    repeat: int
    adapt: np.ndarray
    test: np.ndarray

    @property
    def test_corpus(self) -> str:
        return self.loco.test_corpus


def draw_labelled(y: np.ndarray, groups: np.ndarray, within: np.ndarray, k: int,
                  seed: int) -> np.ndarray:
    """``k`` texts of ``within`` (record indices), at most one per author, stratified by level:
    each level gets its largest-remainder share of ``k`` (levels with fewer authors than their
    share give the rest to the others), texts drawn at random inside a level. A ConfigError when
    ``within`` has fewer than ``k`` authors."""
    rng = np.random.default_rng(seed)
    within = np.asarray(within)
    order = rng.permutation(len(within))  # one text per author: the first in a random order
    _, first = np.unique(groups[within[order]].astype(str), return_index=True)
    cand = within[order[np.sort(first)]]
    if len(cand) < k:
        raise LearnerprobeError(f"loco_k: k = {k} but the held-out corpus has only "
                                f"{len(cand)} authors")
    levels, counts = np.unique(y[cand], return_counts=True)
    share = counts / counts.sum() * k
    take = np.minimum(np.floor(share).astype(int), counts)
    rest = share - take
    while take.sum() < k:  # largest remainder first, ties at random, capped by availability
        open_ = np.flatnonzero(take < counts)
        pick = open_[np.lexsort((rng.random(len(open_)), -rest[open_]))[0]]
        take[pick] += 1
        rest[pick] = -np.inf if take[pick] >= counts[pick] else rest[pick] - 1
    out = [cand[y[cand] == lv][:t] for lv, t in zip(levels, take, strict=True)]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def make_adapt_splits(loco: list[Split], y: np.ndarray, groups: np.ndarray, *,
                      ks: list[int], repeats: int, seed: int) -> list[AdaptSplit]:
    """The ``loco_k`` protocol: for every LOCO split, k in ``ks`` and repeat ``0..repeats-1``,
    k labelled texts of the held-out corpus (:func:`draw_labelled`, seeded by seed, corpus,
    k and repeat) and the score set that excludes them and their authors. k = 0 has one repeat
    (nothing is drawn). Raises LeakageError if a drawn author reaches the score set."""
    y = np.asarray(y)
    groups = np.asarray(groups)
    out = []
    for sp in loco:
        for k in ks:
            for r in range(1 if k == 0 else repeats):
                if k == 0:
                    adapt, test = np.zeros(0, dtype=np.int64), sp.test
                else:
                    h = hashlib.sha256(f"{seed}|{sp.fold}|{k}|{r}".encode()).digest()
                    adapt = draw_labelled(y, groups, sp.test, k, int.from_bytes(h[:8], "little"))
                    test = sp.test[~np.isin(groups[sp.test], groups[adapt])]
                check_disjoint(groups, adapt, test, f"loco_k {sp.fold} k={k} repeat {r}")
                check_disjoint(groups, sp.fit_all, adapt, f"loco_k {sp.fold} (training)")
                out.append(AdaptSplit(sp, k, r, adapt, np.sort(test)))
    return out
