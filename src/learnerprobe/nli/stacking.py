"""The stacking ensemble on the run's own outer folds, from its bases' cached predictions.

Why: stacked the textbook way (``StackingL1Classifier.fit``), every outer fold runs an inner
grouped CV of every base and then refits it: ``folds x (ensemble_cv + 1)`` fits per base (30 at
5 x 5), on top of the base methods' own 5 -- the hidden-state probe and the sentence classifier
dominate, and at FCE's size the ensemble did not finish in 15 minutes.

Here the outer folds serve as the inner ones. For outer fold ``f`` the stacker's training texts
are those of the other folds ``g``; a text of fold ``g`` gets its base probabilities from the base
fitted on every fold but ``f`` and ``g``. That model serves both outer folds of the pair, so each
base is fitted once per *pair* of folds (10 fits at 5 folds, cached per base), and the test
fold's base probabilities are the base method's own out-of-fold ones (fitted on every fold but
``f``: the model the textbook stacker refits), read from the NLI cache. No test text ever enters
the stacker's or a base's training. Combiner selection is unchanged
(:meth:`StackingL1Classifier.fit_meta`); what moves is only which inner folds produced the
meta-features (the other outer folds, ``folds - 1`` of them, instead of a fresh grouped split
into ``ensemble_cv``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.estimators.nli._base import align_proba
from learnerprobe.evaluation.cell_cache import read_npz, write_npz
from learnerprobe.evaluation.splits import balance_indices
from learnerprobe.tasks.l1 import L1Data

Folds = Sequence[tuple[np.ndarray, np.ndarray]]


@dataclass
class BaseRun:
    """One base of the ensemble: its name, a factory of fresh estimators, its outer
    out-of-fold result (``nli.run.cross_validate_method``'s dict) and where its pair fits are
    cached."""

    name: str
    make: Callable[[], Any]
    outer: dict[str, Any]
    pair_cache: Path


def _fit_kw(est: Any, groups: np.ndarray) -> dict[str, Any]:
    try:
        takes = "groups" in inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        takes = False
    return {"groups": groups} if takes else {}


def pair_probabilities(base: BaseRun, task: L1Data, folds: Folds, *, balance: str, seed: int,
                       log: Callable[[str], None] = print) -> np.ndarray:
    """``texts x folds x labels``: entry ``[i, f]`` is the base's probabilities for text ``i``
    from the model fitted on every fold but ``f`` and the text's own (NaN where ``f`` is the
    text's fold). Read from ``base.pair_cache`` when there, else fitted and cached."""
    n, k, labels = len(task.y), len(folds), np.asarray(task.labels, dtype=object)
    z = read_npz(base.pair_cache, required=("pairs",))
    if z is not None and z["pairs"].shape == (n, k, len(labels)):
        log(f"  nli ensemble: {base.name} pair fits cached ({base.pair_cache.name})")
        return z["pairs"]
    log(f"  nli ensemble: fitting {base.name} on {k * (k - 1) // 2} pairs of folds")
    recs = task.records
    out = np.full((n, k, len(labels)), np.nan)
    for f in range(k):
        for g in range(f + 1, k):
            te = np.concatenate([folds[f][1], folds[g][1]])
            tr = np.setdiff1d(np.arange(n), te)
            tr = tr[balance_indices(task.y[tr], balance, seed)]
            est = base.make()
            est.fit([recs[i] for i in tr], task.y[tr], **_fit_kw(est, task.groups[tr]))
            p = align_proba(np.asarray(est.predict_proba([recs[i] for i in te])),
                            np.asarray(est.classes_, dtype=object), labels)
            nf = len(folds[f][1])
            out[folds[f][1], g] = p[:nf]
            out[folds[g][1], f] = p[nf:]
    write_npz(base.pair_cache, {"pairs": out})
    return out


def _outer_proba(res: dict[str, Any], n: int) -> np.ndarray:
    full = np.full((n, res["proba"].shape[1]), np.nan)
    full[res["idx"]] = res["proba"]
    return full


def stack_on_outer_folds(stacker: Any, task: L1Data, folds: Folds, bases: Sequence[BaseRun], *,
                         balance: str, seed: int, log: Callable[[str], None] = print
                         ) -> dict[str, Any]:
    """The ensemble's out-of-fold result (``cross_validate_method``'s dict) with ``stacker``
    (a :class:`~learnerprobe.estimators.nli.ensemble.StackingL1Classifier` whose bases are
    ``bases``, in order) fitted per outer fold on the pair-fit meta-features."""
    n = len(task.y)
    labels = np.asarray(task.labels, dtype=object)
    names = [name for name, _ in stacker.estimators]
    if names != [b.name for b in bases]:
        raise ValueError(f"the stacker's bases {names} are not {[b.name for b in bases]}")
    pairs = [pair_probabilities(b, task, folds, balance=balance, seed=seed, log=log)
             for b in bases]
    outer = [_outer_proba(b.outer, n) for b in bases]
    proba = np.full((n, len(labels)), np.nan)
    fold_of = np.full(n, -1)
    notes: list[dict[str, Any]] = []
    for f, (tr, te) in enumerate(folds):
        tr = np.asarray(tr)[balance_indices(task.y[tr], balance, seed)]
        oof = [p[tr, f] for p in pairs]
        for b, p in zip(bases, oof, strict=True):
            if np.isnan(p).any():
                raise ValueError(f"base {b.name}: no pair probabilities for fold {f}'s training")
        stacker.fit_meta(oof, task.y[tr], task.groups[tr], classes=labels)
        test = {b.name: o[te] for b, o in zip(bases, outer, strict=True)}
        if any(np.isnan(v).any() for v in test.values()):
            raise ValueError(f"a base has no out-of-fold probabilities for fold {f}")
        proba[te] = stacker.combine(test)
        fold_of[te] = f
        notes.append({"fold": f, "meta_choice": stacker.meta_choice_,
                      "meta_scores": json.loads(json.dumps(stacker.meta_scores_))})
    done = fold_of >= 0
    return {"proba": proba[done], "idx": np.flatnonzero(done), "fold": fold_of[done],
            "layers": [], "notes": notes}
