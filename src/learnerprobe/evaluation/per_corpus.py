"""Mean per-corpus scores: the average over test corpora of each corpus's own score, with a CI.

Why beside the pooled score: pooled QWK over several corpora also rewards getting the
*between*-corpus level differences right (a probe that only tells the corpora apart scores
well), while the reference study averages QWK over held-out corpora. The CI is a stratified
bootstrap: each corpus's texts are resampled within that corpus, and draw ``b`` of the mean is
the mean of every corpus's draw ``b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from learnerprobe.evaluation.metrics import (
    bootstrap_indices,
    interval,
    resampled_metric,
    score_all,
)
from learnerprobe.evaluation.results import NO_LAYER, SELECTED, Pooled

#: ``test_corpus`` value of a mean-per-corpus row (``all`` is the pooled score)
CORPUS_MEAN = "corpus_mean"
#: layers whose cells get a mean-per-corpus row: the headline ones (chosen layer, layer-free
#: baselines, transfer rows chosen by nested LOCO)
HEADLINE_LAYERS = (SELECTED, NO_LAYER, "nested")


def corpus_mean(y_true: np.ndarray, y_pred: np.ndarray, corpora: np.ndarray, *,
                metric: str = "qwk", n_classes: int, n_boot: int, seed: int,
                alpha: float = 0.05) -> tuple[float, float, float, int]:
    """``(mean, ci_low, ci_high, n_corpora)`` of ``metric`` per corpus over the corpora."""
    corpora = np.asarray(corpora).astype(str)
    names = list(dict.fromkeys(corpora.tolist()))
    point, draws = [], []
    for i, c in enumerate(names):
        m = corpora == c
        yt, yp = np.asarray(y_true)[m], np.asarray(y_pred)[m]
        point.append(score_all(yt, yp, labels=n_classes)[metric])
        if n_boot:
            idx = bootstrap_indices(int(m.sum()), n_boot, seed + i)
            draws.append(resampled_metric(yt, yp, metric, n_classes=n_classes, idx=idx))
    lo, hi = interval(np.mean(draws, axis=0), alpha) if n_boot else (np.nan, np.nan)
    return float(np.mean(point)), lo, hi, len(names)


def corpus_mean_rows(pooled: Sequence[Pooled], y: np.ndarray, corpora: np.ndarray, *,
                     task: str, n_classes: int, n_boot: int, seed: int,
                     metrics: Sequence[str] = ("qwk",)) -> list[dict[str, Any]]:
    """One row per headline cell that spans several test corpora and metric:
    ``test_corpus = corpus_mean`` (the columns of ``evaluation.results.RESULT_COLUMNS``)."""
    out = []
    for p in pooled:
        if p.key.get("layer") not in HEADLINE_LAYERS:
            continue
        corp = np.asarray(corpora)[p.idx]
        if len(set(corp.tolist())) < 2:
            continue
        sel = p.selected_layers
        for metric in metrics:
            v, lo, hi, _ = corpus_mean(y[p.idx], p.pred, corp, metric=metric,
                                       n_classes=n_classes, n_boot=n_boot, seed=seed)
            out.append({"task": task, **p.key,
                        "selected_layer": int(np.bincount(sel).argmax()) if sel else None,
                        "selected_layers": ",".join(map(str, sel)) if sel else None,
                        "test_corpus": CORPUS_MEAN, "levels": "all", "metric": metric,
                        "value": v, "ci_low": lo, "ci_high": hi, "n": int(len(p.idx))})
    return out
