"""Nested leave-one-corpus-out selection: choose a method's variant without the held-out corpus.

With three corpora, choosing a method (or its layer, decoding, erasure, C ...) on the
leave-one-corpus-out test scores is selection on test data. Here every choice is made inside
the outer training corpora: for each outer fold (one corpus held out), each *training* corpus is
held out in turn as validation (the inner folds; authors of a validation corpus are removed from
its inner training part), every candidate is fitted on the inner training part and predicts the
inner validation corpus, the candidates are scored on the pooled inner-validation predictions
and the best (:func:`learnerprobe.selection.validation.best_index`: ties to the earliest candidate,
NaN never wins) is refitted on all training corpora and predicts the held-out corpus.

The held-out corpus's labels never enter: a job carries ``y_train`` (labels of its training
rows only) and the indices of the rows it predicts; transductive methods see those rows'
features, never their labels. With fewer than two training corpora there is no inner LOCO; the
outer split's own grouped validation part (``split.train`` / ``split.val``) is used instead and
the fold is marked ``inner = "holdout"``.

Fitting is the caller's (``fit_many``: a list of :class:`Job` -> ``(pred, proba)`` per job, in
job order), so the study can cache and parallelise it; this module only plans, scores and
chooses. :func:`nested_loco` takes the results as they come and keeps only the scores: memory
does not grow with the number of candidates or folds (``fit_many`` may return a lazy iterator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learnerprobe.evaluation.metrics import LOWER_IS_BETTER, score_all
from learnerprobe.selection.validation import best_index


@dataclass(frozen=True)
class Candidate:
    """One variant: options of the method (a grid point) and the layer input (an index into the
    layer axis, or ``"mix"`` for a probe over all candidate layers)."""

    options: tuple[tuple[str, Any], ...]
    layer: Any

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{opts or 'defaults'}@{self.layer}"


@dataclass(frozen=True)
class Job:
    """Fit ``candidate`` on ``train`` rows (labels ``y_train``), predict ``predict`` rows."""

    candidate: Candidate
    train: np.ndarray
    y_train: np.ndarray
    predict: np.ndarray


@dataclass
class OuterPlan:
    """One outer fold: its training rows, the held-out rows and the inner (train, val) folds."""

    fold: str
    train: np.ndarray
    test: np.ndarray
    inner: list[tuple[str, np.ndarray, np.ndarray]]
    inner_kind: str = "loco"


@dataclass
class NestedFold:
    """The outcome of one outer fold."""

    fold: str
    test: np.ndarray
    chosen: int
    inner_scores: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    inner_kind: str = "loco"
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def choice(self) -> Candidate:
        return self.candidates[self.chosen]


FitMany = Callable[[Sequence[Job]], Iterable[tuple[np.ndarray, np.ndarray | None]]]


def plan(splits: Sequence[Any], domains: np.ndarray, groups: np.ndarray) -> list[OuterPlan]:
    """Inner leave-one-training-corpus-out folds of each outer split (``.fit_all``, ``.test``,
    ``.fold``; :class:`learnerprobe.evaluation.protocols.Split`)."""
    domains = np.asarray(domains)
    groups = np.asarray(groups)
    out = []
    for sp in splits:
        train = np.asarray(sp.fit_all)
        names = list(dict.fromkeys(domains[train].tolist()))
        if len(names) < 2:
            out.append(OuterPlan(str(sp.fold), train, np.asarray(sp.test),
                                 [("holdout", np.asarray(sp.train), np.asarray(sp.val))],
                                 "holdout"))
            continue
        inner = []
        for v in names:
            va = train[domains[train] == v]
            tr = train[domains[train] != v]
            # an author never straddles; as strings: np.isin compares object arrays pair by
            # pair (quadratic), strings by sorting
            tr = tr[~np.isin(groups[tr].astype(str), groups[va].astype(str))]
            inner.append((str(v), tr, va))
        out.append(OuterPlan(str(sp.fold), train, np.asarray(sp.test), inner))
    return out


def inner_jobs(p: OuterPlan, candidates: Sequence[Candidate], y: np.ndarray) -> list[Job]:
    """Every (candidate, inner fold) fit of one outer fold; labels of training rows only."""
    return [Job(c, tr, y[tr], va) for c in candidates for _, tr, va in p.inner]


def pooled_inner(p: OuterPlan, results: Sequence[tuple], i: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Candidate ``i``'s inner-validation predictions pooled over the inner folds:
    ``(rows, pred, proba)`` (``results`` in :func:`inner_jobs` order)."""
    n_in = len(p.inner)
    mine = [results[i * n_in + j] for j in range(n_in)]
    val = np.concatenate([va for _, _, va in p.inner])
    pred = np.concatenate([np.asarray(r[0]) for r in mine])
    proba = None if any(r[1] is None for r in mine) else np.concatenate(
        [np.asarray(r[1]) for r in mine])
    return val, pred, proba


def select(p: OuterPlan, candidates: Sequence[Candidate], results: Iterable[tuple], y: np.ndarray,
           *, metric: str, n_classes: int) -> tuple[int, np.ndarray]:
    """Score each candidate on its pooled inner-validation predictions; the best index.

    ``results`` are in :func:`inner_jobs` order (a sequence or an iterator, read one candidate
    at a time; an iterator is advanced by exactly this plan's jobs). Only inner-validation
    labels (training corpora) are read."""
    it = iter(results)
    n_in = len(p.inner)
    y_val = np.asarray(y)[np.concatenate([va for _, _, va in p.inner])]
    scores = np.empty(len(candidates))
    for i in range(len(candidates)):
        pred = np.concatenate([np.asarray(next(it)[0]) for _ in range(n_in)])
        scores[i] = score_all(y_val, pred, labels=n_classes)[metric]
    return best_index(scores, lower_is_better=metric in LOWER_IS_BETTER), scores


@dataclass
class InnerChoice:
    """The choice on one plan's training rows alone (no outer test fold): what ``learnerprobe
    train`` bundles. ``val``/``pred``/``proba``: the chosen candidate's pooled inner-validation
    predictions (each training corpus predicted by a fit without it), for the bundle card."""

    chosen: int
    scores: np.ndarray
    candidates: list[Candidate]
    val: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    inner_kind: str = "loco"

    @property
    def choice(self) -> Candidate:
        return self.candidates[self.chosen]


def choose(p: OuterPlan, candidates: Sequence[Candidate], y: np.ndarray, fit_many: FitMany, *,
           metric: str = "qwk", n_classes: int) -> InnerChoice:
    """The inner half of :func:`nested_loco` for one plan: fit every candidate on the inner
    folds, choose by :func:`select`; the refit on ``p.train`` is the caller's."""
    cands = list(candidates)
    results = list(fit_many(inner_jobs(p, cands, np.asarray(y))))
    c, scores = select(p, cands, results, np.asarray(y), metric=metric, n_classes=n_classes)
    val, pred, proba = pooled_inner(p, results, c)
    return InnerChoice(c, scores, cands, val, pred, proba, p.inner_kind)


def nested_loco(plans: Sequence[OuterPlan], candidates: Sequence[Candidate], y: np.ndarray,
                fit_many: FitMany, *, metric: str = "qwk", n_classes: int) -> list[NestedFold]:
    """Choose a candidate per outer fold by inner LOCO, refit it on the outer training rows and
    predict the held-out rows. ``y`` is only ever indexed at training rows."""
    y = np.asarray(y)
    cands = list(candidates)
    jobs: list[Job] = []
    for p in plans:
        jobs += inner_jobs(p, cands, y)
    results = iter(fit_many(jobs))
    chosen = [select(p, cands, results, y, metric=metric, n_classes=n_classes) for p in plans]
    if next(results, None) is not None:  # also lets a lazy fit_many finish
        raise ValueError("fit_many gave more results than jobs")
    final = fit_many([Job(cands[c], p.train, y[p.train], p.test)
                      for p, (c, _) in zip(plans, chosen, strict=True)])
    return [NestedFold(p.fold, p.test, c, s, np.asarray(pr), None if pb is None else
                       np.asarray(pb), p.inner_kind, cands)
            for p, (c, s), (pr, pb) in zip(plans, chosen, final, strict=True)]
