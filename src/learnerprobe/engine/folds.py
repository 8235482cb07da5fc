"""Protocol folds: the only place the engine gets its splits from.

Every fold is a :class:`learnerprobe.evaluation.protocols.Split` made by
:func:`learnerprobe.evaluation.protocols.make_splits` (``iid``, ``loco``, ``lolo``) and checked
for author leakage here, whichever method family reads it: probes choose their layer on
``val`` and predict ``test``; a nested provider plans its own inner folds inside ``fit_all``;
an NLI classifier trains on ``fit_all``. ``learnerprobe train`` is the same engine on
:func:`whole_fold`: one fold holding all the data (``train`` + ``val``), no test part.

A protocol with more index sets (issue 19's ``loco_k``: a few labelled target texts to adapt
on) returns Split objects carrying the extra set as an attribute (e.g. ``adapt``); providers of
kind ``"adapt"`` read it and the loop, the cell cache (``Split.digest`` plus the provider's
key) and the pooling stay as they are.
"""

from __future__ import annotations

import numpy as np

from learnerprobe.evaluation.protocols import Split, check_disjoint, make_splits
from learnerprobe.evaluation.splits import grouped_holdout
from learnerprobe.tasks import TaskData

#: Value of ``Split.fold`` for the one fold of :func:`whole_fold`.
WHOLE = "bundle"


def protocol_folds(protocol: str, data: TaskData, *, folds: int, seed: int, val_size: float,
                   holdout: bool = False, y: np.ndarray | None = None) -> list[Split]:
    """The outer folds of ``protocol`` with their inner validation parts, every side checked
    for authors on both sides (LeakageError). ``y``: the labels to stratify by (default the
    task's encoded labels)."""
    y = data.y if y is None else y
    splits = make_splits(protocol, y, data.groups, data.corpora, data.languages, folds=folds,
                         seed=seed, val_size=val_size, holdout=holdout, labels=data.labels)
    for sp in splits:
        check_disjoint(data.groups, sp.train, sp.test, f"{protocol} {sp.fold}")
        check_disjoint(data.groups, sp.val, sp.test, f"{protocol} {sp.fold}")
    return splits


def whole_fold(data: TaskData, *, seed: int, val_size: float, protocol: str = "iid",
               y: np.ndarray | None = None) -> Split:
    """One fold holding every text: a grouped, stratified ``train`` / ``val`` split for the
    choice, ``fit_all`` (all texts) for the refit, an empty test part (``learnerprobe
    train``)."""
    y = data.y if y is None else y
    tr, va = grouped_holdout(y, data.groups, test_size=val_size, seed=seed)
    return Split(protocol, WHOLE, np.sort(np.asarray(tr)), np.sort(np.asarray(va)),
                 np.array([], dtype=int), "none")
